//! [`KeyedLimiter`]: one token bucket per key (per client, per API key, per IP), with the same
//! decisions as [`Limiter`].
//!
//! # Layout and locks
//!
//! The keys are spread over a fixed number of shards (a power of two, four per CPU the
//! process may use, at least 16) by one hash. Each shard is a `RwLock` around a hashbrown
//! `HashTable<(K, Arc<Limiter>)>`: a hash table that keeps no hasher and is searched with a
//! hash computed by its caller, so a key is hashed once per decision, and that one hash picks
//! both the shard and the key's place in the shard's table (see [`KeyedLimiter`]'s `mask`
//! for which bits each uses). A decision on a key that exists takes its shard's lock for
//! reading, finds the key's [`Limiter`] and decides on it (one compare-exchange,
//! `limiter.rs`), so deciding never waits for a decision on another key, nor on the same key
//! (the limiter is lock-free).
//! A key's first decision takes its shard's lock for writing to insert the key. No lock is
//! held while a caller waits for tokens: waits hold an `Arc` of the key's limiter.
//!
//! Lock order: one shard lock at a time, never two; no other lock of the crate is taken under
//! a shard lock (a limiter's `undo` lock is taken only by cancels and setters, never under a
//! shard lock).
//!
//! # Bounded memory
//!
//! A key whose bucket is full again is indistinguishable from a key never seen, for every
//! decision at that instant or later: dropping it changes none of them. For a decision at an
//! earlier instant (a thread whose clock read came before the prune's), a key made again
//! starts at the latest state (`zero`) of the keys its shard dropped, so it never finds more
//! tokens than the dropped bucket held then. Such keys are dropped
//!
//! * explicitly by [`retain_recent`](KeyedLimiter::retain_recent), shard by shard, once full,
//!   and
//! * amortized, on insertion: when a shard has doubled since it was last pruned (and holds at
//!   least 64 keys), the inserting caller prunes that shard under the write lock it already
//!   holds, of the keys that have been full for a whole bucket time (`burst / rate`), so a
//!   busy key that refills between its uses is not dropped and made again at each prune.
//!   The cost is linear in the shard's size but paid once per doubling, so it is constant per
//!   insertion on average; a shard holds at most `max(64, 2 · r)` keys, `r` being the keys it
//!   kept at its last prune (used within the last two bucket times, or held).
//!
//! A key is kept while anyone holds its limiter (a reservation, a wait in progress, or an
//! `Arc` from [`limiter`](KeyedLimiter::limiter)), full or not, so a reservation's cancel
//! always finds the bucket it came from; and a key reconfigured through its limiter's setters
//! is kept, since a key made again would have the keyed configuration.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{PoisonError, RwLock};
use std::time::Instant;

use hashbrown::hash_table::{Entry, HashTable};

use super::error::{ConfigError, WaitError};
use super::limiter::{Limiter, OwnedReservation};
use crate::context::Context;
use crate::sync::{fence, Arc, Ordering};

/// A shard holds at least this many keys before insertion prunes it.
const PRUNE_FLOOR: usize = 64;

/// How many whole bucket times a key's bucket must have been full before the amortized prune
/// drops it: a key used again within that time is kept, so a busy working set is not dropped
/// and made again over and over.
const PRUNE_GRACE_BUCKETS: u64 = 1;

/// A shard, on a cache line (or two) of its own: threads on different shards share no line.
#[repr(align(128))]
struct Shard<K> {
    state: RwLock<ShardState<K>>,
}

struct ShardState<K> {
    /// The shard's keys and their limiters, placed by the keys' hashes under the
    /// [`KeyedLimiter`]'s hasher (the table keeps no hasher of its own).
    table: HashTable<(K, Arc<Limiter>)>,
    /// The shard's size after its last prune (the amortized prune's baseline).
    pruned_at: usize,
    /// The latest `zero` of a key this shard dropped (0: none): a key made from then on
    /// starts there (`Limiter::new_above`), so a decision at an instant before a prune cannot
    /// find a refilled bucket where the dropped one held less.
    floor: u64,
}

