//! Login attempt limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How much one failure over the allowance adds to the next login's wait
/// for that username, doubling per failure, up to [`MAX_LOGIN_SLOWDOWN`].
pub const LOGIN_SLOWDOWN_STEP: Duration = Duration::from_millis(250);
/// The longest a login waits because its username is being guessed.
pub const MAX_LOGIN_SLOWDOWN: Duration = Duration::from_secs(3);
/// Usernames whose recent failures are remembered; beyond this new names
/// are not slowed (bounds memory when random names are tried; the per-IP
/// limit still counts every attempt).
const MAX_TRACKED_USERNAMES: usize = 10_000;

/// Login attempt limits (docs/product.md). Refusing (429) is only ever keyed by
/// the client: at most `per_ip` attempts per window from one address, and
/// `per_user` attempts per window for one username from one address. A
/// username's failures from all addresses together only slow its logins
/// down (a bounded delay), so nobody can lock the owner out by guessing
/// their password from elsewhere.
pub struct LoginLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Keyed by (username, client, unlock generation): governor cannot
    /// forget one key, so an unlock moves the username to fresh keys.
    per_user_ip: DefaultKeyedRateLimiter<(String, IpAddr, u64)>,
    generations: Mutex<HashMap<String, u64>>,
    failures: Mutex<HashMap<String, Failures>>,
    /// Failures of a username per window before logins are slowed.
    free_failures: u32,
    window: Duration,
}

