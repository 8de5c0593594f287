//! Behaviour of `KeyedLimiter`: each key decides as a `Limiter` of its own would, dropping a
//! full key changes no decision, memory stays bounded, waits keep their key, bad input.
//!
//! 1. Model checks on a fake clock (the `_at` forms, proptest): for random calls on a few keys
//!    (allows, reservations canceled in any order or kept, tokens, `retain_recent_at`), every
//!    answer equals that of a standalone `Limiter` fed the same calls for that key, the keys
//!    held are exactly those not full or still held, and per key no window of length `t`
//!    admits more than `burst + rate · t`. Then with instants going back (no pruning), and
//!    with floods of fresh keys that trigger the amortized prune.
//! 2. Threads on the real clock, 1000 keys, a janitor calling `retain_recent`: the same bound
//!    per key (with slack, below), no panic, no hang, and nothing held once all are full.
//! 3. Memory: 100 000 keys used once each on a fake clock stay within the bound the
//!    amortized prune gives, with no `retain_recent`.
//! 4. Waits: a deadline before the tokens fails at once and takes nothing; above the burst and
//!    canceled contexts fail; a waiter, a reservation or a held `Arc` keeps its key.
//! 5. Bad input, borrowed lookups (`&str` on `String` keys), `Debug`.
//!
//! Six of these were found as defects of `keyed.rs` in review (a key dropped at a later
//! instant refilled for an earlier one; a busy working set dropped and made again by the
//! amortized prune; `f64` rounding in the "full" test; per-key settings lost; `tokens_at` of an
//! unheld key; see their doc comments) and pass since the fix.
//!
//! Timing bounds are generous (a loaded 2-core runner): "at once" is checked against a wait of
//! an hour, never a tight figure.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{clock_seed, poll_once, wait_until, watchdog, XorShift, HOUR, PATIENCE};
use ctxkit::rate::{KeyedLimiter, Limiter, OwnedReservation};
use ctxkit::Context;
use proptest::prelude::*;

/// `keyed.rs`'s `PRUNE_FLOOR`: a shard holds at least this many keys before an insertion
/// prunes it.
const PRUNE_FLOOR: usize = 64;

fn at(t0: Instant, ns: u64) -> Instant {
    t0 + Duration::from_nanos(ns)
}

fn since(t0: Instant, instant: Instant) -> u64 {
    instant.duration_since(t0).as_nanos() as u64
}

/// The number of shards, as `Debug` reports it.
fn shards<K, S>(keyed: &KeyedLimiter<K, S>) -> usize {
    let text = format!("{keyed:?}");
    let rest = text
        .split("shards: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no shard count in {text}"));
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no shard count in {text}"))
}

/// Checks that the admissions `(instant, tokens)` of one key never exceed
/// `burst + slack + t / interval` tokens in any window `[start, start + t]`.
fn check_windows(
    what: &str,
    admitted: &mut [(u64, u64)],
    interval: u64,
    burst: u32,
    slack: u64,
) -> Result<(), String> {
    admitted.sort_unstable();
    for (i, &(start, _)) in admitted.iter().enumerate() {
        let mut tokens = 0u64;
        for &(end, n) in &admitted[i..] {
            tokens += n;
            if u128::from(tokens) * u128::from(interval)
                > u128::from(u64::from(burst) + slack) * u128::from(interval)
                    + u128::from(end - start)
            {
                return Err(format!(
                    "{what}: {tokens} tokens in [{start}, {end}] ns at {interval} ns per token, \
                     burst {burst}, slack {slack}"
                ));
            }
        }
    }
    Ok(())
}

// ===== 1. model checks on a fake clock =====

#[derive(Clone, Copy, Debug)]
enum Rate {
    /// One token per this many nanoseconds (whole, the limiter's resolution: exact bounds).
    Every(u64),
    /// Spends its burst, never earns more.
    Zero,
    /// Admits everything.
    Unlimited,
}

impl Rate {
    fn per_second(self) -> f64 {
        match self {
            Rate::Every(ns) => 1e9 / ns as f64,
            Rate::Zero => 0.0,
            Rate::Unlimited => f64::INFINITY,
        }
    }

