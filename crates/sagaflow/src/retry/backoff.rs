//! [`Backoff`]: the retry policy as a value — how long to wait, how often to try, and when to
//! stop. Pure: the caller passes in the attempts used, the time elapsed and a random number.

use std::time::Duration;

use super::decision::RetryDecision;

/// How a retry delay is randomised, so that clients failing together do not retry together.
///
/// The same three kinds as a saga step's `retry.jitter` (`full`, `equal`, `none`).
///
/// ```
/// use std::time::Duration;
/// use sagaflow::retry::{Backoff, Jitter};
///
/// let backoff = Backoff::default().with_jitter(Jitter::None);
/// assert_eq!(backoff.delay(1, 12345), Duration::from_millis(100));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Jitter {
    /// A uniform delay in `0 ..= backoff` (AWS's "full jitter"): spreads retries best.
    #[default]
    Full,
    /// Half the backoff plus a uniform `0 ..= backoff / 2`: never retries at once.
    Equal,
    /// Exactly the backoff: predictable, and synchronised across clients.
    None,
}

/// An exponential backoff policy: the delay before retry `n` is
/// `initial × multiplier^(n-1)`, at most `cap`, randomised by [`Jitter`]; at most
/// `max_attempts` attempts (the first one included), none starting later than `max_elapsed`
/// after the first one started.
///
/// The default is 100 ms, ×2, capped at 10 s, full jitter, 5 attempts and 30 s in all. A
/// `Backoff` is a plain value: [`delay`](Backoff::delay) and
/// [`next_delay`](Backoff::next_delay) are pure functions of their arguments, and
/// [`retry`](crate::retry::retry) is the loop that asks them.
///
/// ```
/// use std::time::Duration;
/// use sagaflow::retry::{Backoff, Jitter};
///
/// let backoff = Backoff::default()
///     .with_initial(Duration::from_millis(50))
///     .with_multiplier(3.0)
///     .with_cap(Duration::from_secs(2))
///     .with_jitter(Jitter::Equal)
///     .with_max_attempts(4)
///     .with_max_elapsed(Some(Duration::from_secs(5)));
/// assert_eq!(backoff.initial(), Duration::from_millis(50));
/// assert_eq!(backoff.multiplier(), 3.0);
/// assert_eq!(backoff.cap(), Duration::from_secs(2));
/// assert_eq!(backoff.jitter(), Jitter::Equal);
/// assert_eq!(backoff.max_attempts(), 4);
/// assert_eq!(backoff.max_elapsed(), Some(Duration::from_secs(5)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    initial: Duration,
    multiplier: f64,
    cap: Duration,
    jitter: Jitter,
    max_attempts: u32,
    max_elapsed: Option<Duration>,
}

impl Default for Backoff {
    /// 100 ms, ×2, capped at 10 s, full jitter, 5 attempts, 30 s in all.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sagaflow::retry::Backoff;
    ///
    /// let backoff = Backoff::default();
    /// assert_eq!(backoff.max_attempts(), 5);
    /// assert_eq!(backoff.max_elapsed(), Some(Duration::from_secs(30)));
    /// ```
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            cap: Duration::from_secs(10),
            jitter: Jitter::Full,
            max_attempts: 5,
            max_elapsed: Some(Duration::from_secs(30)),
        }
    }
}

impl Backoff {
    /// The largest `max_attempts` a policy accepts: more is a loop, not a retry policy.
    pub const ATTEMPTS_MAX: u32 = 100;

    /// A policy that makes one attempt and never retries.
    ///
    /// ```
    /// use sagaflow::retry::{Backoff, RetryDecision};
    /// use std::time::Duration;
    ///
    /// let never = Backoff::no_retry();
    /// assert_eq!(never.max_attempts(), 1);
    /// assert_eq!(never.next_delay(1, Duration::ZERO, RetryDecision::Retry, 0), None);
    /// ```
    pub fn no_retry() -> Backoff {
        Backoff::default().with_max_attempts(1)
    }

