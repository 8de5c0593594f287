//! What a group's tasks leave behind: their results in spawn order, which error came first, the
//! first panic. Shared by the async `Group` (feature `tokio`) and the thread
//! [`scope`](fn@super::scope).
//!
//! Pure bookkeeping: no locks here. The scheduler (`scheduler.rs`) keeps a `Slots` beside its
//! own state, under the group's lock, and calls its methods with the lock held (they take
//! `&mut self`); what they return (a cause to cancel with) is acted on after the lock is
//! released, and the round's slots are taken out of the lock before they are turned into
//! results.

use std::any::Any;
use std::fmt;

use crate::context::Error;

use super::task_failed::TaskFailed;
pub(crate) use crate::panics::panic_message;

/// A panic payload, as `catch_unwind` returns it.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;

/// How one task ended.
pub(crate) enum Outcome<T, E> {
    /// It returned.
    Returned(Result<T, E>),
    /// It panicked with this payload.
    Panicked(Panic),
    /// It was dropped before it finished, by nobody's choice: its worker went away (the tokio
    /// runtime shut down). Counts as a failure, reported as `E::from(Error::Canceled)`.
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "only the async Group's workers abort")
    )]
    Aborted,
}

/// What one task left in its slot.
enum Slot<T, E> {
    /// Not finished, never started, or panicked.
    Empty,
    /// It returned.
    Returned(Result<T, E>),
    /// It was aborted ([`Outcome::Aborted`]); its error is made when the round is taken.
    Aborted,
}

/// Each task's slot by spawn index.
type Outcomes<T, E> = Vec<Slot<T, E>>;

/// The results of one round of a group (spawns up to a `wait`).
pub(crate) struct Slots<T, E> {
    /// Index = spawn order. Grows as tasks are spawned ([`make_room`](Slots::make_room)).
    results: Outcomes<T, E>,
    /// The index of the first error in time (`errgroup`'s `errOnce`); set once per round.
    first_err: Option<usize>,
    /// The first panic's payload; later panics are dropped (which panic wins is unspecified).
    panic: Option<Panic>,
}

impl<T, E> Slots<T, E> {
    pub(crate) const fn new() -> Self {
        Slots {
            results: Vec::new(),
            first_err: None,
            panic: None,
        }
    }

    /// Whether a task has failed or panicked this round: the first to do so names the cause.
    pub(crate) fn has_failed(&self) -> bool {
        self.first_err.is_some() || self.panic.is_some()
    }

    /// Records how task `index` ended. Returns the cause to cancel the group's context with when
    /// this is the round's first failure (error or panic).
    ///
    /// `message` is the error's text, formatted by the caller before it took its lock (so no user
    /// code runs under it); `None` when the caller knew the round had already failed or has no
    /// context to cancel, and then no cause is returned for an error.
    pub(crate) fn record(
        &mut self,
        index: usize,
        outcome: Outcome<T, E>,
        message: Option<String>,
    ) -> Option<TaskFailed> {
        let first = !self.has_failed();
        match outcome {
            Outcome::Returned(Ok(value)) => {
                self.put(index, Slot::Returned(Ok(value)));
                None
            }
            Outcome::Returned(Err(error)) => {
                let cause = message.filter(|_| first).map(TaskFailed::error);
                if self.first_err.is_none() {
                    self.first_err = Some(index);
                }
                self.put(index, Slot::Returned(Err(error)));
                cause
            }
            Outcome::Aborted => {
                if self.first_err.is_none() {
                    self.first_err = Some(index);
                }
                self.put(index, Slot::Aborted);
                first.then(TaskFailed::aborted)
            }
            Outcome::Panicked(payload) => {
                let cause = first.then(|| TaskFailed::panic(panic_message(&*payload)));
                if self.panic.is_none() {
                    self.panic = Some(payload);
                }
                cause
            }
        }
    }

    fn put(&mut self, index: usize, slot: Slot<T, E>) {
        self.make_room(index);
        self.results[index] = slot;
    }

    /// Makes the slot of task `index` exist (empty), so that recording it allocates nothing.
    /// Called by the spawner as it spawns task `index`: the vector grows on the spawner's
    /// side, not while the finishing tasks of a fan-out contend for the group's lock.
    #[inline]
    pub(crate) fn make_room(&mut self, index: usize) {
        if self.results.len() <= index {
            self.results.resize_with(index + 1, || Slot::Empty);
        }
    }

    /// Takes the round's slots out, leaving empty ones: called under the caller's lock, so that
    /// [`take_first`](Slots::take_first) or [`take_all`](Slots::take_all) runs outside it.
    pub(crate) fn take(&mut self) -> Slots<T, E> {
        std::mem::replace(self, Slots::new())
    }

    /// Resets for the next round and hands back this round's results and the index of its first
    /// error, or its first panic (to be resumed by the caller).
    fn end_round(&mut self) -> Result<(Outcomes<T, E>, Option<usize>), Panic> {
        let round = std::mem::replace(self, Slots::new());
        match round.panic {
            Some(payload) => Err(payload),
            None => Ok((round.results, round.first_err)),
        }
    }