    /// The unit the clock moves in: an interval, or a millisecond.
    fn unit(self) -> u64 {
        match self {
            Rate::Every(ns) => ns,
            Rate::Zero | Rate::Unlimited => 1_000_000,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Allow(u32),
    /// Reserve and hold the reservation.
    Reserve(u32),
    /// Cancel the held reservation at this index (modulo how many are held), of any key.
    Cancel(usize),
    /// Drop the held reservation at this index uncanceled: its tokens stay spent.
    Forget(usize),
    /// Compare the tokens.
    Tokens,
    /// `retain_recent_at` now.
    Retain,
    /// Use this many times (shards · 40) fresh keys once each, the clock moving a sixteenth
    /// of a unit between them: floods the shards, so insertions prune.
    Flood(u32),
}

/// (key, advance in thousandths of a unit, how far back this call's instant is in
/// thousandths of a unit, op).
type Step = (u32, u64, u64, Op);

fn rate_and_burst() -> impl Strategy<Value = (Rate, u32)> {
    prop_oneof![
        6 => (
            prop_oneof![Just(1_000u64), Just(1_000_000), 1_000u64..5_000_000],
            1u32..8,
        )
            .prop_map(|(ns, burst)| (Rate::Every(ns), burst)),
        1 => (0u32..4).prop_map(|burst| (Rate::Zero, burst)),
        1 => (0u32..4).prop_map(|burst| (Rate::Unlimited, burst)),
    ]
}

/// What a strategy of steps may hold.
#[derive(Clone, Copy)]
struct Mix {
    retain: bool,
    back: bool,
    flood: bool,
}

fn steps(burst: u32, keys: u32, mix: Mix) -> impl Strategy<Value = Vec<Step>> {
    let n = 0..=burst + 1;
    let op = prop_oneof![
        4 => n.clone().prop_map(Op::Allow),
        2 => n.prop_map(Op::Reserve),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => any::<usize>().prop_map(Op::Forget),
        1 => Just(Op::Tokens),
        u32::from(mix.retain) => Just(Op::Retain),
        u32::from(mix.flood) => (1u32..=3).prop_map(Op::Flood),
    ];
    // Mostly short steps; sometimes long enough for a bucket to fill up again.
    let advance = prop_oneof![4 => 0u64..2500, 1 => 0u64..u64::from(burst + 2) * 1000];
    let back = if mix.back {
        prop_oneof![3 => Just(0u64), 1 => 0u64..5000].boxed()
    } else {
        Just(0u64).boxed()
    };
    proptest::collection::vec((0..keys, advance, back, op), 1..80)
}

/// A reservation held on the keyed limiter and its twin on the key's model.
struct Held {
    key: u32,
    keyed: OwnedReservation,
    model: OwnedReservation,
    /// Its time to act, in ns since t0.
    act: u64,
}

/// Runs `steps` on a `KeyedLimiter<u32>` and, per key, on a standalone `Limiter` (made at the
/// key's first call), checking every answer alike if `exact` (and which keys are held);
/// returns each key's admissions `(instant, tokens)`: an allow at its instant, a reservation
/// at its time to act unless canceled in time (kept and forgotten ones act).
fn run_model(
    rate: Rate,
    burst: u32,
    steps: &[Step],
    exact: bool,
) -> Result<HashMap<u32, Vec<(u64, u64)>>, TestCaseError> {
    // Far enough from the clock's base that instants may go back.
    let t0 = Instant::now() + Duration::from_secs(10);
    let keyed: KeyedLimiter<u32> = KeyedLimiter::new(rate.per_second(), burst).unwrap();
    let shard_count = shards(&keyed) as u32;
    let unit = rate.unit();
    let mut models: HashMap<u32, Arc<Limiter>> = HashMap::new();
    // The keys the keyed limiter must hold, while no flood has made that unknowable.
    let mut present: Option<HashSet<u32>> = exact.then(HashSet::new);
    let mut held: Vec<Held> = Vec::new();
    let mut admitted: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
    let mut fresh = 1_000_000u32;
    let mut latest = 0u64;
    for (key, advance, back, op) in steps {
        let key = *key;
        latest += advance * unit / 1000;
        let now_ns = latest.saturating_sub(back * unit / 1000);
        let now = at(t0, now_ns);
        let model = |models: &mut HashMap<u32, Arc<Limiter>>| {
            models
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(Limiter::new_at(rate.per_second(), burst, now).unwrap())
                })
                .clone()
        };
        match *op {
            Op::Allow(n) => {
                let ok = keyed.allow_n_at(&key, now, n);
                let twin = model(&mut models).allow_n_at(now, n);
                prop_assert!(
                    !exact || ok == twin,
                    "allow_n({}): {} where its limiter: {}",
                    n,
                    ok,
                    twin
                );
                if ok {
                    admitted
                        .entry(key)
                        .or_default()
                        .push((now_ns, u64::from(n)));
                }
                if let Some(present) = &mut present {
                    present.insert(key);
                }
            }
            Op::Reserve(n) => {
                let mine = keyed.reserve_n_at(&key, now, n);
                let twin = model(&mut models).reserve_n_owned_at(now, n);
                if exact {
                    prop_assert_eq!(
                        mine.as_ref().map(OwnedReservation::time_to_act),
                        twin.as_ref().map(OwnedReservation::time_to_act),
                        "reserve_n({})",
                        n
                    );
                }
                if let (Some(mine), Some(twin)) = (mine, twin) {
                    prop_assert_eq!(mine.tokens(), n);
                    let act = since(t0, mine.time_to_act());
                    prop_assert!(act >= now_ns);
                    held.push(Held {
                        key,
                        keyed: mine,
                        model: twin,
                        act,
                    });
                }
                if let Some(present) = &mut present {
                    present.insert(key);
                }
            }
            Op::Cancel(i) | Op::Forget(i) if !held.is_empty() => {
                let h = held.swap_remove(i % held.len());
                let n = u64::from(h.keyed.tokens());
                if matches!(op, Op::Cancel(_)) {
                    h.keyed.cancel_at(now);
                    h.model.cancel_at(now);
                    if now_ns > h.act {
                        admitted.entry(h.key).or_default().push((h.act, n)); // it acted
                    }
                } else {
                    admitted.entry(h.key).or_default().push((h.act, n));
                }
            }
            Op::Cancel(_) | Op::Forget(_) => {}
            Op::Tokens => {
                let mine = keyed.tokens_at(&key, now);
                // A key never seen holds a full bucket, as a new limiter does.
                let twin = models
                    .get(&key)
                    .map_or(f64::from(burst), |m| m.tokens_at(now));
                // Unlimited: a key not held reads `burst`, a held one infinity (see the
                // ignored test `tokens_at_of_a_key_not_held_is_that_of_a_new_limiter`).
                if exact && !matches!(rate, Rate::Unlimited) {
                    prop_assert_eq!(mine, twin, "tokens of key {}", key);
                }
            }
            Op::Retain => {
                let dropped = keyed.retain_recent_at(now);
                if let Some(present) = &mut present {
                    let busy: HashSet<u32> = held.iter().map(|h| h.key).collect();
                    let full = |k: &u32| models[k].tokens_at(now) >= f64::from(burst);
                    let gone: Vec<u32> = present
                        .iter()
                        .copied()
                        .filter(|k| !busy.contains(k) && full(k))
                        .collect();
                    prop_assert_eq!(dropped, gone.len(), "dropped at {} ns", now_ns);
                    for k in gone {
                        present.remove(&k);
                    }
                }
            }
            Op::Flood(times) => {
                present = None;
                for _ in 0..times * shard_count * 40 {
                    latest += (unit / 16).max(1);
                    fresh += 1;
                    let ok = keyed.allow_at(&fresh, at(t0, latest));
                    prop_assert_eq!(ok, matches!(rate, Rate::Unlimited) || burst >= 1);
                }
                // A key with a reservation outstanding is still the one its reservation
                // came from: the same tokens as its model.
                let now = at(t0, latest);
                for h in &held {
                    if exact && !matches!(rate, Rate::Unlimited) {
                        prop_assert_eq!(
                            keyed.tokens_at(&h.key, now),
                            models[&h.key].tokens_at(now),
                            "held key {} after a flood",
                            h.key
                        );
                    }
                }
            }
        }
        if let Some(present) = &present {
            prop_assert_eq!(keyed.len(), present.len(), "keys held after {:?}", op);
        }
    }
    for h in held {
        admitted
            .entry(h.key)
            .or_default()
            .push((h.act, u64::from(h.keyed.tokens())));
    }
    Ok(admitted)
}

