//! [`RetryBudget`]: a token bucket shared by many calls, so that retries cannot multiply the
//! load on a server that is already failing.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Thousandths of a retry: the bucket's unit, so that a success can earn a fraction of one.
const MILLIS_PER_RETRY: u64 = 1000;

/// A retry budget shared across calls, in the manner of gRPC's retry throttling, Finagle's
/// `RetryBudget` and the AWS SDKs' retry quota.
///
/// A bucket holds up to `retries_max` retries and starts full. Each retry withdraws one;
/// each success deposits `retry_ratio` of one. While the server answers, the bucket stays
/// full and retries are free; when it stops answering, the bucket drains after `retries_max`
/// retries and from then on calls fail fast, at their first error, instead of retrying: at
/// most `retry_ratio` extra requests per successful one reach a struggling server, where
/// unbudgeted retries would multiply its load by the number of attempts.
///
/// First attempts never need the budget. Cloning gives another handle to the same bucket:
/// share one per server (a [`Client`](crate::Client) and its clones share theirs).
///
/// ```
/// use sagaflow::retry::RetryBudget;
///
/// let budget = RetryBudget::new(2, 0.5);
/// let shared = budget.clone();
/// assert!(budget.try_withdraw());
/// assert!(shared.try_withdraw());
/// assert!(!budget.try_withdraw(), "empty: fail fast");
/// budget.deposit();
/// budget.deposit(); // two successes earn one retry
/// assert!(shared.try_withdraw());
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    bucket: Arc<Bucket>,
}

struct Bucket {
    /// The balance, in thousandths of a retry; never above `capacity_millis`.
    balance_millis: AtomicU64,
    capacity_millis: u64,
    deposit_millis: u64,
}

impl RetryBudget {
    /// The largest `retries_max` a budget accepts.
    pub const RETRIES_MAX: u32 = 1_000_000;

    /// A full budget of `retries_max` retries, of which each success earns back
    /// `retry_ratio` (rounded to a thousandth).
    ///
    /// # Panics
    ///
    /// If `retries_max` is above [`RetryBudget::RETRIES_MAX`], or `retry_ratio` is not in
    /// `0.0..=1.0`: a budget that earns more than one retry per success bounds nothing.
    ///
    /// ```
    /// use sagaflow::retry::RetryBudget;
    ///
    /// // A burst of up to 20 retries, then one retry per 10 successful calls.
    /// let budget = RetryBudget::new(20, 0.1);
    /// assert_eq!(budget.available(), 20);
    /// ```
    pub fn new(retries_max: u32, retry_ratio: f64) -> RetryBudget {
        assert!(
            retries_max <= RetryBudget::RETRIES_MAX,
            "retries_max must be at most {}, not {retries_max}",
            RetryBudget::RETRIES_MAX
        );
        assert!(
            (0.0..=1.0).contains(&retry_ratio),
            "retry_ratio must be in 0.0..=1.0, not {retry_ratio}"
        );
        let capacity_millis = u64::from(retries_max) * MILLIS_PER_RETRY;
        // In 0..=1000 by the assertion above, so the cast neither truncates nor wraps.
        let deposit_millis = (retry_ratio * MILLIS_PER_RETRY as f64).round() as u64;
        RetryBudget {
            bucket: Arc::new(Bucket {
                balance_millis: AtomicU64::new(capacity_millis),
                capacity_millis,
                deposit_millis,
            }),
        }
    }

    /// Takes one retry from the budget: `true` when there was one (go ahead and retry),
    /// `false` when the budget is empty (give up now). Atomic: concurrent callers never take
    /// more retries than the bucket holds.
    ///
    /// ```
    /// # use sagaflow::retry::RetryBudget;
    /// let budget = RetryBudget::new(1, 0.0);
    /// assert!(budget.try_withdraw());
    /// assert!(!budget.try_withdraw());
    /// ```
    pub fn try_withdraw(&self) -> bool {
        self.bucket
            .balance_millis
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |balance| {
                balance.checked_sub(MILLIS_PER_RETRY)
            })
            .is_ok()
    }

    /// Records a successful call: adds `retry_ratio` of a retry, up to `retries_max`.
    ///
    /// ```
    /// # use sagaflow::retry::RetryBudget;
    /// let budget = RetryBudget::new(1, 1.0);
    /// assert!(budget.try_withdraw());
    /// budget.deposit();
    /// budget.deposit(); // the bucket is full: this one is lost
    /// assert_eq!(budget.available(), 1);
    /// ```
    pub fn deposit(&self) {
        let bucket = &self.bucket;
        // `fetch_update` with a closure that always answers `Some` cannot fail.
        let _ =
            bucket
                .balance_millis
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |balance| {
                    Some(
                        balance
                            .saturating_add(bucket.deposit_millis)
                            .min(bucket.capacity_millis),
                    )
                });
    }

    /// How many whole retries the budget holds now.
    ///
    /// ```
    /// # use sagaflow::retry::RetryBudget;
    /// let budget = RetryBudget::new(3, 0.1);
    /// assert!(budget.try_withdraw());
    /// assert_eq!(budget.available(), 2);
    /// ```
    pub fn available(&self) -> u32 {
        let balance = self.bucket.balance_millis.load(Ordering::Acquire);
        // At most `RETRIES_MAX`, which fits.
        u32::try_from(balance / MILLIS_PER_RETRY).unwrap_or(u32::MAX)
    }
}