/// Recent failed logins of one username, from anywhere.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Why a login attempt may not proceed: wait this long and try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps stay consistent even if a holder panicked mid-update
    // (every update is a single insert/remove).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LoginLimiter {
    /// At most `per_ip` / `per_user` (per client) attempts per `window`
    /// (each also the burst size; the allowance refills evenly over the
    /// window); logins of a username are slowed after `per_user` failures
    /// from anywhere within a window.
    pub fn new(per_ip: NonZeroU32, per_user: NonZeroU32, window: Duration) -> Self {
        let quota = |n: NonZeroU32| {
            let period = (window / n.get()).max(Duration::from_millis(1));
            Quota::with_period(period)
                .unwrap_or(Quota::per_second(n))
                .allow_burst(n)
        };
        LoginLimiter {
            per_ip: RateLimiter::keyed(quota(per_ip)),
            per_user_ip: RateLimiter::keyed(quota(per_user)),
            generations: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            free_failures: per_user.get(),
            window,
        }
    }

    /// Counts one attempt of `username` from `ip`. `Ok(delay)`: go ahead
    /// after waiting `delay` (zero unless the username is being guessed);
    /// `Err` when this client has used up one of its limits.
    pub fn check(&self, ip: IpAddr, username: &str) -> Result<Duration, RetryAfter> {
        let name = username.to_lowercase();
        let now = DefaultClock::default().now();
        self.per_ip
            .check_key(&ip)
            .map_err(|nu| RetryAfter(nu.wait_time_from(now)))?;
        let generation = lock(&self.generations).get(&name).copied().unwrap_or(0);
        self.per_user_ip
            .check_key(&(name.clone(), ip, generation))
            .map_err(|nu| RetryAfter(nu.wait_time_from(now)))?;
        Ok(self.slowdown(&name, Instant::now()))
    }

    /// Records a failed login of `username` (from any client).
    pub fn record_failure(&self, username: &str) {
        self.record_failure_at(&username.to_lowercase(), Instant::now());
    }

    fn record_failure_at(&self, name: &str, now: Instant) {
        let mut failures = lock(&self.failures);
        if !failures.contains_key(name) && failures.len() >= MAX_TRACKED_USERNAMES {
            let window = self.window;
            failures.retain(|_, f| now.saturating_duration_since(f.last) < window);
            if failures.len() >= MAX_TRACKED_USERNAMES {
                return;
            }
        }
        let entry = failures.entry(name.to_string()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(entry.last) >= self.window {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    /// The wait before a login of `name` is checked: nothing while it has
    /// fewer than `free_failures` failures in a row (each within a window
    /// of the previous one), then [`LOGIN_SLOWDOWN_STEP`], doubling with
    /// every further failure, at most [`MAX_LOGIN_SLOWDOWN`].
    fn slowdown(&self, name: &str, now: Instant) -> Duration {
        let count = match lock(&self.failures).get(name) {
            Some(f) if now.saturating_duration_since(f.last) < self.window => f.count,
            _ => return Duration::ZERO,
        };
        let Some(over) = count.checked_sub(self.free_failures) else {
            return Duration::ZERO;
        };
        LOGIN_SLOWDOWN_STEP
            .saturating_mul(1u32 << over.min(16))
            .min(MAX_LOGIN_SLOWDOWN)
    }

    /// Forgets `username`'s counters (an administrator's "unlock"): its
    /// per-client limits start full again and its logins are no longer
    /// slowed. Per-IP limits are not the user's and stay.
    pub fn unlock(&self, username: &str) {
        let name = username.to_lowercase();
        {
            let mut generations = lock(&self.generations);
            let g = generations.entry(name.clone()).or_insert(0);
            *g = g.wrapping_add(1);
        }
        lock(&self.failures).remove(&name);
    }

    /// Drops state of keys that are back to full quota and failures older
    /// than the window (bounds memory when many usernames are tried).
    pub fn housekeeping(&self) {
        self.per_ip.retain_recent();
        self.per_user_ip.retain_recent();
        let now = Instant::now();
        let window = self.window;
        lock(&self.failures).retain(|_, f| now.saturating_duration_since(f.last) < window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_ip: u32, per_user: u32) -> LoginLimiter {
        LoginLimiter::new(
            NonZeroU32::new(per_ip).unwrap(),
            NonZeroU32::new(per_user).unwrap(),
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn limiter_refuses_per_client_never_per_username() {
        let l = limiter(3, 2);
        let a: IpAddr = "1.1.1.1".parse().unwrap();
        assert!(l.check(a, "bob").is_ok());
        assert!(l.check(a, "BOB").is_ok());
        assert!(l.check(a, "bob").is_err(), "third try for bob from a");
        assert!(
            l.check(a, "carol").is_err(),
            "ip exhausted after 3 counted tries"
        );
        let b: IpAddr = "2.2.2.2".parse().unwrap();
        assert!(l.check(b, "bob").is_ok(), "bob from b is another client");
        assert!(l.check(b, "dave").is_ok());
    }

    #[test]
    fn unlock_resets_the_username_only() {
        let l = limiter(100, 1);
        let a: IpAddr = "1.1.1.1".parse().unwrap();
        assert!(l.check(a, "bob").is_ok());
        assert!(l.check(a, "carol").is_ok());
        assert!(l.check(a, "bob").is_err());
        l.unlock("Bob");
        assert!(l.check(a, "bob").is_ok(), "unlocked");
        assert!(l.check(a, "carol").is_err(), "others keep their counters");
    }

    #[test]
    fn failures_slow_down_boundedly_and_expire() {
        let l = limiter(100, 2);
        let t0 = Instant::now();
        let wait = |n: &str, t| l.slowdown(n, t);
        l.record_failure_at("bob", t0);
        assert_eq!(wait("bob", t0), Duration::ZERO, "within the allowance");
        l.record_failure_at("bob", t0);
        assert_eq!(wait("bob", t0), LOGIN_SLOWDOWN_STEP, "allowance used up");
        l.record_failure_at("bob", t0);
        assert_eq!(wait("bob", t0), LOGIN_SLOWDOWN_STEP * 2);
        for _ in 0..100 {
            l.record_failure_at("bob", t0);
        }
        assert_eq!(wait("bob", t0), MAX_LOGIN_SLOWDOWN, "bounded");
        assert_eq!(wait("carol", t0), Duration::ZERO);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(wait("bob", later), Duration::ZERO, "a quiet window resets");
        l.record_failure_at("bob", later);
        assert_eq!(wait("bob", later), Duration::ZERO, "counting starts over");
        l.record_failure_at("bob", later);
        l.record_failure_at("bob", later);
        l.unlock("bob");
        assert_eq!(
            wait("bob", later),
            Duration::ZERO,
            "unlock forgets failures"
        );
    }
}
