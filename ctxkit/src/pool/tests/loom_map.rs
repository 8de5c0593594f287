//! loom models of the one-shot map's thread form (`map.rs` driving `map_core.rs`'s `MapCore`):
//! the consumer exchanging batches with worker threads that park while idle, the consumer
//! parking until a worker delivers or leaves, and the map stopped by the consumer or by its
//! context. Each worker is a loom thread running the thread form's own worker loop
//! (`map::work`, with `map::Body` running the batches).
//!
//! Run: `RUSTFLAGS="--cfg loom -C debug_assertions" LOOM_MAX_PREEMPTIONS=3
//! CARGO_TARGET_DIR=target/loom cargo test -p ctxkit --lib --release loom`
//!
//! `Map` itself cannot run in a model: it starts its workers through `spawn.rs`, on std
//! threads. The consumer here ([`Consumer`]) is therefore a copy of `Map`'s consumer side,
//! making the same core calls in the same order as `Map::exchange`, `next`, `stop_and_join` and
//! `into_unrun`, with loom threads for the workers. It keeps only the unordered form (the
//! ordered form differs only in the consumer's own reordering window, which no other thread
//! sees) and no `run_here` (a loom thread always starts, so `ConsumerStep::RunHere` never
//! comes).
//!
//! loom reports a deadlock when every thread is parked: that is how a lost wake-up (of the
//! consumer, of an idle worker) shows.
//! A failing model aborts the test binary once its panic is printed (the drops that run while it
//! unwinds make loom operations after loom has stopped the execution): run a model alone
//! (`-- --exact pool::tests::...`) to see each one's result.
//!
//! A worker sizes its next batch from how long the last one took (`map::next_batch_size`):
//! real time, which a model must not depend on. Each model is therefore shaped so that the
//! batch size never matters: a worker's first batch is one job, and afterwards at most one job
//! per live worker is ever queued (`MapCore::worker_exchange` takes at most a share of what is
//! queued), so every batch is one job whatever the timing.

use std::sync::Mutex as Record;

use loom::thread;

use super::super::map::{work, Body, Shared};
use super::super::map_core::{ConsumerStep, MapCore, Outcome};
use super::super::Pool;
use crate::context::{CancelContext, Context};
use crate::sync::{self, Arc, Mutex, Thread, Unpark};

/// The jobs that ran, in the order they started: a record for the checks, not part of the
/// protocol, so it is std's lock (loom does not explore it; it is never held across a loom
/// operation).
type Ran = Arc<Record<Vec<u32>>>;

/// The consumer side of a `Map` (see the module docs): its fields and its steps, with loom
/// threads for the workers.
struct Consumer {
    input: std::vec::IntoIter<u32>,
    input_ended: bool,
    in_flight: usize,
    bound: usize,
    next_index: u64,
    pulled: Vec<(u64, u32)>,
    /// Results taken from the core, in reverse (popped from the end).
    ready: Vec<(u64, Outcome<u32>)>,
    wake: Vec<Thread>,
    shared: Arc<Shared<u32, u32>>,
    body: Arc<dyn Body<u32, u32>>,
    handles: Vec<thread::JoinHandle<()>>,
    cancel: CancelContext,
    over: bool,
}

impl Consumer {
    /// As `Map::new` (an unordered map).
    fn new(
        pool: Pool,
        ctx: &Context,
        input: Vec<u32>,
        f: impl Fn(&Context, u32) -> u32 + Send + Sync + 'static,
    ) -> Consumer {
        let cancel = ctx.with_cancel();
        let shared = Arc::new(Shared {
            core: Mutex::new(MapCore::new(pool.workers)),
            ctx: cancel.context().clone(),
        });
        Consumer {
            input: input.into_iter(),
            input_ended: false,
            in_flight: 0,
            bound: pool.in_flight_bound(),
            next_index: 0,
            pulled: Vec::new(),
            ready: Vec::new(),
            wake: Vec::new(),
            shared,
            body: Arc::new(f),
            handles: Vec::new(),
            cancel,
            over: false,
        }
    }