impl<K> ShardState<K> {
    /// Drops the keys that `idle` finds idle; returns how many.
    fn prune(&mut self, idle: impl Fn(&Arc<Limiter>) -> bool) -> usize {
        let before = self.table.len();
        let mut floor = self.floor;
        self.table.retain(|(_, limiter)| {
            let drop = idle(limiter);
            if drop {
                floor = floor.max(limiter.zero());
            }
            !drop
        });
        self.floor = floor;
        self.pruned_at = self.table.len();
        before - self.table.len()
    }
}

/// A token bucket per key: each key gets its own [`Limiter`] of the same rate and burst,
/// made (full) the first time the key is seen. Every method of `Limiter` that decides has its
/// keyed form here, with the same meaning; the key comes first.
///
/// Memory stays bounded: a key whose bucket is full again is dropped by
/// [`retain_recent`](KeyedLimiter::retain_recent) and, amortized, when its shard grows (see
/// the module docs). The hasher is std's `RandomState` (keyed per process, so clients cannot
/// choose keys that collide); [`with_hasher`](KeyedLimiter::with_hasher) takes another.
///
/// # Coming from Go and governor
///
/// Go's `x/time/rate` has no keyed limiter; the usual Go code is a `map[string]*rate.Limiter`
/// under a mutex, with a janitor goroutine that deletes idle entries. Here the map is sharded
/// and read-locked, and the janitor is `retain_recent` or the amortized prune. governor's
/// `RateLimiter::keyed` is the Rust peer: its `retain_recent` and `len` mean the same; it
/// has no waiting under a context and no reservations.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use ctxkit::rate::KeyedLimiter;
///
/// // 1 request a second per client, bursts of 2.
/// let limiter: KeyedLimiter<String> = KeyedLimiter::new(1, 2).unwrap();
/// let now = Instant::now();
/// assert!(limiter.allow_n_at("10.0.0.1", now, 2));
/// assert!(!limiter.allow_at("10.0.0.1", now)); // this client's burst is spent
/// assert!(limiter.allow_at("10.0.0.2", now)); // another client has its own bucket
/// assert!(limiter.allow_at("10.0.0.1", now + Duration::from_secs(1)));
///
/// // Later, both buckets are full again: nothing to remember.
/// assert_eq!(limiter.retain_recent_at(now + Duration::from_secs(10)), 2);
/// assert!(limiter.is_empty());
/// ```
pub struct KeyedLimiter<K, S = RandomState> {
    rate: f64,
    burst: u32,
    hasher: S,
    /// `shards.len() - 1`: the shard of a hash is `(hash >> 32) & mask`. The shard's table
    /// is given the same whole hash and takes a bucket from its low bits and a tag from its
    /// top 7, so the shard's bits (32 to 41 at most: 1,024 shards) are independent of both
    /// (up to 2^32 buckets a shard); taking the top bits for the shard would leave the keys
    /// of a shard sharing their tags' high bits.
    mask: usize,
    shards: Box<[Shard<K>]>,
}

impl<K: Hash + Eq> KeyedLimiter<K> {
    /// A keyed limiter of `rate` tokens a second and bursts of `burst` per key.
    ///
    /// # Errors
    ///
    /// As [`Limiter::new`]: a NaN or negative rate, or a zero burst with a positive finite
    /// rate. The check is made here, once, so no later call can fail on the configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::rate::KeyedLimiter;
    ///
    /// assert!(KeyedLimiter::<u64>::new(10, 5).is_ok());
    /// let error = KeyedLimiter::<u64>::new(f64::NAN, 5).unwrap_err();
    /// assert_eq!(error.to_string(), "ctxkit::rate: rate is NaN");
    /// ```
    pub fn new(rate: impl Into<f64>, burst: u32) -> Result<KeyedLimiter<K>, ConfigError> {
        KeyedLimiter::with_hasher(rate, burst, RandomState::new())
    }
}