    /// The delay before the first retry, before jitter.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sagaflow::retry::{Backoff, Jitter};
    /// let backoff = Backoff::default().with_jitter(Jitter::None).with_initial(Duration::from_secs(1));
    /// assert_eq!(backoff.delay(1, 0), Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn with_initial(mut self, initial: Duration) -> Backoff {
        self.initial = initial;
        self
    }

    /// How much each delay grows over the one before, before the cap and jitter.
    ///
    /// # Panics
    ///
    /// If `multiplier` is not a finite number of at least 1 (a shrinking backoff is a
    /// programming error, not a policy).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sagaflow::retry::{Backoff, Jitter};
    /// let backoff = Backoff::default().with_jitter(Jitter::None).with_multiplier(3.0);
    /// assert_eq!(backoff.delay(3, 0), Duration::from_millis(900));
    /// ```
    #[must_use]
    pub fn with_multiplier(mut self, multiplier: f64) -> Backoff {
        assert!(
            multiplier.is_finite() && multiplier >= 1.0,
            "a backoff multiplier must be a finite number of at least 1, not {multiplier}"
        );
        self.multiplier = multiplier;
        self
    }

    /// The longest delay the exponential growth reaches, before jitter. A server's
    /// `Retry-After` is honoured even when longer.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sagaflow::retry::{Backoff, Jitter};
    /// let backoff = Backoff::default().with_jitter(Jitter::None).with_cap(Duration::from_millis(250));
    /// assert_eq!(backoff.delay(10, 0), Duration::from_millis(250));
    /// ```
    #[must_use]
    pub fn with_cap(mut self, cap: Duration) -> Backoff {
        self.cap = cap;
        self
    }

    /// How the delay is randomised.
    ///
    /// ```
    /// # use sagaflow::retry::{Backoff, Jitter};
    /// assert_eq!(Backoff::default().with_jitter(Jitter::Equal).jitter(), Jitter::Equal);
    /// ```
    #[must_use]
    pub fn with_jitter(mut self, jitter: Jitter) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// How many attempts in all, the first one included: `1` never retries.
    ///
    /// # Panics
    ///
    /// If `max_attempts` is 0 or above [`Backoff::ATTEMPTS_MAX`].
    ///
    /// ```
    /// # use sagaflow::retry::Backoff;
    /// assert_eq!(Backoff::default().with_max_attempts(3).max_attempts(), 3);
    /// ```
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Backoff {
        assert!(
            (1..=Backoff::ATTEMPTS_MAX).contains(&max_attempts),
            "max_attempts must be in 1..={}, not {max_attempts}",
            Backoff::ATTEMPTS_MAX
        );
        self.max_attempts = max_attempts;
        self
    }

    /// The time budget: no attempt starts later than this after the first one started. A
    /// retry whose delay would end past it is not made; the last error is returned at once.
    /// `None`: only `max_attempts` bounds the retries, and a `Retry-After` is honoured however
    /// long it is.
    ///
    /// It bounds when attempts start, not how long one runs: give each attempt its own
    /// timeout (the [`Client`](crate::Client) does).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sagaflow::retry::{Backoff, RetryDecision};
    /// let backoff = Backoff::default().with_max_elapsed(Some(Duration::from_secs(2)));
    /// let later = RetryDecision::RetryAfter(Duration::from_secs(5));
    /// assert_eq!(backoff.next_delay(1, Duration::ZERO, later, 0), None);
    /// ```
    #[must_use]
    pub fn with_max_elapsed(mut self, max_elapsed: Option<Duration>) -> Backoff {
        self.max_elapsed = max_elapsed;
        self
    }

    /// The delay before the first retry, before jitter.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sagaflow::retry::Backoff;
    /// assert_eq!(Backoff::default().initial(), Duration::from_millis(100));
    /// ```
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// How much each delay grows over the one before.
    ///
    /// ```
    /// # use sagaflow::retry::Backoff;
    /// assert_eq!(Backoff::default().multiplier(), 2.0);
    /// ```
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The longest backoff, before jitter.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sagaflow::retry::Backoff;
    /// assert_eq!(Backoff::default().cap(), Duration::from_secs(10));
    /// ```
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// How the delay is randomised.
    ///
    /// ```
    /// # use sagaflow::retry::{Backoff, Jitter};
    /// assert_eq!(Backoff::default().jitter(), Jitter::Full);
    /// ```
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// How many attempts in all, the first one included.
    ///
    /// ```
    /// # use sagaflow::retry::Backoff;
    /// assert_eq!(Backoff::default().max_attempts(), 5);
    /// ```
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The time budget from the start of the first attempt, if any.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sagaflow::retry::Backoff;
    /// assert_eq!(Backoff::default().with_max_elapsed(None).max_elapsed(), None);
    /// ```
    pub fn max_elapsed(&self) -> Option<Duration> {
        self.max_elapsed
    }

    /// The backoff before the attempt that follows `attempts_used` failed ones (so
    /// `attempts_used` is 1 before the first retry; 0 counts as 1), given a uniform random
    /// number for the jitter. Pure: the same arguments give the same delay, so a caller can
    /// journal it or draw `random` from a seed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sagaflow::retry::{Backoff, Jitter};
    ///
    /// let backoff = Backoff::default(); // 100 ms, ×2, capped at 10 s, full jitter
    /// assert!(backoff.delay(3, rand::random()) <= Duration::from_millis(400));
    /// assert_eq!(backoff.delay(3, u64::MAX), Duration::from_millis(400));
    /// assert_eq!(backoff.delay(3, 0), Duration::ZERO);
    /// assert_eq!(backoff.with_jitter(Jitter::None).delay(20, 0), Duration::from_secs(10));
    /// ```
    pub fn delay(&self, attempts_used: u32, random: u64) -> Duration {
        let exponent = i32::try_from(attempts_used.saturating_sub(1)).unwrap_or(i32::MAX);
        let cap_nanos = duration_nanos(self.cap);
        let raw_nanos = duration_nanos(self.initial) as f64 * self.multiplier.powi(exponent);
        // `raw_nanos` is never NaN (both factors are finite and non-negative, or the power is
        // +inf); an infinite or huge value lands on the cap.
        let backoff_nanos = if raw_nanos < cap_nanos as f64 {
            raw_nanos as u64
        } else {
            cap_nanos
        };
        let nanos = match self.jitter {
            Jitter::None => backoff_nanos,
            Jitter::Full => uniform_upto(backoff_nanos, random),
            Jitter::Equal => {
                let half = backoff_nanos / 2;
                // `half + (backoff - half)` is the whole backoff, odd nanoseconds included.
                half + uniform_upto(backoff_nanos - half, random)
            }
        };
        Duration::from_nanos(nanos)
    }

    /// What to do after `attempts_used` attempts failed, `elapsed` after the first one
    /// started: `Some(delay)` to wait and try again, `None` to give up and return the error.
    /// It gives up when the error is not to be retried, when `max_attempts` are used, or when
    /// the delay would end past `max_elapsed`. A [`RetryDecision::RetryAfter`] replaces the
    /// backoff (cap and jitter included): the server knows best when it can answer.
    ///
    /// Pure, like [`delay`](Backoff::delay): [`retry`](crate::retry::retry) is a loop around
    /// it, and a caller that keeps its own loop (or journals its retries) can use it directly.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sagaflow::retry::{Backoff, Jitter, RetryDecision};
    ///
    /// let backoff = Backoff::default().with_jitter(Jitter::None).with_max_attempts(3);
    /// let elapsed = Duration::from_millis(5);
    /// assert_eq!(
    ///     backoff.next_delay(1, elapsed, RetryDecision::Retry, 0),
    ///     Some(Duration::from_millis(100))
    /// );
    /// assert_eq!(
    ///     backoff.next_delay(1, elapsed, RetryDecision::RetryAfter(Duration::from_secs(20)), 0),
    ///     Some(Duration::from_secs(20))
    /// );
    /// assert_eq!(backoff.next_delay(1, elapsed, RetryDecision::DoNotRetry, 0), None);
    /// assert_eq!(backoff.next_delay(3, elapsed, RetryDecision::Retry, 0), None);
    /// ```
    pub fn next_delay(
        &self,
        attempts_used: u32,
        elapsed: Duration,
        decision: RetryDecision,
        random: u64,
    ) -> Option<Duration> {
        if attempts_used >= self.max_attempts {
            return None;
        }
        let delay = match decision {
            RetryDecision::DoNotRetry => return None,
            RetryDecision::Retry => self.delay(attempts_used, random),
            RetryDecision::RetryAfter(after) => after,
        };
        match self.max_elapsed {
            Some(budget) if elapsed.saturating_add(delay) > budget => None,
            _ => Some(delay),
        }
    }
}