    /// As `Map::exchange`: pulls what the bound leaves room for, exchanges with the core, wakes
    /// the idle workers it names, starts the workers it asks for, and acts on the answer.
    fn exchange(&mut self) {
        let stop = self.shared.ctx.is_done();
        if !stop && !self.input_ended {
            while self.in_flight + self.pulled.len() < self.bound {
                match self.input.next() {
                    Some(job) => {
                        self.pulled.push((self.next_index, job));
                        self.next_index += 1;
                    }
                    None => {
                        self.input_ended = true;
                        break;
                    }
                }
            }
            self.in_flight += self.pulled.len();
        }
        let me = sync::current_thread();
        let (step, start) = self.shared.core.lock().consumer_exchange(
            &mut self.pulled,
            self.input_ended,
            stop,
            &mut self.ready,
            &me,
            &mut self.wake,
        );
        for worker in self.wake.drain(..) {
            worker.unpark();
        }
        for _ in 0..start {
            // `Map::start_worker`, on a loom thread (which always starts).
            let shared = self.shared.clone();
            let body = self.body.clone();
            let id = self.handles.len() + 1;
            self.handles
                .push(thread::spawn(move || work(&shared, &*body, id)));
        }
        match step {
            // `Map::take_ready`, unordered.
            ConsumerStep::Ready => self.ready.reverse(),
            ConsumerStep::Park => sync::park(),
            ConsumerStep::RunHere => panic!("a loom worker always starts: no batch runs here"),
            ConsumerStep::Over => self.over = true,
        }
    }

    /// As `Map::next`, with each result's input index.
    fn next(&mut self) -> Option<(u64, Outcome<u32>)> {
        loop {
            if let Some(result) = self.ready.pop() {
                self.in_flight -= 1;
                return Some(result);
            }
            if self.over {
                return None;
            }
            self.exchange();
        }
    }

    /// As `Map::stop_and_join`.
    fn stop_and_join(&mut self) {
        let mut wake = Vec::new();
        self.shared.core.lock().stop(&mut wake);
        self.cancel.cancel();
        for worker in wake {
            worker.unpark();
        }
        for handle in self.handles.drain(..) {
            handle.join().unwrap();
        }
    }

    /// As `Map::into_unrun` (the jobs pulled and never run, in input order), and also the
    /// input indices of the results never read, which `into_unrun` drops: those the consumer
    /// took from the core and those still in the core (taken out here by one more exchange,
    /// after every worker has been joined, only to be looked at).
    fn into_unrun_and_unread(mut self) -> (Vec<u32>, Vec<u64>) {
        self.stop_and_join();
        let unrun = self.shared.core.lock().take_unrun();
        let mut unread: Vec<u64> = self.ready.drain(..).map(|(index, _)| index).collect();
        let mut left = Vec::new();
        let me = sync::current_thread();
        self.shared.core.lock().consumer_exchange(
            &mut Vec::new(),
            true,
            true,
            &mut left,
            &me,
            &mut self.wake,
        );
        assert!(self.wake.is_empty(), "an idle worker after the join");
        unread.extend(left.into_iter().map(|(index, _)| index));
        (unrun.into_iter().map(|(_, job)| job).collect(), unread)
    }
}

impl Drop for Consumer {
    /// As `Map`'s drop.
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// A job body that records the job's start, then returns `job + 10`.
fn recording(ran: &Ran) -> impl Fn(&Context, u32) -> u32 + Send + Sync + 'static {
    let ran = ran.clone();
    move |_ctx, job| {
        ran.lock().unwrap().push(job);
        job + 10
    }
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort_unstable();
    items
}

/// Three jobs, two workers, no queue (so at most two jobs in flight: the consumer pulls the
/// third only after reading a result): the consumer parks until a worker delivers (invariant
/// 4), an idle worker parks until the consumer queues a job or the input ends (invariant 5),
/// and every result comes out exactly once. The map then ends with nothing unrun.
#[test]
fn loom_map_every_result_once() {
    loom::model(|| {
        let ran = Ran::default();
        let mut map = Consumer::new(
            Pool::new(2).queue(0),
            &Context::background(),
            vec![0, 1, 2],
            recording(&ran),
        );
        let mut got = Vec::new();
        while let Some((index, outcome)) = map.next() {
            got.push((index, outcome.unwrap()));
        }
        assert_eq!(sorted(got), [(0, 10), (1, 11), (2, 12)]);
        let (unrun, unread) = map.into_unrun_and_unread();
        assert_eq!((unrun, unread), (vec![], vec![]));
        assert_eq!(sorted(ran.lock().unwrap().clone()), [0, 1, 2]);
    });
}