impl<K: Hash + Eq, S: BuildHasher + Clone> KeyedLimiter<K, S> {
    /// A keyed limiter hashing keys with `hasher` (once per decision: the hash picks the
    /// key's shard and its place in the shard's table).
    ///
    /// # Errors
    ///
    /// As [`new`](KeyedLimiter::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// use ctxkit::rate::KeyedLimiter;
    ///
    /// let limiter: KeyedLimiter<u32> = KeyedLimiter::with_hasher(10, 5, RandomState::new()).unwrap();
    /// assert!(limiter.allow(&7));
    /// ```
    pub fn with_hasher(
        rate: impl Into<f64>,
        burst: u32,
        hasher: S,
    ) -> Result<KeyedLimiter<K, S>, ConfigError> {
        let rate = rate.into();
        // Validates once: every key's limiter is made with the same, valid, configuration.
        Limiter::new(rate, burst)?;
        let shards = (crate::procs::max_procs() * 4)
            .clamp(16, 1024)
            .next_power_of_two();
        let shards: Box<[Shard<K>]> = (0..shards)
            .map(|_| Shard {
                state: RwLock::new(ShardState {
                    table: HashTable::new(),
                    pruned_at: 0,
                    floor: 0,
                }),
            })
            .collect();
        Ok(KeyedLimiter {
            rate,
            burst,
            hasher,
            mask: shards.len() - 1,
            shards,
        })
    }

    /// The rate of every key's bucket, in tokens a second.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = ctxkit::rate::KeyedLimiter::<u8>::new(2.5, 1).unwrap();
    /// assert_eq!(limiter.rate(), 2.5);
    /// ```
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The burst of every key's bucket.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = ctxkit::rate::KeyedLimiter::<u8>::new(2.5, 4).unwrap();
    /// assert_eq!(limiter.burst(), 4);
    /// ```
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// `key`'s hash (the one hashing of a decision) and its shard, from bits 32 and up of
    /// the hash (see `mask`).
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> (u64, &Shard<K>) {
        let hash = self.hasher.hash_one(key);
        (hash, &self.shards[(hash >> 32) as usize & self.mask])
    }

    /// Whether the amortized prune (`buckets` = [`PRUNE_GRACE_BUCKETS`]) or `retain_recent`
    /// (0) may drop `limiter` at `now`: nobody else holds it (the table's `Arc` is the only one
    /// and there is no `Weak`; no clone is made without the shard's lock, under which this
    /// runs), it still has the keyed configuration (a key reconfigured through
    /// [`limiter`](KeyedLimiter::limiter) is kept), and its bucket has been full for
    /// `buckets` whole bucket times.
    fn idle(&self, limiter: &Arc<Limiter>, now: Instant, buckets: u64) -> bool {
        // No `Weak` either: one could be upgraded without the lock.
        if Arc::strong_count(limiter) != 1 || Arc::weak_count(limiter) != 0 {
            return false;
        }
        // Pairs with the release of the last other `Arc`'s drop (as `Arc`'s own drop does),
        // so the takes and cancels made through it are seen below.
        fence(Ordering::Acquire);
        limiter.burst() == self.burst
            && limiter.rate().to_bits() == self.rate.to_bits()
            && limiter.full_for_at(now, buckets)
    }