/// Checks the bound of each key's admissions: `burst + rate · t` per window for a positive
/// rate, `burst` in all for a zero rate.
fn check_bound(
    rate: Rate,
    burst: u32,
    admitted: HashMap<u32, Vec<(u64, u64)>>,
) -> Result<(), TestCaseError> {
    for (key, mut admitted) in admitted {
        match rate {
            Rate::Every(ns) => {
                check_windows(&format!("key {key}"), &mut admitted, ns, burst, 0)
                    .map_err(TestCaseError::fail)?;
            }
            Rate::Zero => {
                let total: u64 = admitted.iter().map(|&(_, n)| n).sum();
                prop_assert!(total <= u64::from(burst), "key {}: {} tokens", key, total);
            }
            Rate::Unlimited => {}
        }
    }
    Ok(())
}

proptest! {
    /// Allows, reservations (canceled in any order, kept, forgotten), tokens and
    /// `retain_recent_at` on a few keys, the clock never going back: each key answers as its
    /// own `Limiter`, `retain_recent_at` drops exactly the full keys nobody holds (and so
    /// changes no answer), and no key over-admits.
    #[test]
    fn each_key_decides_as_its_own_limiter_across_retain_recent(
        (rate, burst, steps) in rate_and_burst().prop_flat_map(|(rate, burst)| {
            let mix = Mix { retain: true, back: false, flood: false };
            (Just(rate), Just(burst), steps(burst, 4, mix))
        }),
    ) {
        let admitted = run_model(rate, burst, &steps, true)?;
        check_bound(rate, burst, admitted)?;
    }

    /// Instants that go back (as racing threads' do), earlier than a key's first call too:
    /// each key still answers as its own `Limiter`, and no key over-admits. No pruning here:
    /// after a prune at an instant later than a decision's, a key made again answers more
    /// cautiously than its own limiter would (see
    /// `a_key_dropped_at_a_later_instant_is_not_refilled_for_an_earlier_one`), so only the
    /// bound is checked for that mix, below.
    #[test]
    fn with_instants_going_back_each_key_decides_as_its_own_limiter(
        (rate, burst, steps) in rate_and_burst().prop_flat_map(|(rate, burst)| {
            let mix = Mix { retain: false, back: true, flood: false };
            (Just(rate), Just(burst), steps(burst, 4, mix))
        }),
    ) {
        let admitted = run_model(rate, burst, &steps, true)?;
        check_bound(rate, burst, admitted)?;
    }
}