/// One worker, no queue (one job in flight): the worker delivers each result and idles in the
/// same exchange, and the consumer queues the next job only after reading that result, while
/// the input is not yet known to have ended. The consumer must wake the idle worker for it
/// (invariant 5): nobody else would.
#[test]
fn loom_map_idle_worker_vs_next_job() {
    loom::model(|| {
        let ran = Ran::default();
        let mut map = Consumer::new(
            Pool::new(1).queue(0),
            &Context::background(),
            vec![0, 1, 2],
            recording(&ran),
        );
        let mut got = Vec::new();
        while let Some((index, outcome)) = map.next() {
            got.push((index, outcome.unwrap()));
        }
        // One job at a time: in input order.
        assert_eq!(got, [(0, 10), (1, 11), (2, 12)]);
        assert_eq!(*ran.lock().unwrap(), [0, 1, 2]);
    });
}

/// The consumer reads one result and stops the map (`into_unrun`: the core stops, the
/// context is canceled, the workers are woken and joined) while the other job may be queued,
/// taken by a worker that has not yet started it, or running (invariants 2 and 3): every job
/// pulled either ran and delivered its result exactly once, or is returned unrun, never both,
/// never neither. The third job was never pulled (the in-flight bound is two).
#[test]
fn loom_map_stop_vs_running_workers() {
    loom::model(|| {
        let ran = Ran::default();
        let mut map = Consumer::new(
            Pool::new(2).queue(0),
            &Context::background(),
            vec![0, 1, 2],
            recording(&ran),
        );
        let (first, outcome) = map.next().expect("a job delivers before the stop");
        assert_eq!(outcome.unwrap(), u32::try_from(first).unwrap() + 10);
        assert_eq!(map.input.len(), 1, "pulled beyond the in-flight bound");
        let (unrun, unread) = map.into_unrun_and_unread();
        let mut delivered = unread;
        delivered.push(first);
        let ran = ran.lock().unwrap().clone();
        // Every job that ran delivered its result, once; no other result exists.
        assert_eq!(
            sorted(delivered),
            sorted(ran.iter().map(|&job| u64::from(job)).collect())
        );
        // The jobs pulled (0 and 1): each ran or came back unrun, not both.
        assert!(
            unrun.windows(2).all(|w| w[0] < w[1]),
            "unrun in input order"
        );
        let mut accounted = ran;
        accounted.extend(&unrun);
        assert_eq!(sorted(accounted), [0, 1]);
    });
}

/// The map's parent context is canceled by another thread while job 1 is queued behind job 0
/// (one worker, a queue of one). Job 0 returns only once it sees the context done, so when
/// its worker comes back for job 1 the context is done: the worker must not start it (it
/// checks before each job, invariant 3), it is returned unrun, and the map ends (the worker
/// leaves and wakes the consumer, which sees the context done and pulls nothing more: job 2
/// stays in the input).
#[test]
fn loom_map_cancel_vs_queued_jobs() {
    loom::model(|| {
        let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
        let ran = Ran::default();
        let body = {
            let ran = ran.clone();
            move |ctx: &Context, job: u32| {
                ran.lock().unwrap().push(job);
                if job == 0 {
                    ctx.wait();
                }
                job + 10
            }
        };
        let mut map = Consumer::new(Pool::new(1).queue(1), &parent, vec![0, 1, 2], body);
        let canceler = thread::spawn(move || cancel_parent.cancel());
        let mut delivered = Vec::new();
        while let Some((index, outcome)) = map.next() {
            assert_eq!(outcome.unwrap(), u32::try_from(index).unwrap() + 10);
            delivered.push(index);
        }
        canceler.join().unwrap();
        assert_eq!(map.input.len(), 1, "pulled after the context was done");
        let (unrun, unread) = map.into_unrun_and_unread();
        assert_eq!(unread, [], "a result after the end");
        let ran = ran.lock().unwrap().clone();
        // Job 0 ran and delivered, or never started (the worker saw the context done first).
        match ran[..] {
            [0] => assert_eq!((delivered, unrun), (vec![0], vec![1])),
            [] => assert_eq!((delivered, unrun), (vec![], vec![0, 1])),
            _ => panic!("a job started after its worker saw the context done: ran {ran:?}"),
        }
    });
}
