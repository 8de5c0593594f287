//! Helpers the pool tests share (`pool_map.rs`, `pool_map_stream.rs`, `pool_workers.rs`): a
//! hang guard, a tally of what a map pulls, a record of which jobs ran, the accounting check of
//! a map that stopped early, the two runtimes the async forms run on, and `eventually`, the
//! async form of `common::wait_until`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::PATIENCE;

/// Runs a test's body on a thread of its own and fails the test if it has not returned after
/// three times `PATIENCE`: a hang fails instead of hanging the suite, and a bounded wait
/// inside the body (up to `PATIENCE`) still fails first, with its own message.
pub(crate) fn hang_guard(name: &str, body: fn()) {
    let (tx, rx) = std::sync::mpsc::channel();
    let runner = std::thread::spawn(move || {
        body();
        let _ = tx.send(());
    });
    match rx.recv_timeout(3 * PATIENCE) {
        Ok(()) => runner.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(payload) = runner.join() {
                std::panic::resume_unwind(payload);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: still running after {:?}: a hang", 3 * PATIENCE)
        }
    }
}

/// Counts what a map pulls from its input, and the largest lead of the pulls over the results
/// the consumer has read (the consumer reports each read with [`Tally::read_one`]).
#[derive(Clone, Default)]
pub(crate) struct Tally {
    pulled: Arc<AtomicUsize>,
    read: Arc<AtomicUsize>,
    max_lead: Arc<AtomicUsize>,
}

impl Tally {
    /// `inner`, counted: each pull updates the count and the lead.
    pub(crate) fn input<I: Iterator + Send>(
        &self,
        inner: I,
    ) -> impl Iterator<Item = I::Item> + Send {
        let tally = self.clone();
        inner.inspect(move |_| {
            let pulled = tally.pulled.fetch_add(1, SeqCst) + 1;
            let lead = pulled - tally.read.load(SeqCst);
            tally.max_lead.fetch_max(lead, SeqCst);
        })
    }

    /// [`input`](Tally::input) as a stream (for the async map).
    pub(crate) fn input_stream<I>(
        &self,
        inner: I,
    ) -> impl futures::Stream<Item = I::Item> + Unpin + Send
    where
        I: IntoIterator,
        I::IntoIter: Send,
    {
        futures::stream::iter(self.input(inner.into_iter()))
    }

    /// The consumer got one more result.
    pub(crate) fn read_one(&self) {
        self.read.fetch_add(1, SeqCst);
    }

    pub(crate) fn pulled(&self) -> usize {
        self.pulled.load(SeqCst)
    }

    pub(crate) fn max_lead(&self) -> usize {
        self.max_lead.load(SeqCst)
    }
}

/// How many times each job started, how many ended (returned, panicked, or had its future
/// dropped), and how many ran at once at most.
pub(crate) struct Runs {
    each: Vec<AtomicUsize>,
    ended: AtomicUsize,
    running: AtomicUsize,
    pub(crate) max_running: AtomicUsize,
}

impl Runs {
    pub(crate) fn new(n: usize) -> Arc<Runs> {
        Arc::new(Runs {
            each: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            ended: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
        })
    }

    /// Records job `n` starting; the guard records it ending.
    pub(crate) fn start(self: &Arc<Self>, n: usize) -> RunGuard {
        self.each[n].fetch_add(1, SeqCst);
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.max_running.fetch_max(now, SeqCst);
        RunGuard(self.clone())
    }

    /// The jobs that started, each exactly once (panics if one started twice).
    pub(crate) fn ran(&self) -> BTreeSet<usize> {
        let mut ran = BTreeSet::new();
        for (n, count) in self.each.iter().enumerate() {
            match count.load(SeqCst) {
                0 => {}
                1 => {
                    ran.insert(n);
                }
                more => panic!("job {n} ran {more} times"),
            }
        }
        ran
    }

    /// How many starts in all.
    pub(crate) fn total(&self) -> usize {
        self.each.iter().map(|c| c.load(SeqCst)).sum()
    }

    /// How many jobs ended.
    pub(crate) fn ended(&self) -> usize {
        self.ended.load(SeqCst)
    }
}

/// Records the end of a job (its return, its panic, or its future dropped).
pub(crate) struct RunGuard(Arc<Runs>);

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, SeqCst);
        self.0.ended.fetch_add(1, SeqCst);
    }
}

/// `v`, sorted.
pub(crate) fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

pub(crate) fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

pub(crate) fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// Runs `test` (bounded) on a current-thread runtime, then on a two-worker multi-thread one.
pub(crate) fn on_both_runtimes<F, Fut>(test: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    current_thread().block_on(super::bounded(test()));
    multi_thread().block_on(super::bounded(test()));
}

/// Checks the end of a map that stopped early: every pulled job (`0..pulled`) delivered its
/// result or came back unrun, never both, never neither; the jobs that ran are exactly the
/// delivered ones; the unrun ones are in input order.
#[track_caller]
pub(crate) fn check_accounting(
    case: &str,
    delivered: &[usize],
    unrun: &[usize],
    pulled: usize,
    runs: &Runs,
) {
    let delivered_set: BTreeSet<usize> = delivered.iter().copied().collect();
    let unrun_set: BTreeSet<usize> = unrun.iter().copied().collect();
    assert_eq!(
        delivered_set.len(),
        delivered.len(),
        "{case}: a result came twice: {delivered:?}"
    );
    assert_eq!(
        unrun_set.len(),
        unrun.len(),
        "{case}: an unrun job came twice"
    );
    assert!(
        unrun.windows(2).all(|w| w[0] < w[1]),
        "{case}: unrun jobs not in input order: {unrun:?}"
    );
    let both: Vec<_> = delivered_set.intersection(&unrun_set).collect();
    assert!(both.is_empty(), "{case}: delivered and unrun: {both:?}");
    assert_eq!(
        delivered.len() + unrun.len(),
        pulled,
        "{case}: delivered {} + unrun {} != pulled {pulled}",
        delivered.len(),
        unrun.len()
    );
    let all: BTreeSet<usize> = delivered_set.union(&unrun_set).copied().collect();
    assert_eq!(all, (0..pulled).collect(), "{case}: jobs lost");
    assert_eq!(runs.ran(), delivered_set, "{case}: ran but not delivered");
}

/// The async form of `common::wait_until`: reads `read()` every millisecond (sleeping on
/// tokio's timer) until `until` holds for what it read, and returns that; after [`PATIENCE`],
/// panics with `what` and the last value read.
pub(crate) async fn eventually<T: std::fmt::Debug>(
    what: &str,
    mut read: impl FnMut() -> T,
    mut until: impl FnMut(&T) -> bool,
) -> T {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let value = read();
        if until(&value) {
            return value;
        }
        assert!(
            Instant::now() < give_up,
            "{what}: not there after {PATIENCE:?}; last read {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