/// `duration` in nanoseconds, saturating at `u64::MAX` (about 584 years).
fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A number in `0 ..= upto`, uniform when `random` is: `random` scaled by multiplication
/// rather than taken modulo, so there is no bias towards small values.
fn uniform_upto(upto: u64, random: u64) -> u64 {
    let span = u128::from(upto) + 1;
    // The product is below 2^64 × span, so the shifted result is below span ≤ 2^64.
    u64::try_from((u128::from(random) * span) >> 64).unwrap_or(upto)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> Backoff {
        Backoff::default().with_jitter(Jitter::None)
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn the_backoff_grows_by_the_multiplier_until_the_cap() {
        let backoff = fixed();
        let delays: Vec<Duration> = (1..=10).map(|n| backoff.delay(n, 0)).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000].map(ms)
        );
        assert_eq!(backoff.delay(0, 0), ms(100), "0 attempts counts as 1");
    }

    #[test]
    fn huge_attempt_numbers_and_multipliers_stay_at_the_cap() {
        assert_eq!(fixed().delay(u32::MAX, 0), ms(10_000));
        let steep = fixed().with_multiplier(1e300);
        assert_eq!(steep.delay(3, 0), ms(10_000));
        let uncapped = fixed().with_cap(Duration::MAX);
        assert_eq!(uncapped.delay(u32::MAX, 0), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn a_multiplier_of_one_keeps_the_delay_constant() {
        let flat = fixed().with_multiplier(1.0);
        assert!((1..50).all(|n| flat.delay(n, 0) == ms(100)));
    }

    #[test]
    fn a_cap_below_the_initial_delay_wins() {
        assert_eq!(fixed().with_cap(ms(30)).delay(1, 0), ms(30));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_backoff() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay(2, 0), Duration::ZERO);
        assert_eq!(backoff.delay(2, u64::MAX), ms(200));
        assert_eq!(backoff.delay(2, u64::MAX / 2), ms(100));
        for random in sample_randoms() {
            assert!(backoff.delay(2, random) <= ms(200));
        }
    }

    #[test]
    fn equal_jitter_spans_half_to_the_whole_backoff() {
        let backoff = Backoff::default().with_jitter(Jitter::Equal);
        assert_eq!(backoff.delay(2, 0), ms(100));
        assert_eq!(backoff.delay(2, u64::MAX), ms(200));
        for random in sample_randoms() {
            let delay = backoff.delay(2, random);
            assert!(ms(100) <= delay && delay <= ms(200), "{delay:?}");
        }
        // An odd number of nanoseconds still reaches the whole backoff.
        let odd = backoff.with_initial(Duration::from_nanos(7));
        assert_eq!(odd.delay(1, 0), Duration::from_nanos(3));
        assert_eq!(odd.delay(1, u64::MAX), Duration::from_nanos(7));
    }

    #[test]
    fn jitter_spreads_delays_over_the_whole_range() {
        // 1000 draws from a fixed-seed generator fall in each tenth of the range.
        let backoff = Backoff::default().with_cap(ms(100)).with_initial(ms(100));
        let mut tenths = [0u32; 10];
        for random in sample_randoms() {
            let tenth = backoff.delay(1, random).as_millis() / 10;
            tenths[usize::try_from(tenth).expect("a small number").min(9)] += 1;
        }
        assert!(tenths.iter().all(|&n| n > 50), "{tenths:?}");
    }

    #[test]
    fn no_jitter_ignores_the_random_number() {
        assert_eq!(fixed().delay(2, 0), fixed().delay(2, u64::MAX));
    }

    #[test]
    fn the_last_attempt_gets_no_delay() {
        let backoff = fixed().with_max_attempts(3);
        assert_eq!(
            backoff.next_delay(2, Duration::ZERO, RetryDecision::Retry, 0),
            Some(ms(200))
        );
        assert_eq!(
            backoff.next_delay(3, Duration::ZERO, RetryDecision::Retry, 0),
            None
        );
        assert_eq!(Backoff::no_retry().max_attempts(), 1);
    }

    #[test]
    fn retry_after_replaces_the_backoff_even_above_the_cap() {
        let backoff = fixed().with_max_elapsed(None);
        let after = RetryDecision::RetryAfter(Duration::from_secs(3600));
        assert_eq!(
            backoff.next_delay(1, Duration::ZERO, after, 0),
            Some(Duration::from_secs(3600))
        );
        let now = RetryDecision::RetryAfter(Duration::ZERO);
        assert_eq!(
            backoff.next_delay(1, Duration::ZERO, now, 0),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn no_delay_ends_past_max_elapsed() {
        let backoff = fixed().with_max_elapsed(Some(ms(1000)));
        let retry = RetryDecision::Retry;
        assert_eq!(backoff.next_delay(1, ms(900), retry, 0), Some(ms(100)));
        assert_eq!(backoff.next_delay(1, ms(901), retry, 0), None);
        let after = |d| RetryDecision::RetryAfter(ms(d));
        assert_eq!(backoff.next_delay(1, ms(500), after(500), 0), Some(ms(500)));
        assert_eq!(backoff.next_delay(1, ms(500), after(501), 0), None);
        assert_eq!(backoff.next_delay(1, Duration::MAX, after(1), 0), None);
    }

    #[test]
    fn do_not_retry_means_no_retry() {
        assert_eq!(
            fixed().next_delay(1, Duration::ZERO, RetryDecision::DoNotRetry, 0),
            None
        );
    }

    #[test]
    #[should_panic(expected = "multiplier")]
    fn a_shrinking_multiplier_is_refused() {
        let _ = Backoff::default().with_multiplier(0.5);
    }

    #[test]
    #[should_panic(expected = "multiplier")]
    fn a_nan_multiplier_is_refused() {
        let _ = Backoff::default().with_multiplier(f64::NAN);
    }

    #[test]
    #[should_panic(expected = "max_attempts")]
    fn zero_attempts_are_refused() {
        let _ = Backoff::default().with_max_attempts(0);
    }

    #[test]
    #[should_panic(expected = "max_attempts")]
    fn attempts_above_the_limit_are_refused() {
        let _ = Backoff::default().with_max_attempts(Backoff::ATTEMPTS_MAX + 1);
    }

    /// 1000 numbers from a fixed-seed xorshift, plus the extremes: deterministic, and spread
    /// over the whole `u64` range.
    fn sample_randoms() -> Vec<u64> {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut numbers = vec![0, 1, u64::MAX - 1, u64::MAX];
        numbers.extend((0..1000).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }));
        numbers
    }
}
