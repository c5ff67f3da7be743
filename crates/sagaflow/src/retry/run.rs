//! [`retry`]: the loop that calls an operation until it succeeds or the policy gives up.

use std::future::Future;

use tokio::time::Instant;

use super::backoff::Backoff;
use super::budget::RetryBudget;
use super::decision::Retryable;

/// Calls `op` until it succeeds, its error says [`DoNotRetry`], `backoff` gives up (attempts
/// used up, or the next attempt would start past its `max_elapsed`), or `budget` has no retry
/// left. Between attempts it sleeps (`tokio::time::sleep`) for the backoff, or for exactly
/// the server's [`RetryAfter`] when the error carries one. It returns the first success or
/// the last error.
///
/// Each success deposits into `budget`; each retry withdraws one from it. Retry only what is
/// safe to repeat: an operation with side effects needs an idempotency key, or an error type
/// that says [`DoNotRetry`] for failures that may have had their effect (see [`Retryable`]).
///
/// Each retry is logged at DEBUG (target `sagaflow::retry`) with its attempt number and delay.
///
/// [`DoNotRetry`]: super::RetryDecision::DoNotRetry
/// [`RetryAfter`]: super::RetryDecision::RetryAfter
///
/// ```no_run
/// use sagaflow::retry::{Backoff, RetryBudget, retry};
/// use sagaflow::Client;
///
/// # async fn example() -> Result<(), sagaflow::Error> {
/// let client = Client::new("http://127.0.0.1:7070")?;
/// let budget = RetryBudget::default();
/// let saga = retry(&Backoff::default(), Some(&budget), || client.get_saga("0193a8")).await?;
/// println!("{} is {}", saga.id, saga.status);
/// # Ok(())
/// # }
/// ```
pub async fn retry<T, E, F, Fut>(
    backoff: &Backoff,
    budget: Option<&RetryBudget>,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Retryable,
{
    let started = Instant::now();
    let mut attempts_used: u32 = 0;
    loop {
        attempts_used += 1;
        let error = match op().await {
            Ok(value) => {
                if let Some(budget) = budget {
                    budget.deposit();
                }
                return Ok(value);
            }
            Err(error) => error,
        };
        let decision = error.retry_decision();
        let Some(delay) =
            backoff.next_delay(attempts_used, started.elapsed(), decision, rand::random())
        else {
            return Err(error);
        };
        // Withdraw last, so that a retry the policy refuses costs the budget nothing.
        if let Some(budget) = budget
            && !budget.try_withdraw()
        {
            tracing::debug!(
                attempt = attempts_used,
                "retry budget exhausted; not retrying"
            );
            return Err(error);
        }
        drop(error);
        tracing::debug!(
            attempt = attempts_used,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            server_asked = matches!(decision, super::RetryDecision::RetryAfter(_)),
            "retrying after a transient error"
        );
        tokio::time::sleep(delay).await;
    }
}
