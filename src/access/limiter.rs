//! The per-client request rate limit: one budget per identity (an API key, or a client address
//! when the gateway has no keys) of a minute's worth of requests, refilled continuously, as a
//! token bucket would be. It answers with the quota OpenAI reports in its `x-ratelimit-*`
//! headers. Memory is bounded: a budget that is whole again is the same as none and is swept,
//! and past `MAX_TRACKED` identities new ones share one overflow budget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most identities tracked at once (~100 bytes each).
const MAX_TRACKED: usize = 100_000;

/// Whose budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The n-th configured API key.
    Key(usize),
    /// A client address (IPv6 by /64, since one host commonly holds a whole /64).
    Client(IpAddr),
    /// A request whose client address is unknown.
    Anonymous,
    /// Every identity that arrived while `MAX_TRACKED` were tracked.
    Overflow,
}

impl Identity {
    pub fn client(ip: IpAddr) -> Self {
        Identity::Client(match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
            },
            v4 => v4,
        })
    }
}

/// The state of one identity's budget after a request, as OpenAI reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Requests per minute (`x-ratelimit-limit-requests`).
    pub limit: u32,
    /// Requests left right now (`x-ratelimit-remaining-requests`).
    pub remaining: u32,
    /// Until the budget is whole again (`x-ratelimit-reset-requests`).
    pub reset: Duration,
    /// When refused: until the next request is allowed (`Retry-After`).
    pub retry_after: Option<Duration>,
}

struct Buckets {
    /// Each identity's theoretical arrival time (GCRA): the budget is whole when it is past.
    map: HashMap<Identity, Instant>,
    sweep_at: usize,
}

/// The arithmetic of a generic cell rate algorithm, shared by the in-memory limiter and the
/// PostgreSQL one (whose statement computes `admits` in SQL): `per_minute` requests at once,
/// then one every `interval` = a minute / `per_minute`, in integer nanoseconds. `spent` is how
/// much of the budget is spent: the theoretical arrival time minus now, zero when it is past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    per_minute: u32,
    interval: Duration,
}

impl Gcra {
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Gcra {
            per_minute,
            interval: Duration::from_secs(60) / per_minute,
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How far past now the theoretical arrival time may be and still admit one more: the
    /// whole budget less one request.
    pub fn tolerance(&self) -> Duration {
        self.interval * (self.per_minute - 1)
    }

    /// How many of `k` requests arriving together fit when `spent` is spent: as many as `k`
    /// requests one after another would admit.
    pub fn admits(&self, spent: Duration, k: u32) -> u32 {
        let Some(room) = self.tolerance().checked_sub(spent) else {
            return 0;
        };
        let fit = room.as_nanos() / self.interval.as_nanos().max(1) + 1;
        u32::try_from(fit).unwrap_or(u32::MAX).min(k)
    }

    /// The quota of the `i`-th of a batch (0-based, in arrival order) after `admitted` of it
    /// were let in, leaving `spent_after` spent: the first `admitted` see the budget as it was
    /// after each of them, the others are refused until one request's worth is back.
    pub fn quota(&self, spent_after: Duration, admitted: u32, i: u32) -> Quota {
        if i >= admitted {
            return Quota {
                limit: self.per_minute,
                remaining: 0,
                reset: spent_after,
                retry_after: Some(spent_after.saturating_sub(self.tolerance())),
            };
        }
        let spent = spent_after.saturating_sub(self.interval * (admitted - 1 - i));
        let whole = self.interval * self.per_minute;
        let left = whole.saturating_sub(spent).as_nanos() / self.interval.as_nanos().max(1);
        Quota {
            limit: self.per_minute,
            remaining: u32::try_from(left).unwrap_or(u32::MAX),
            reset: spent,
            retry_after: None,
        }
    }
}

/// The in-memory limiter: a `Gcra` with one theoretical arrival time per identity, for one
/// process.
pub struct RateLimiter {
    gcra: Gcra,
    buckets: Mutex<Buckets>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            gcra: Gcra::new(per_minute),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                sweep_at: 1024,
            }),
        }
    }

    pub fn gcra(&self) -> Gcra {
        self.gcra
    }

    /// Spends one request of `who`'s budget at `now`; `retry_after` is set when there was none.
    pub fn check(&self, who: Identity, now: Instant) -> Quota {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let who = buckets.admit(who, now);
        let tat = buckets.map.entry(who).or_insert(now);
        let spent = tat.saturating_duration_since(now);
        let admitted = self.gcra.admits(spent, 1);
        let spent_after = spent + self.gcra.interval * admitted;
        *tat = now + spent_after;
        self.gcra.quota(spent_after, admitted, 0)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().map(|b| b.map.len()).unwrap_or_default()
    }
}

impl Buckets {
    /// The identity to charge: `who`, or the overflow bucket when too many are tracked. Sweeps
    /// the whole budgets (the same as no entry) whenever the map has doubled since the last
    /// sweep, so the work is amortised.
    fn admit(&mut self, who: Identity, now: Instant) -> Identity {
        if self.map.contains_key(&who) {
            return who;
        }
        if self.map.len() >= self.sweep_at {
            self.map.retain(|_, tat| *tat > now);
            self.sweep_at = (self.map.len() * 2).max(1024);
        }
        if self.map.len() >= MAX_TRACKED {
            Identity::Overflow
        } else {
            who
        }
    }
}