    /// Ends the round: the first panic if any (to be resumed by the caller), else the first
    /// error, else every result in spawn order. `spawned` is how many tasks the round had; a
    /// task that never started counts as failed with `skipped` (the context's error), an
    /// aborted one with [`Error::Canceled`].
    ///
    /// Runs user code (`E::from`, drops of results): call it on slots taken out of the lock
    /// (see [`take`](Slots::take)).
    pub(crate) fn take_first(
        &mut self,
        spawned: usize,
        skipped: Error,
    ) -> Result<Result<Vec<T>, E>, Panic>
    where
        E: From<Error>,
    {
        let (mut results, first_err) = self.end_round()?;
        if let Some(index) = first_err {
            return Ok(match results.swap_remove(index) {
                Slot::Returned(Err(error)) => Err(error),
                Slot::Aborted => Err(E::from(Error::Canceled)),
                _ => unreachable!("ctxkit::group: first_err names a slot that holds no error"),
            });
        }
        results.resize_with(spawned, || Slot::Empty);
        let mut values = Vec::with_capacity(spawned);
        for result in results {
            match result {
                Slot::Returned(Ok(value)) => values.push(value),
                Slot::Returned(Err(error)) => return Ok(Err(error)),
                Slot::Aborted => return Ok(Err(E::from(Error::Canceled))),
                Slot::Empty => return Ok(Err(E::from(skipped))),
            }
        }
        Ok(Ok(values))
    }

    /// As [`take_first`](Slots::take_first), but every error, in spawn order.
    pub(crate) fn take_all(
        &mut self,
        spawned: usize,
        skipped: Error,
    ) -> Result<Result<Vec<T>, Vec<E>>, Panic>
    where
        E: From<Error>,
    {
        let (mut results, _) = self.end_round()?;
        results.resize_with(spawned, || Slot::Empty);
        let mut values = Vec::with_capacity(spawned);
        let mut errors = Vec::new();
        for result in results {
            match result {
                Slot::Returned(Ok(value)) => values.push(value),
                Slot::Returned(Err(error)) => errors.push(error),
                Slot::Aborted => errors.push(E::from(Error::Canceled)),
                Slot::Empty => errors.push(E::from(skipped)),
            }
        }
        Ok(if errors.is_empty() {
            Ok(values)
        } else {
            Err(errors)
        })
    }
}

impl<T, E> fmt::Debug for Slots<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slots")
            .field(
                "filled",
                &self
                    .results
                    .iter()
                    .filter(|r| !matches!(r, Slot::Empty))
                    .count(),
            )
            .field("first_err", &self.first_err)
            .field("panicked", &self.panic.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum E {
        Ctx(Error),
        Boom(u32),
    }
    impl From<Error> for E {
        fn from(e: Error) -> Self {
            E::Ctx(e)
        }
    }
    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }

    #[test]
    fn results_in_spawn_order_and_first_error_in_time() {
        let mut slots = Slots::<u32, E>::new();
        assert!(slots.record(2, Outcome::Returned(Ok(2)), None).is_none());
        assert!(slots.record(0, Outcome::Returned(Ok(0)), None).is_none());
        assert!(slots.record(1, Outcome::Returned(Ok(1)), None).is_none());
        assert_eq!(
            slots.take_first(3, Error::Canceled).ok().unwrap(),
            Ok(vec![0, 1, 2])
        );

        let cause = slots
            .record(
                3,
                Outcome::Returned(Err(E::Boom(3))),
                Some("Boom(3)".into()),
            )
            .unwrap();
        assert_eq!(cause.to_string(), "Boom(3)");
        assert!(slots
            .record(1, Outcome::Returned(Err(E::Boom(1))), Some("x".into()))
            .is_none());
        assert_eq!(
            slots.take_first(4, Error::Canceled).ok().unwrap(),
            Err(E::Boom(3))
        );
    }

    #[test]
    fn skipped_tasks_fail_with_the_context_error() {
        let mut slots = Slots::<u32, E>::new();
        slots.record(0, Outcome::Returned(Ok(0)), None);
        assert_eq!(
            slots.take_first(2, Error::DeadlineExceeded).ok().unwrap(),
            Err(E::Ctx(Error::DeadlineExceeded))
        );
        slots.record(1, Outcome::Returned(Err(E::Boom(1))), None);
        assert_eq!(
            slots.take_all(3, Error::Canceled).ok().unwrap(),
            Err(vec![
                E::Ctx(Error::Canceled),
                E::Boom(1),
                E::Ctx(Error::Canceled)
            ])
        );
    }

    #[test]
    fn an_aborted_task_fails_with_canceled_and_names_the_cause() {
        let mut slots = Slots::<u32, E>::new();
        slots.record(0, Outcome::Returned(Ok(0)), None);
        let cause = slots.record(1, Outcome::Aborted, None).unwrap();
        assert!(cause.is_aborted());
        // Not the first failure: no second cause.
        assert!(slots.record(2, Outcome::Aborted, None).is_none());
        assert_eq!(
            slots.take_first(3, Error::DeadlineExceeded).ok().unwrap(),
            Err(E::Ctx(Error::Canceled))
        );
        slots.record(
            0,
            Outcome::Returned(Err(E::Boom(0))),
            Some("Boom(0)".into()),
        );
        slots.record(1, Outcome::Aborted, None);
        assert_eq!(
            slots.take_all(3, Error::DeadlineExceeded).ok().unwrap(),
            Err(vec![
                E::Boom(0),
                E::Ctx(Error::Canceled),
                E::Ctx(Error::DeadlineExceeded)
            ])
        );
    }

    #[test]
    fn a_panic_wins_over_errors() {
        let mut slots = Slots::<u32, E>::new();
        slots.record(0, Outcome::Returned(Err(E::Boom(0))), None);
        assert!(slots
            .record(1, Outcome::Panicked(Box::new("oops")), None)
            .is_none());
        let payload = slots.take_first(2, Error::Canceled).err().unwrap();
        assert_eq!(panic_message(&*payload), "oops");
    }
}