proptest! {
    // The cases that over-admit are rare among random ones: look at more.
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Instants going back *and* `retain_recent_at`: a key dropped at one instant must not
    /// admit more at an earlier one than its bucket held then, so no key over-admits. (Its
    /// answers need not equal its own limiter's: a fix may answer more cautiously for such
    /// instants; only the bound is checked.) Found as a defect in review, with
    /// `a_key_dropped_at_a_later_instant_is_not_refilled_for_an_earlier_one`; fixed by the
    /// shard's `floor`.
    #[test]
    fn with_instants_going_back_across_retain_recent_no_key_over_admits(
        (rate, burst, steps) in rate_and_burst().prop_flat_map(|(rate, burst)| {
            let mix = Mix { retain: true, back: true, flood: false };
            (Just(rate), Just(burst), steps(burst, 4, mix))
        }),
    ) {
        let admitted = run_model(rate, burst, &steps, false)?;
        check_bound(rate, burst, admitted)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Floods of fresh keys among the calls on a few keys, so that insertions prune their
    /// shards: the few keys still answer as their own limiters (a pruned key was full and
    /// unheld, so dropping it changed nothing), a key with a reservation outstanding keeps its
    /// bucket, and no key over-admits.
    #[test]
    fn the_amortized_prune_changes_no_decision(
        (rate, burst, steps) in rate_and_burst().prop_flat_map(|(rate, burst)| {
            let mix = Mix { retain: true, back: false, flood: true };
            (Just(rate), Just(burst), steps(burst, 4, mix))
        }),
    ) {
        let admitted = run_model(rate, burst, &steps, true)?;
        check_bound(rate, burst, admitted)?;
    }
}

#[test]
fn a_key_full_again_is_dropped_and_then_decides_as_a_new_one() {
    let t0 = Instant::now();
    let ms = Duration::from_millis(1);
    let keyed: KeyedLimiter<u64> = KeyedLimiter::new(1000, 2).unwrap();
    assert!(keyed.allow_n_at(&1, t0, 2));
    assert!(keyed.allow_at(&2, t0));
    // One ms later key 2 is full again, key 1 holds one token of two.
    assert_eq!(keyed.retain_recent_at(t0 + ms), 1);
    assert_eq!(keyed.len(), 1);
    assert_eq!(keyed.tokens_at(&1, t0 + ms), 1.0);
    assert_eq!(
        keyed.tokens_at(&2, t0 + ms),
        2.0,
        "a key not held reads full"
    );
    assert!(keyed.allow_n_at(&2, t0 + ms, 2));
    assert!(!keyed.allow_n_at(&1, t0 + ms, 2));
    // n = 0 asks for nothing: true on a key never seen (which it makes, full, droppable).
    assert!(keyed.allow_n_at(&3, t0 + ms, 0));
    assert_eq!(keyed.retain_recent_at(t0 + 3 * ms), 3);
    assert!(keyed.is_empty());
}

// ===== 2. threads on the real clock =====

/// Threads call allows, reservations (kept, or canceled later at a random instant) and
/// `limiter` on 1000 keys, whose hot set drifts so keys go idle and come back; a janitor calls
/// `retain_recent` throughout. Each admission is made with an instant the test reads (the
/// `_at` forms on the real clock), so each key's admissions are checked against
/// `burst + rate · t` over every window, exactly but for a small slack (below).
#[test]
fn threads_on_many_keys_never_over_admit_a_key() {
    const KEYS: u64 = 1000;
    const THREADS: u64 = 4;
    const RATE: u64 = 100; // per second: 10 ms a token
    const BURST: u32 = 3; // a bucket fills up again 30 ms after its last take
    const RUN: Duration = Duration::from_millis(400);
    // Tokens of slack per window: none is needed by the model (a decision whose instant was
    // read before the janitor pruned its key finds a bucket made at the shard's floor, no
    // fuller than the dropped one; see
    // `a_key_dropped_at_a_later_instant_is_not_refilled_for_an_earlier_one`); one token
    // covers the rounding of instants to whole nanoseconds.
    const SLACK: u64 = 1;

    let seed = clock_seed();
    println!("seed {seed}");
    let keyed: Arc<KeyedLimiter<u64>> = Arc::new(KeyedLimiter::new(RATE as f64, BURST).unwrap());
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let most_held = Arc::new(AtomicUsize::new(0));
    let log: Arc<Mutex<Vec<(u64, u64, u64)>>> = Arc::default(); // (key, ns since t0, tokens)

    let run = {
        let (keyed, stop, most_held, log) =
            (keyed.clone(), stop.clone(), most_held.clone(), log.clone());
        move || {
            let janitor = {
                let (keyed, stop, most_held) = (keyed.clone(), stop.clone(), most_held.clone());
                thread::spawn(move || {
                    let mut rounds = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        keyed.retain_recent();
                        most_held.fetch_max(keyed.len(), Ordering::Relaxed);
                        rounds += 1;
                        thread::sleep(Duration::from_millis(1));
                    }
                    rounds
                })
            };
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (keyed, log) = (keyed.clone(), log.clone());
                    thread::spawn(move || {
                        let mut rng = XorShift::new(seed.wrapping_add(t));
                        let mut mine = Vec::new();
                        let mut held: Vec<(u64, OwnedReservation)> = Vec::new();
                        let mut ops = 0u64;
                        while t0.elapsed() < RUN {
                            ops += 1;
                            // A fifth of the calls on 10 keys kept busy throughout; the
                            // rest on a hot set of 40 of the other keys, moving 3 keys a
                            // millisecond (so round all of them), whose keys go idle, fill
                            // up, are dropped and come back.
                            let key = if rng.below(5) == 0 {
                                rng.below(10) as u64
                            } else {
                                let drift = 3 * since(t0, Instant::now()) / 1_000_000;
                                10 + (drift + t * 7 + rng.below(40) as u64) % (KEYS - 10)
                            };
                            let now = Instant::now();
                            match rng.below(20) {
                                0..=12 => {
                                    let n = 1 + rng.below(2) as u32;
                                    if keyed.allow_n_at(&key, now, n) {
                                        mine.push((key, since(t0, now), u64::from(n)));
                                    }
                                }
                                13..=15 if held.len() < 4 => {
                                    if let Some(r) = keyed.reserve_n_at(&key, now, 1) {
                                        held.push((key, r));
                                    }
                                }
                                13..=17 if !held.is_empty() => {
                                    let (key, r) = held.swap_remove(rng.below(held.len()));
                                    let act = r.time_to_act();
                                    r.cancel_at(now);
                                    if now > act {
                                        mine.push((key, since(t0, act), 1)); // it acted
                                    }
                                }
                                18 => {
                                    let own = keyed.limiter(&key);
                                    assert_eq!(own.burst(), BURST);
                                }
                                _ => {
                                    let tokens = keyed.tokens_at(&key, now);
                                    assert!(tokens <= f64::from(BURST), "{tokens}");
                                }
                            }
                        }
                        let now = Instant::now();
                        for (key, r) in held {
                            let act = r.time_to_act();
                            r.cancel_at(now);
                            if now > act {
                                mine.push((key, since(t0, act), 1));
                            }
                        }
                        log.lock().unwrap().extend(mine);
                        ops
                    })
                })
                .collect();
            let ops: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
            stop.store(true, Ordering::Relaxed);
            let rounds = janitor.join().unwrap();
            (ops, rounds)
        }
    };
    let (ops, rounds) = watchdog("threads on many keys", run);
    let elapsed = since(t0, Instant::now());
    let log = std::mem::take(&mut *log.lock().unwrap());
    let mut per_key: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    for (key, instant, n) in log {
        per_key.entry(key).or_default().push((instant, n));
    }
    let interval = 1_000_000_000 / RATE;
    let total: u64 = per_key.values().flatten().map(|&(_, n)| n).sum();
    println!(
        "{ops} calls, {total} tokens admitted over {} keys, {rounds} janitor rounds, at most {} keys held",
        per_key.len(),
        most_held.load(Ordering::Relaxed)
    );
    assert!(rounds > 0 && ops > 0);
    for (key, admitted) in &mut per_key {
        let sum: u64 = admitted.iter().map(|&(_, n)| n).sum();
        let bound = u64::from(BURST) + SLACK + elapsed / interval;
        assert!(sum <= bound, "key {key}: {sum} tokens in {elapsed} ns");
        if let Err(e) = check_windows(&format!("key {key}"), admitted, interval, BURST, SLACK) {
            panic!("{e} (seed {seed})");
        }
    }
    assert!(most_held.load(Ordering::Relaxed) <= KEYS as usize);
    // Once every bucket is full again and nothing is held, nothing is kept.
    let later = Instant::now() + Duration::from_millis(100);
    keyed.retain_recent_at(later);
    assert!(keyed.is_empty(), "{} keys still held", keyed.len());
}