/// A duration as OpenAI writes it in `x-ratelimit-reset-*` (Go's format, to the millisecond):
/// `6ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`.
pub fn openai_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let (s, frac) = (ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if frac == 0 {
        out.push_str(&format!("{s}s"));
    } else {
        let frac = format!("{frac:03}");
        out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0')));
    }
    out
}

/// Whole seconds for `Retry-After`, rounded up so a client that waits that long gets through.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_spends_the_minute_and_time_refills_it() {
        let limiter = RateLimiter::new(3);
        let t0 = Instant::now();
        let who = Identity::Key(0);
        let remaining: Vec<u32> = (0..3).map(|_| limiter.check(who, t0).remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limiter.check(who, t0);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after, Some(Duration::from_secs(20)));
        assert_eq!(refused.reset, Duration::from_secs(60));
        // Another key has its own budget.
        assert_eq!(limiter.check(Identity::Key(1), t0).remaining, 2);
        // 20 s later one request is back.
        let later = t0 + Duration::from_secs(20);
        let q = limiter.check(who, later);
        assert_eq!((q.retry_after, q.remaining), (None, 0));
        assert!(limiter.check(who, later).retry_after.is_some());
        // A minute idle: whole again.
        let q = limiter.check(who, later + Duration::from_secs(60));
        assert_eq!(q.remaining, 2);
        assert_eq!(q.reset, Duration::from_secs(20));
    }

    /// One decision for k requests (what the store's statement does) gives each the quota k
    /// requests one after another would get, from any starting point of the budget.
    #[test]
    fn a_batch_decides_like_requests_one_by_one() {
        for per_minute in [1, 3, 7, 10, 60] {
            let gcra = Gcra::new(per_minute);
            let step = gcra.interval() / 3;
            for start in 0..(3 * per_minute + 4) {
                let spent = step * start;
                for k in 1..=per_minute + 3 {
                    // One by one, on the in-memory limiter's bookkeeping.
                    let (mut tat, mut one_by_one) = (spent, Vec::new());
                    for _ in 0..k {
                        let admitted = gcra.admits(tat, 1);
                        tat += gcra.interval() * admitted;
                        one_by_one.push(gcra.quota(tat, admitted, 0));
                    }
                    let admitted = gcra.admits(spent, k);
                    let after = spent + gcra.interval() * admitted;
                    assert_eq!(after, tat, "rpm {per_minute} spent {spent:?} k {k}");
                    let batch: Vec<Quota> =
                        (0..k).map(|i| gcra.quota(after, admitted, i)).collect();
                    assert_eq!(batch, one_by_one, "rpm {per_minute} spent {spent:?} k {k}");
                }
            }
        }
        // 10 rpm, nothing spent: 12 together admit 10, the 11th and 12th wait 6 s.
        let gcra = Gcra::new(10);
        assert_eq!(gcra.admits(Duration::ZERO, 12), 10);
        let refused = gcra.quota(Duration::from_secs(60), 10, 10);
        assert_eq!(refused.retry_after, Some(Duration::from_secs(6)));
        assert_eq!(gcra.quota(Duration::from_secs(60), 10, 0).remaining, 9);
    }

    #[test]
    fn idle_buckets_are_swept_and_the_map_is_bounded() {
        let limiter = RateLimiter::new(10);
        let t0 = Instant::now();
        for i in 0..1024 {
            limiter.check(Identity::Key(i), t0);
        }
        assert_eq!(limiter.tracked(), 1024);
        // Still fresh: nothing to sweep, so the map grows.
        limiter.check(Identity::Key(5000), t0 + Duration::from_secs(1));
        assert_eq!(limiter.tracked(), 1025);
        for i in 0..1023 {
            limiter.check(Identity::Key(10_000 + i), t0 + Duration::from_secs(1));
        }
        // The next newcomer, once the first 1024 budgets are whole again (6 s each), finds them
        // swept.
        limiter.check(Identity::Key(20_000), t0 + Duration::from_millis(6500));
        assert_eq!(limiter.tracked(), 1025);
    }

    #[test]
    fn ipv6_clients_are_grouped_by_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Identity::client(a), Identity::client(b));
        assert_ne!(Identity::client(a), Identity::client(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            Identity::client(mapped),
            Identity::client("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn durations_are_written_like_openai() {
        let ms = Duration::from_millis;
        assert_eq!(openai_duration(ms(6)), "6ms");
        assert_eq!(openai_duration(ms(1000)), "1s");
        assert_eq!(openai_duration(ms(1500)), "1.5s");
        assert_eq!(openai_duration(ms(20_250)), "20.25s");
        assert_eq!(openai_duration(ms(360_000)), "6m0s");
        assert_eq!(openai_duration(ms(3_723_000)), "1h2m3s");
        assert_eq!(retry_after_secs(ms(19_001)), 20);
        assert_eq!(retry_after_secs(ms(20_000)), 20);
    }
}
