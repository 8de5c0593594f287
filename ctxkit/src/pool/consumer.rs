//! The consumer's side of a one-shot map, shared by both forms (`map.rs`'s iterator and
//! `map_stream.rs`'s stream): how much of the input it may pull (`MapCore` invariant 1), the
//! jobs pulled on their way in, the results on their way out, and the reordering window of an
//! ordered map. Plain data owned by the consumer; no locks.

use std::collections::VecDeque;

use super::map_core::Outcome;

/// The consumer's bookkeeping (see the module docs).
#[derive(Debug)]
pub(crate) struct Consumer<J, T> {
    /// Pulled and not yet released (`MapCore` invariant 1), and the bound on it.
    in_flight: usize,
    bound: usize,
    /// The next job's index.
    next_index: u64,
    /// The input has said it has no more.
    pub(crate) input_ended: bool,
    /// Jobs pulled, on their way into the core.
    pub(crate) pulled: Vec<(u64, J)>,
    /// Results taken from the core, reversed (popped from the end), until placed.
    pub(crate) ready: Vec<(u64, Outcome<T>)>,
    /// Results waiting for their turn (ordered maps only).
    reorder: Option<Reorder<T>>,
    /// The core said the map is over.
    pub(crate) over: bool,
}

impl<J, T> Consumer<J, T> {
    /// A consumer that keeps at most `bound` jobs and results in flight, yielding in input order
    /// if `ordered`.
    pub(crate) fn new(bound: usize, ordered: bool) -> Self {
        Consumer {
            in_flight: 0,
            bound,
            next_index: 0,
            input_ended: false,
            pulled: Vec::new(),
            ready: Vec::new(),
            reorder: ordered.then(|| Reorder {
                next: 0,
                slots: VecDeque::new(),
            }),
            over: false,
        }
    }

    /// Whether the bound leaves room to pull one more job.
    pub(crate) fn has_room(&self) -> bool {
        !self.input_ended && self.in_flight + self.pulled.len() < self.bound
    }

    /// Takes `job`, just pulled, on its way in.
    pub(crate) fn pulled(&mut self, job: J) {
        self.pulled.push((self.next_index, job));
        self.next_index += 1;
    }

    /// Counts the jobs pulled since the last exchange as in flight (before they are handed in).
    pub(crate) fn count_pulled(&mut self) {
        self.in_flight += self.pulled.len();
    }

    /// Places what an exchange returned in `ready` where [`pop`](Self::pop) finds it.
    pub(crate) fn place_ready(&mut self) {
        match &mut self.reorder {
            Some(reorder) => {
                for (index, outcome) in self.ready.drain(..) {
                    reorder.insert(index, outcome);
                }
            }
            None => self.ready.reverse(),
        }
    }

    /// The next result to hand out, if one is here; once the map is over, an ordered map skips
    /// the jobs that never ran.
    pub(crate) fn pop(&mut self) -> Option<Outcome<T>> {
        let outcome = match &mut self.reorder {
            Some(reorder) => reorder.pop(self.over),
            None => self.ready.pop().map(|(_, outcome)| outcome),
        };
        if outcome.is_some() {
            self.in_flight -= 1;
        }
        outcome
    }

    /// Whether results are in order of input.
    pub(crate) fn is_ordered(&self) -> bool {
        self.reorder.is_some()
    }

    /// How many jobs were pulled so far.
    pub(crate) fn pulled_count(&self) -> u64 {
        self.next_index
    }

    /// How many jobs and results are in flight, and the bound.
    pub(crate) fn in_flight(&self) -> (usize, usize) {
        (self.in_flight, self.bound)
    }
}

/// The reordering window of an ordered map: results by index, from the next one to yield.
#[derive(Debug)]
struct Reorder<T> {
    next: u64,
    slots: VecDeque<Option<Outcome<T>>>,
}

impl<T> Reorder<T> {
    fn insert(&mut self, index: u64, outcome: Outcome<T>) {
        let position = usize::try_from(index - self.next).unwrap_or(usize::MAX);
        if self.slots.len() <= position {
            self.slots.resize_with(position + 1, || None);
        }
        self.slots[position] = Some(outcome);
    }

    /// The next result in input order if it is here; with `skip_gaps` (the map is over), the
    /// next one present, past the jobs that never ran.
    fn pop(&mut self, skip_gaps: bool) -> Option<Outcome<T>> {
        while let Some(front) = self.slots.front() {
            if front.is_none() && !skip_gaps {
                return None;
            }
            self.next += 1;
            if let Some(outcome) = self.slots.pop_front().flatten() {
                return Some(outcome);
            }
        }
        None
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_ordered_consumer_waits_for_the_gap_then_skips_it_once_over() {
        let mut consumer: Consumer<(), u32> = Consumer::new(4, true);
        consumer.ready = vec![(2, Ok(20)), (1, Ok(10))];
        consumer.in_flight = 3;
        consumer.place_ready();
        assert_eq!(consumer.pop(), None, "job 0 has not delivered");
        consumer.over = true; // job 0 never ran
        assert_eq!(consumer.pop(), Some(Ok(10)));
        assert_eq!(consumer.pop(), Some(Ok(20)));
        assert_eq!(consumer.pop(), None);
        assert_eq!(consumer.in_flight(), (1, 4));
    }

    #[test]
    fn the_bound_limits_the_pulls() {
        let mut consumer: Consumer<u32, u32> = Consumer::new(2, false);
        assert!(consumer.has_room());
        consumer.pulled(7);
        consumer.pulled(8);
        assert!(!consumer.has_room());
        consumer.count_pulled();
        consumer.pulled.clear(); // handed in
        assert!(!consumer.has_room(), "two in flight");
        consumer.ready = vec![(0, Ok(49))];
        consumer.place_ready();
        assert_eq!(consumer.pop(), Some(Ok(49)));
        assert!(consumer.has_room(), "one released");
        assert_eq!(consumer.pulled_count(), 2);
    }
}