    /// Runs `decide` on `key`'s limiter, made (full at `now`) if the key is new.
    #[inline]
    fn with_limiter<Q, T>(
        &self,
        key: &Q,
        now: Instant,
        decide: impl FnOnce(&Arc<Limiter>) -> T,
    ) -> T
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let (hash, shard) = self.shard(key);
        {
            let state = shard.state.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, limiter)) = state.table.find(hash, is(key)) {
                return decide(limiter);
            }
        }
        let mut state = shard.state.write().unwrap_or_else(PoisonError::into_inner);
        let len = state.table.len();
        if len >= PRUNE_FLOOR && len >= state.pruned_at.saturating_mul(2) {
            state.prune(|limiter| self.idle(limiter, now, PRUNE_GRACE_BUCKETS));
        }
        let floor = state.floor;
        // A growing table moves its entries by their keys' hashes, computed again here.
        let rehash = |(key, _): &(K, Arc<Limiter>)| self.hasher.hash_one(key);
        let (_, limiter) = match state.table.entry(hash, is(key), rehash) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry
                .insert((key.to_owned(), Arc::new(self.new_limiter(now, floor))))
                .into_mut(),
        };
        decide(limiter)
    }

    /// A new key's limiter, made at `now` in a shard whose `floor` it is.
    fn new_limiter(&self, now: Instant, floor: u64) -> Limiter {
        Limiter::new_above(self.rate, self.burst, now, floor).expect("validated in `with_hasher`")
    }

    /// `key`'s own [`Limiter`] (made, full, if the key is new): for its other methods
    /// ([`tokens`](Limiter::tokens), [`wait_owned`](Limiter::wait_owned), ...). While the
    /// returned `Arc` is held, the key is not dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::rate::KeyedLimiter;
    ///
    /// let limiter: KeyedLimiter<&'static str> = KeyedLimiter::new(1, 3).unwrap();
    /// assert!(limiter.allow(&"alice"));
    /// assert!(limiter.limiter(&"alice").tokens() < 2.1);
    /// ```
    pub fn limiter<Q>(&self, key: &Q) -> Arc<Limiter>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.with_limiter(key, Instant::now(), Arc::clone)
    }

    /// Whether one token is there for `key` now; takes it if so. [`Limiter::allow`] per key.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter: ctxkit::rate::KeyedLimiter<String> = ctxkit::rate::KeyedLimiter::new(1, 1).unwrap();
    /// assert!(limiter.allow("bob"));
    /// assert!(!limiter.allow("bob"));
    /// ```
    #[inline]
    pub fn allow<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.allow_n_at(key, Instant::now(), 1)
    }

    /// [`allow`](KeyedLimiter::allow) as if the clock read `now`.
    ///
    /// # Examples
    ///
    /// See [`KeyedLimiter`].
    pub fn allow_at<Q>(&self, key: &Q, now: Instant) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.allow_n_at(key, now, 1)
    }

    /// Whether `n` tokens are there for `key` now; takes them all if so, none if not.
    /// [`Limiter::allow_n`] per key.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter: ctxkit::rate::KeyedLimiter<u64> = ctxkit::rate::KeyedLimiter::new(1, 3).unwrap();
    /// assert!(limiter.allow_n(&42, 3));
    /// assert!(!limiter.allow_n(&42, 1));
    /// ```
    pub fn allow_n<Q>(&self, key: &Q, n: u32) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.allow_n_at(key, Instant::now(), n)
    }

    /// [`allow_n`](KeyedLimiter::allow_n) as if the clock read `now`.
    ///
    /// # Examples
    ///
    /// See [`KeyedLimiter`].
    #[inline]
    pub fn allow_n_at<Q>(&self, key: &Q, now: Instant, n: u32) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.with_limiter(key, now, |limiter| limiter.allow_n_at(now, n))
    }

    /// Reserves `n` tokens of `key`'s bucket, to be used at the reservation's
    /// [`time_to_act`](OwnedReservation::time_to_act); `None` if they can never come (`n`
    /// above the burst). [`Limiter::reserve_n`] per key; canceling the reservation gives the
    /// tokens back to `key`'s bucket.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::KeyedLimiter;
    ///
    /// let limiter: KeyedLimiter<u64> = KeyedLimiter::new(10, 1).unwrap();
    /// let now = Instant::now();
    /// assert!(limiter.allow_at(&1, now));
    /// let reservation = limiter.reserve_n_at(&1, now, 1).unwrap();
    /// assert_eq!(reservation.delay_from(now), Duration::from_millis(100));
    /// reservation.cancel_at(now); // the token goes back
    /// assert!(limiter.reserve_n_at(&9, now, 2).is_none()); // above the burst
    /// ```
    pub fn reserve_n<Q>(&self, key: &Q, n: u32) -> Option<OwnedReservation>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.reserve_n_at(key, Instant::now(), n)
    }

    /// [`reserve_n`](KeyedLimiter::reserve_n) as if the clock read `now`.
    ///
    /// # Examples
    ///
    /// See [`reserve_n`](KeyedLimiter::reserve_n).
    pub fn reserve_n_at<Q>(&self, key: &Q, now: Instant, n: u32) -> Option<OwnedReservation>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let limiter = self.with_limiter(key, now, Arc::clone);
        limiter.reserve_n_owned_at(now, n)
    }

    /// Waits until `n` tokens of `key`'s bucket are there, or `ctx` is done, whichever comes
    /// first. [`Limiter::wait_n`] per key: it fails at once, taking nothing, when `n` is above
    /// the burst or `ctx`'s deadline comes before the tokens would.
    ///
    /// # Errors
    ///
    /// As [`Limiter::wait_n`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{rate::KeyedLimiter, Context};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let limiter: KeyedLimiter<String> = KeyedLimiter::new(1_000, 1).unwrap();
    /// let ctx = Context::background();
    /// limiter.wait_n(&ctx, "carol", 1).await.unwrap();
    /// limiter.wait_n(&ctx, "carol", 1).await.unwrap(); // about 1 ms later
    /// assert!(limiter.wait_n(&ctx, "carol", 2).await.unwrap_err().is_exceeds_burst());
    /// # });
    /// ```
    pub async fn wait_n<Q>(&self, ctx: &Context, key: &Q, n: u32) -> Result<(), WaitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let limiter = self.with_limiter(key, Instant::now(), Arc::clone);
        limiter.wait_n_owned(ctx.clone(), n).await
    }

    /// [`wait_n`](KeyedLimiter::wait_n) for a thread: blocks it.
    ///
    /// # Errors
    ///
    /// As [`Limiter::blocking_wait_n`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{rate::KeyedLimiter, Context};
    ///
    /// let limiter: KeyedLimiter<u64> = KeyedLimiter::new(1_000, 1).unwrap();
    /// limiter.blocking_wait_n(&Context::background(), &7, 1).unwrap();
    /// ```
    pub fn blocking_wait_n<Q>(&self, ctx: &Context, key: &Q, n: u32) -> Result<(), WaitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let limiter = self.with_limiter(key, Instant::now(), Arc::clone);
        limiter.blocking_wait_n(ctx, n)
    }

    /// Tokens in `key`'s bucket at `now`, without making the key: `burst` for a key not held
    /// (its bucket would be full). [`Limiter::tokens_at`] per key.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use ctxkit::rate::KeyedLimiter;
    ///
    /// let limiter: KeyedLimiter<u64> = KeyedLimiter::new(1, 3).unwrap();
    /// let now = Instant::now();
    /// assert_eq!(limiter.tokens_at(&5, now), 3.0);
    /// limiter.allow_at(&5, now);
    /// assert_eq!(limiter.tokens_at(&5, now), 2.0);
    /// ```
    pub fn tokens_at<Q>(&self, key: &Q, now: Instant) -> f64
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.shard(key);
        let state = shard.state.read().unwrap_or_else(PoisonError::into_inner);
        match state.table.find(hash, is(key)) {
            Some((_, limiter)) => limiter.tokens_at(now),
            // What the key would hold if made now.
            None => self.new_limiter(now, state.floor).tokens_at(now),
        }
    }

    /// Drops every key whose bucket is full again and that nobody holds (see the module
    /// docs); returns how many were dropped. Call it from time to time (a janitor task or
    /// thread) to bound memory between insertions; insertions also prune, amortized.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter: ctxkit::rate::KeyedLimiter<u64> = ctxkit::rate::KeyedLimiter::new(1_000_000, 1).unwrap();
    /// limiter.allow(&1);
    /// std::thread::sleep(std::time::Duration::from_millis(1));
    /// assert_eq!(limiter.retain_recent(), 1);
    /// ```
    pub fn retain_recent(&self) -> usize {
        self.retain_recent_at(Instant::now())
    }

    /// [`retain_recent`](KeyedLimiter::retain_recent) as if the clock read `now`.
    ///
    /// # Examples
    ///
    /// See [`KeyedLimiter`].
    pub fn retain_recent_at(&self, now: Instant) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut state = shard.state.write().unwrap_or_else(PoisonError::into_inner);
            dropped += state.prune(|limiter| self.idle(limiter, now, 0));
        }
        dropped
    }

    /// How many keys are held.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter: ctxkit::rate::KeyedLimiter<u64> = ctxkit::rate::KeyedLimiter::new(1, 1).unwrap();
    /// limiter.allow(&1);
    /// limiter.allow(&2);
    /// assert_eq!(limiter.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .state
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .table
                    .len()
            })
            .sum()
    }

    /// Whether no key is held.
    ///
    /// # Examples
    ///
    /// See [`KeyedLimiter`].
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The test a shard's table finds `key`'s entry with (after matching its hash's tag).
fn is<'q, K, Q>(key: &'q Q) -> impl Fn(&(K, Arc<Limiter>)) -> bool + 'q
where
    K: Borrow<Q>,
    Q: Eq + ?Sized,
{
    move |(held, _)| Borrow::<Q>::borrow(held) == key
}

impl<K, S> fmt::Debug for KeyedLimiter<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}