// ===== 3. memory =====

/// 100 000 keys, each used once, 10 µs apart on a fake clock, at 1000 tokens a second: a key is
/// full again 1 ms (100 keys) after its use. No `retain_recent`: only the amortized prune.
///
/// The bound, from `keyed.rs`: an insertion into a shard holding `len` keys first prunes it
/// when `len >= max(PRUNE_FLOOR, 2 · r)`, where `r` is how many keys its last prune kept; so a
/// shard never holds more than `max(PRUNE_FLOOR, 2 · r)` keys. A prune keeps only keys that
/// are not full (here: used in the last 1 ms, at most `LIVE` = 99 keys besides the one being
/// inserted), so `r <= LIVE` and the limiter holds at most
/// `shards · max(PRUNE_FLOOR, 2 · LIVE)` keys (3 168 with 16 shards), whatever the hash.
/// (Were the prune to wait until a bucket has been full for a whole bucket time, as proposed
/// for `a_steady_working_set_is_not_dropped_and_made_again`, `LIVE` would be the keys of the
/// last 6 ms, 599, and the bound 16 · 1198.)
#[test]
fn keys_used_once_stay_bounded_by_the_amortized_prune_alone() {
    const KEYS: u64 = 100_000;
    const STEP: u64 = 10_000; // ns between keys
    const INTERVAL: u64 = 1_000_000; // ns per token
    const LIVE: usize = (INTERVAL / STEP) as usize - 1;
    let t0 = Instant::now();
    let keyed: KeyedLimiter<u64> = KeyedLimiter::new(1e9 / INTERVAL as f64, 5).unwrap();
    let bound = shards(&keyed) * PRUNE_FLOOR.max(2 * LIVE);
    let mut most = 0;
    for key in 0..KEYS {
        assert!(keyed.allow_at(&key, at(t0, key * STEP)));
        if key % 97 == 0 {
            let len = keyed.len();
            most = most.max(len);
            assert!(len <= bound, "{len} keys held after {key}, bound {bound}");
        }
    }
    let len = keyed.len();
    println!(
        "{} shards: at most {most} keys held of {KEYS}, {len} at the end (bound {bound})",
        shards(&keyed)
    );
    assert!(len <= bound);
    assert!(most <= bound);
    // What an explicit prune keeps: only the keys of the last millisecond.
    let last = at(t0, (KEYS - 1) * STEP);
    keyed.retain_recent_at(last);
    assert!(keyed.len() <= LIVE + 1, "{} keys", keyed.len());
}

// ===== 4. waits =====

/// One token an hour, bursts of 1: a wait on a spent key cannot end while a test runs.
fn hourly() -> KeyedLimiter<String> {
    KeyedLimiter::new(1.0 / HOUR.as_secs_f64(), 1).unwrap()
}

#[test]
fn a_wait_whose_deadline_comes_first_fails_at_once_and_takes_nothing() {
    let keyed = hourly();
    let t1 = Instant::now();
    assert!(keyed.allow_at("async", t1));
    assert!(keyed.allow_at("blocking", t1));
    // The token comes in an hour; the deadline, long before.
    let ctx = Context::background().with_timeout(PATIENCE);
    let started = Instant::now();
    let err = futures::executor::block_on(keyed.wait_n(&ctx, "async", 1)).unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err}");
    let err = keyed.blocking_wait_n(&ctx, "blocking", 1).unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err}");
    assert!(started.elapsed() < PATIENCE / 2, "not at once");
    assert_eq!(ctx.err(), None, "the context itself is not done");
    // Nothing taken: the next token is still there an hour after the first.
    assert!(keyed.allow_at("async", t1 + HOUR));
    assert!(keyed.allow_at("blocking", t1 + HOUR));
}

#[test]
fn a_wait_above_the_burst_fails_and_takes_nothing() {
    let keyed: KeyedLimiter<String> = KeyedLimiter::new(1000, 2).unwrap();
    let ctx = Context::background();
    let err = futures::executor::block_on(keyed.wait_n(&ctx, "a", 3)).unwrap_err();
    assert!(err.is_exceeds_burst(), "{err}");
    let err = keyed.blocking_wait_n(&ctx, "b", 3).unwrap_err();
    assert!(err.is_exceeds_burst(), "{err}");
    // Even on a canceled context, as `Limiter` reports it.
    let done = Context::background().with_cancel();
    done.cancel();
    assert!(keyed
        .blocking_wait_n(&done, "b", 3)
        .unwrap_err()
        .is_exceeds_burst());
    let now = Instant::now();
    assert_eq!(keyed.tokens_at("a", now), 2.0);
    assert_eq!(keyed.tokens_at("b", now), 2.0);
}