impl Default for RetryBudget {
    /// A burst of up to 100 retries, then one retry per 10 successful calls: retries add at
    /// most 10 % to the load of a server that keeps failing.
    ///
    /// ```
    /// # use sagaflow::retry::RetryBudget;
    /// assert_eq!(RetryBudget::default().available(), 100);
    /// ```
    fn default() -> RetryBudget {
        RetryBudget::new(100, 0.1)
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bucket = &self.bucket;
        f.debug_struct("RetryBudget")
            .field(
                "balance_millis",
                &bucket.balance_millis.load(Ordering::Relaxed),
            )
            .field("capacity_millis", &bucket.capacity_millis)
            .field("deposit_millis", &bucket.deposit_millis)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    #[test]
    fn a_new_budget_is_full_and_drains_one_retry_at_a_time() {
        let budget = RetryBudget::new(3, 0.2);
        assert_eq!(budget.available(), 3);
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert_eq!(budget.available(), 0);
        assert!(!budget.try_withdraw(), "an empty budget allows no retry");
        assert_eq!(budget.available(), 0);
    }

    #[test]
    fn successes_earn_retries_back_by_the_ratio() {
        let budget = RetryBudget::new(3, 0.2);
        while budget.try_withdraw() {}
        for _ in 0..4 {
            budget.deposit();
        }
        assert!(!budget.try_withdraw(), "4 × 0.2 is not yet a retry");
        budget.deposit();
        assert!(budget.try_withdraw(), "5 × 0.2 is one retry");
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn deposits_stop_at_the_capacity() {
        let budget = RetryBudget::new(2, 1.0);
        for _ in 0..10 {
            budget.deposit();
        }
        assert_eq!(budget.available(), 2);
        assert!(budget.try_withdraw() && budget.try_withdraw());
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn a_zero_budget_never_retries() {
        let budget = RetryBudget::new(0, 1.0);
        budget.deposit();
        assert!(!budget.try_withdraw());
        let no_earning = RetryBudget::new(1, 0.0);
        assert!(no_earning.try_withdraw());
        no_earning.deposit();
        assert!(!no_earning.try_withdraw());
    }

    #[test]
    fn clones_share_one_bucket() {
        let budget = RetryBudget::new(1, 0.5);
        let clone = budget.clone();
        assert!(clone.try_withdraw());
        assert!(!budget.try_withdraw());
        assert!(format!("{budget:?}").contains("balance_millis: 0"));
    }

    #[test]
    fn concurrent_withdrawals_never_exceed_the_budget() {
        let budget = RetryBudget::new(1000, 0.0);
        let granted = AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..500 {
                        if budget.try_withdraw() {
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(granted.load(Ordering::Relaxed), 1000);
        assert_eq!(budget.available(), 0);
    }

    #[test]
    fn concurrent_deposits_and_withdrawals_keep_the_books() {
        // Each thread withdraws 100 and deposits 100 × 1.0: whatever the interleaving, the
        // balance ends where it started, and never leaves 0..=capacity on the way.
        let budget = RetryBudget::new(50, 1.0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    let mut owed = 0;
                    for _ in 0..100 {
                        if budget.try_withdraw() {
                            owed += 1;
                        }
                        assert!(budget.available() <= 50);
                    }
                    for _ in 0..owed {
                        budget.deposit();
                    }
                });
            }
        });
        assert_eq!(budget.available(), 50);
    }

    #[test]
    #[should_panic(expected = "retry_ratio")]
    fn a_ratio_above_one_is_refused() {
        let _ = RetryBudget::new(10, 1.5);
    }

    #[test]
    #[should_panic(expected = "retry_ratio")]
    fn a_nan_ratio_is_refused() {
        let _ = RetryBudget::new(10, f64::NAN);
    }

    #[test]
    #[should_panic(expected = "retries_max")]
    fn a_budget_above_the_limit_is_refused() {
        let _ = RetryBudget::new(RetryBudget::RETRIES_MAX + 1, 0.1);
    }
}