#[test]
fn a_wait_on_a_canceled_context_fails_and_takes_nothing() {
    let keyed: KeyedLimiter<String> = KeyedLimiter::new(1000, 2).unwrap();
    let ctx = Context::background().with_cancel();
    ctx.cancel();
    let err = futures::executor::block_on(keyed.wait_n(&ctx, "a", 1)).unwrap_err();
    assert!(err.is_canceled(), "{err}");
    let err = keyed.blocking_wait_n(&ctx, "a", 2).unwrap_err();
    assert!(err.is_canceled(), "{err}");
    assert_eq!(keyed.tokens_at("a", Instant::now()), 2.0);
    // A context that is not done waits and takes. (Seen from an instant before the takes, so
    // a slow machine refilling the bucket meanwhile cannot change the answer.)
    let before = Instant::now();
    keyed
        .blocking_wait_n(&Context::background(), "a", 2)
        .unwrap();
    futures::executor::block_on(keyed.wait_n(&Context::background(), "a", 1)).unwrap();
    assert!(keyed.tokens_at("a", before) < 1.0);
}

#[test]
fn a_blocking_waiter_keeps_its_key() {
    let keyed = Arc::new(hourly());
    let t1 = Instant::now();
    assert!(keyed.allow_at("k", t1));
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let waiter = {
        let keyed = keyed.clone();
        thread::spawn(move || keyed.blocking_wait_n(&ctx, "k", 1))
    };
    wait_until(
        "the waiter's reservation",
        || keyed.tokens_at("k", Instant::now()),
        |&t| t < -0.5,
    );
    // Ten hours on, the bucket is full again: only the waiter keeps the key.
    let far = Instant::now() + 10 * HOUR;
    assert_eq!(keyed.retain_recent_at(far), 0);
    assert_eq!(keyed.len(), 1);
    cancel.cancel();
    let result = watchdog("a canceled blocking wait", move || waiter.join().unwrap());
    assert!(result.unwrap_err().is_canceled());
    // Its token is back (the spent one comes an hour after t1), and the key can go.
    assert!(keyed.tokens_at("k", Instant::now()) > -0.01);
    assert!(keyed.allow_at("k", t1 + HOUR));
    assert_eq!(keyed.retain_recent_at(far + HOUR), 1);
    assert!(keyed.is_empty());
}

#[test]
fn an_async_waiter_keeps_its_key_until_dropped() {
    let keyed = hourly();
    let t1 = Instant::now();
    assert!(keyed.allow_at("k", t1));
    let ctx = Context::background();
    let mut wait = Box::pin(keyed.wait_n(&ctx, "k", 1));
    assert!(poll_once(&mut wait).is_pending());
    assert!(keyed.tokens_at("k", Instant::now()) < -0.5, "reserved");
    let far = Instant::now() + 10 * HOUR;
    assert_eq!(keyed.retain_recent_at(far), 0);
    // Dropping the wait gives its token back and lets the key go.
    drop(wait);
    assert!(keyed.tokens_at("k", Instant::now()) > -0.01);
    assert_eq!(keyed.retain_recent_at(far), 1);
    assert!(keyed.is_empty());
}

#[test]
fn a_reservation_or_a_held_limiter_keeps_its_key() {
    let keyed = hourly();
    let t1 = Instant::now();
    let far = t1 + 10 * HOUR;
    let r = keyed.reserve_n_at("r", t1, 1).unwrap();
    let own = keyed.limiter("l");
    assert!(own.allow_at(t1));
    assert_eq!(keyed.retain_recent_at(far), 0);
    assert_eq!(keyed.len(), 2);
    // The key's limiter is the one the reservation came from: a cancel gives the token back
    // to the bucket the keyed limiter decides on.
    r.cancel_at(t1);
    assert_eq!(keyed.tokens_at("r", t1), 1.0);
    assert!(Arc::ptr_eq(&own, &keyed.limiter("l")));
    assert_eq!(keyed.tokens_at("l", t1), 0.0);
    drop(own);
    assert_eq!(keyed.retain_recent_at(far), 2);
    assert!(keyed.is_empty());
}

// ===== 5. bad input, lookups, Debug =====

#[test]
fn bad_configurations_are_errors_as_for_a_limiter() {
    for (rate, burst) in [
        (f64::NAN, 1),
        (-1.0, 1),
        (f64::NEG_INFINITY, 5),
        (-1e-300, 0),
        (1.0, 0),
        (1e-300, 0),
    ] {
        let single = Limiter::new(rate, burst).unwrap_err();
        let keyed = KeyedLimiter::<u64>::new(rate, burst).unwrap_err();
        assert_eq!(keyed, single, "rate {rate}, burst {burst}");
        let hashed = KeyedLimiter::<u64, std::collections::hash_map::RandomState>::with_hasher(
            rate,
            burst,
            Default::default(),
        )
        .unwrap_err();
        assert_eq!(hashed, single);
    }
    assert_eq!(
        KeyedLimiter::<u64>::new(f64::NAN, 1)
            .unwrap_err()
            .to_string(),
        "ctxkit::rate: rate is NaN"
    );
}

#[test]
fn zero_and_infinite_rates_work_per_key() {
    let t = Instant::now();
    // A zero rate: each key spends its burst, once.
    let frozen: KeyedLimiter<u64> = KeyedLimiter::new(0, 2).unwrap();
    assert!(frozen.allow_n_at(&1, t, 2));
    assert!(!frozen.allow_at(&1, t + HOUR));
    assert!(frozen.reserve_n_at(&1, t, 1).is_none(), "never comes");
    assert!(frozen.allow_n_at(&2, t, 2), "another key has its own");
    assert!(frozen
        .blocking_wait_n(&Context::background(), &1, 1)
        .is_err());
    // A spent key is never full again, so it is never dropped; an unspent one is.
    assert!(frozen.allow_n_at(&3, t, 0));
    assert_eq!(frozen.retain_recent_at(t + HOUR), 1);
    assert_eq!(frozen.len(), 2);
    // A zero rate and a zero burst: nothing but requests for nothing.
    let none: KeyedLimiter<u64> = KeyedLimiter::new(0, 0).unwrap();
    assert!(!none.allow_at(&1, t));
    assert!(none.allow_n_at(&1, t, 0));
    // Unlimited: everything, and nothing to keep.
    let all: KeyedLimiter<u64> = KeyedLimiter::new(f64::INFINITY, 0).unwrap();
    assert!(all.allow_n_at(&1, t, u32::MAX));
    assert_eq!(all.reserve_n_at(&1, t, u32::MAX).unwrap().time_to_act(), t);
    all.blocking_wait_n(&Context::background(), &1, u32::MAX)
        .unwrap();
    assert_eq!(all.retain_recent_at(t), 1);
    assert!(all.is_empty());
}

#[test]
fn string_keys_are_found_by_str() {
    let keyed: KeyedLimiter<String> = KeyedLimiter::new(1, 3).unwrap();
    let t = Instant::now();
    let ctx = Context::background();
    assert!(keyed.allow_at("alice", t));
    assert!(keyed.allow_n_at("alice", t, 1));
    let owned = String::from("alice");
    assert!(keyed.allow_at(&owned, t), "a &String finds the same bucket");
    assert!(!keyed.allow_at("alice", t));
    assert_eq!(keyed.tokens_at("alice", t), 0.0);
    assert_eq!(keyed.limiter("alice").tokens_at(t), 0.0);
    assert!(keyed.reserve_n_at("bob", t, 3).is_some());
    keyed.blocking_wait_n(&ctx, "carol", 1).unwrap();
    futures::executor::block_on(keyed.wait_n(&ctx, "dave", 1)).unwrap();
    assert_eq!(keyed.len(), 4);
    // Byte strings by slice.
    let bytes: KeyedLimiter<Vec<u8>> = KeyedLimiter::new(1, 1).unwrap();
    assert!(bytes.allow_at(&b"10.0.0.1"[..], t));
    assert!(!bytes.allow_at(&b"10.0.0.1".to_vec(), t));
}

fn assert_send_sync<T: Send + Sync>(_: &T) {}

#[test]
fn keyed_limiters_and_their_waits_are_send_and_sync() {
    let keyed: KeyedLimiter<String> = KeyedLimiter::new(1, 1).unwrap();
    assert_send_sync(&keyed);
    let ctx = Context::background();
    let wait = keyed.wait_n(&ctx, "a", 1);
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&wait);
}

/// A key type with no `Debug`: the limiter's `Debug` needs none.
#[derive(PartialEq, Eq, Hash, Clone)]
struct Opaque(u64);

#[test]
fn debug_shows_the_configuration_and_no_keys() {
    let keyed: KeyedLimiter<Opaque> = KeyedLimiter::new(2.5, 4).unwrap();
    assert!(keyed.allow(&Opaque(7)));
    let text = format!("{keyed:?}");
    assert!(
        text.starts_with("KeyedLimiter { rate: 2.5, burst: 4, shards: "),
        "{text}"
    );
    assert!(text.ends_with(", .. }"), "{text}");
    let n = shards(&keyed);
    assert!(
        n.is_power_of_two() && (16..=1024).contains(&n),
        "{n} shards"
    );
    let pretty = format!("{keyed:#?}");
    assert!(pretty.contains("\n    burst: 4,\n"), "{pretty}");
}

// ===== defects found in review, fixed =====

/// A key is dropped by `retain_recent_at(p)` when full at `p`; a decision at an earlier
/// instant (a racing thread whose clock read came before the janitor's, or any `_at` caller)
/// then finds a new, full bucket where the dropped one held less. Here: two tokens at `t0`,
/// the key dropped at `t0 + 2 s` (full again), then two more at `t0 + 1 s`: 4 tokens in
/// 1 s where `burst + rate · t` allows 3, and the key's own `Limiter` refuses.
#[test]
fn a_key_dropped_at_a_later_instant_is_not_refilled_for_an_earlier_one() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let keyed: KeyedLimiter<u64> = KeyedLimiter::new(1, 2).unwrap();
    let model = Limiter::new_at(1, 2, t0).unwrap();
    assert!(keyed.allow_n_at(&1, t0, 2) && model.allow_n_at(t0, 2));
    assert_eq!(keyed.retain_recent_at(t0 + 2 * s), 1);
    assert_eq!(
        keyed.allow_n_at(&1, t0 + s, 2),
        model.allow_n_at(t0 + s, 2),
        "4 tokens admitted in 1 s at 1 a second, bursts of 2"
    );
}

/// `idle` compares the `f64` tokens with the burst; above about 104 days of bucket (2^53 ns)
/// the conversion rounds a bucket 1 ns short of full up to full, so the key is dropped and a
/// new full bucket admits a whole burst 1 ns early: `2 · burst` tokens in a window shorter
/// than `tau`, where `burst + rate · t` allows less than `2 · burst`.
#[test]
fn a_bucket_short_of_full_by_less_than_f64_resolution_is_not_dropped() {
    let t0 = Instant::now();
    // One token every 1000 s, bursts of 10 000: the bucket is 1e16 ns (115 days).
    let keyed: KeyedLimiter<u64> = KeyedLimiter::new(1e-3, 10_000).unwrap();
    let model = Limiter::new_at(1e-3, 10_000, t0).unwrap();
    assert!(keyed.allow_n_at(&1, t0, 10_000) && model.allow_n_at(t0, 10_000));
    let short = t0 + Duration::from_nanos(10_000_000_000_000_000 - 1);
    assert_eq!(
        keyed.retain_recent_at(short),
        0,
        "dropped 1 ns before its bucket is full"
    );
    assert_eq!(
        keyed.allow_n_at(&1, short, 10_000),
        model.allow_n_at(short, 10_000)
    );
}

/// `tokens_at` reads `burst` for a key not held, which is a new limiter's tokens except when
/// the rate is infinite: a new unlimited limiter (and a held key) reads infinity.
#[test]
fn tokens_at_of_a_key_not_held_is_that_of_a_new_limiter() {
    let t = Instant::now();
    let keyed: KeyedLimiter<u64> = KeyedLimiter::new(f64::INFINITY, 0).unwrap();
    assert!(keyed.allow_at(&1, t));
    assert_eq!(keyed.tokens_at(&1, t), f64::INFINITY, "held");
    assert_eq!(keyed.tokens_at(&2, t), f64::INFINITY, "not held");
}

/// `limiter(key)` hands out the key's `Limiter`, whose setters work; but `idle` compares with
/// the keyed limiter's burst and a dropped key comes back with the keyed configuration, so a
/// key slowed down through its limiter is sped up again once it is full and unheld (and a key
/// given a smaller burst is never full by that measure, so it is never dropped).
#[test]
fn a_key_configured_through_its_limiter_keeps_its_configuration() {
    let t0 = Instant::now();
    let keyed: KeyedLimiter<u64> = KeyedLimiter::new(10, 1).unwrap();
    keyed.limiter(&1).set_rate_at(t0, 1).unwrap(); // this client: 1 a second
    assert!(keyed.allow_at(&1, t0));
    let ms = Duration::from_millis(1);
    keyed.retain_recent_at(t0 + 1000 * ms);
    assert!(keyed.allow_at(&1, t0 + 1000 * ms));
    assert!(
        !keyed.allow_at(&1, t0 + 1100 * ms),
        "a second token 100 ms later at 1 a second"
    );
    assert_eq!(keyed.limiter(&1).rate(), 1.0);
}

/// A steady working set: every key used once every 4 ms, at 1000 tokens a second with bursts
/// of 10, so each bucket is full again 1 ms after each use (as a client well under its limit
/// is). Once every key has been seen, a round of calls on the same keys should find them all:
/// no key dropped, none made again. But an insertion prunes its shard of every full key once
/// it holds `PRUNE_FLOOR` keys and then counts from the few it kept, so with more than
/// `PRUNE_FLOOR` busy keys in a shard every insertion soon prunes again, dropping keys that are
/// about to be used: nearly every call finds its key gone and takes the write lock to make it
/// again (the cause of most of the cost `allow_throughput` measures at a rate of 1e9).
#[test]
fn a_steady_working_set_is_not_dropped_and_made_again() {
    let t0 = Instant::now();
    let keyed: KeyedLimiter<u64> = KeyedLimiter::new(1000, 10).unwrap();
    let keys = (shards(&keyed) * 4 * PRUNE_FLOOR) as u64;
    let step = 4_000_000 / keys; // ns: a round of all keys takes 4 ms
    let mut ns = 0;
    let mut changed = 0; // calls after which the number of keys held changed
    for round in 0..4 {
        for key in 0..keys {
            ns += step;
            let before = keyed.len();
            assert!(keyed.allow_at(&key, at(t0, ns)));
            if round >= 2 && keyed.len() != before {
                changed += 1;
            }
        }
    }
    assert_eq!(changed, 0, "of {} calls in the last two rounds", 2 * keys);
}

// ===== throughput (prints; run by hand) =====

/// Rough ns per `allow(&key)` over 1000 `u64` keys round-robin, from 1 and 2 threads (each
/// thread starts half-way round from the other). Run with
/// `cargo test --release -p ctxkit --test rate_keyed -- --ignored --nocapture allow_throughput`.
#[test]
#[ignore = "a measurement: prints figures, asserts nothing about them"]
fn allow_throughput() {
    const KEYS: u64 = 1000;
    const CALLS: u64 = 4_000_000;
    for threads in [1u64, 2] {
        // A token a nanosecond, a second's worth of burst: every call is allowed, even one
        // whose thread was preempted between its clock read and its take.
        let keyed: Arc<KeyedLimiter<u64>> =
            Arc::new(KeyedLimiter::new(1e9, 1_000_000_000).unwrap());
        for key in 0..KEYS {
            assert!(keyed.allow(&key));
        }
        let started = Instant::now();
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let keyed = keyed.clone();
                thread::spawn(move || {
                    let mut allowed = 0u64;
                    for i in 0..CALLS {
                        let key = (i + t * KEYS / 2) % KEYS;
                        allowed += u64::from(keyed.allow(&key));
                    }
                    allowed
                })
            })
            .collect();
        let allowed: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        let elapsed = started.elapsed();
        assert_eq!(allowed, threads * CALLS);
        println!(
            "{threads} thread(s): {:.1} ns per allow per thread",
            elapsed.as_nanos() as f64 / CALLS as f64
        );
    }
}
