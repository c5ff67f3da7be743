//! How `sagaflow::retry::retry` loops: until success, up to `max_attempts`, after the
//! server's `Retry-After`, never for permanent errors, never past `max_elapsed`, and never
//! beyond the shared budget.
//!
//! The delays are a few milliseconds (or the retry must not happen at all, in which case an
//! hour-long delay makes a wrong retry hang into the test's timeout): the outcomes asserted
//! are counts, which do not depend on how fast the machine is.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sagaflow::retry::{Backoff, Jitter, RetryBudget, RetryDecision, Retryable, retry};
use tokio::time::Instant;

/// An error that asks for what the test wants.
#[derive(Debug, PartialEq)]
struct Failure(RetryDecision);

impl Retryable for Failure {
    fn retry_decision(&self) -> RetryDecision {
        self.0
    }
}

const HOUR: Duration = Duration::from_secs(3600);
/// Far above any of these tests' honest duration; a test that reaches it retried wrongly.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A 1 ms, fixed backoff with room for many attempts and no time budget.
fn quick() -> Backoff {
    Backoff::default()
        .with_initial(Duration::from_millis(1))
        .with_cap(Duration::from_millis(1))
        .with_jitter(Jitter::None)
        .with_max_attempts(10)
        .with_max_elapsed(None)
}

/// A backoff that would wait an hour: only a `RetryAfter` or a refusal ends in time.
fn glacial() -> Backoff {
    quick().with_initial(HOUR).with_cap(HOUR)
}

/// Runs `retry` with an operation that answers `script(n)` on its `n`th call (from 1), and
/// returns the result with the number of calls made.
async fn run(
    backoff: &Backoff,
    budget: Option<&RetryBudget>,
    script: impl Fn(u32) -> Result<u32, Failure>,
) -> (Result<u32, Failure>, u32) {
    let calls = AtomicU32::new(0);
    let result = within_timeout(retry(backoff, budget, || {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let answer = script(n);
        async move { answer }
    }))
    .await;
    (result, calls.load(Ordering::SeqCst))
}

async fn within_timeout<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, future)
        .await
        .expect("the retry loop ends well before the test's timeout")
}

fn fail_until(
    successful_call: u32,
    decision: RetryDecision,
) -> impl Fn(u32) -> Result<u32, Failure> {
    move |n| {
        if n < successful_call {
            Err(Failure(decision))
        } else {
            Ok(n)
        }
    }
}

#[tokio::test]
async fn transient_errors_are_retried_until_success() {
    let (result, calls) = run(&quick(), None, fail_until(4, RetryDecision::Retry)).await;
    assert_eq!(result, Ok(4));
    assert_eq!(calls, 4);
}

#[tokio::test]
async fn retries_stop_at_max_attempts_with_the_last_error() {
    let backoff = quick().with_max_attempts(3);
    let (result, calls) = run(&backoff, None, |_| Err(Failure(RetryDecision::Retry))).await;
    assert_eq!(result, Err(Failure(RetryDecision::Retry)));
    assert_eq!(calls, 3);

    let (result, calls) = run(
        &Backoff::no_retry(),
        None,
        fail_until(2, RetryDecision::Retry),
    )
    .await;
    assert!(result.is_err());
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn do_not_retry_stops_at_once() {
    let (result, calls) = run(&quick(), None, fail_until(2, RetryDecision::DoNotRetry)).await;
    assert_eq!(result, Err(Failure(RetryDecision::DoNotRetry)));
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn retry_after_replaces_the_backoff() {
    // The backoff would wait an hour; the server's zero means now.
    let now = RetryDecision::RetryAfter(Duration::ZERO);
    let (result, calls) = run(&glacial(), None, fail_until(3, now)).await;
    assert_eq!(result, Ok(3));
    assert_eq!(calls, 3);
}

#[tokio::test]
async fn retry_after_is_honoured_above_the_cap() {
    // The cap is 1 ms; the server asked for 30 ms, and gets them.
    let asked = Duration::from_millis(30);
    let started = Instant::now();
    let (result, calls) = run(
        &quick(),
        None,
        fail_until(2, RetryDecision::RetryAfter(asked)),
    )
    .await;
    assert_eq!(result, Ok(2));
    assert_eq!(calls, 2);
    assert!(started.elapsed() >= asked, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_retry_after_past_max_elapsed_gives_up_at_once() {
    let backoff = quick().with_max_elapsed(Some(Duration::from_secs(1)));
    let later = RetryDecision::RetryAfter(HOUR);
    let (result, calls) = run(&backoff, None, fail_until(2, later)).await;
    assert_eq!(result, Err(Failure(later)));
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn no_attempt_starts_past_max_elapsed() {
    // Delays of 10 ms, 100 ms, 1 s, …: after 10 + 100 ms, the next 1 s wait would end past
    // the 500 ms budget, so there are three attempts, however fast or slow the machine.
    let backoff = quick()
        .with_initial(Duration::from_millis(10))
        .with_multiplier(10.0)
        .with_cap(HOUR)
        .with_max_elapsed(Some(Duration::from_millis(500)));
    let started = Instant::now();
    let (result, calls) = run(&backoff, None, |_| Err(Failure(RetryDecision::Retry))).await;
    assert!(result.is_err());
    assert_eq!(calls, 3);
    assert!(started.elapsed() >= Duration::from_millis(110));
}

#[tokio::test]
async fn an_empty_budget_stops_retries() {
    let budget = RetryBudget::new(2, 0.0);
    let always_failing = |_| Err(Failure(RetryDecision::Retry));

    let (result, calls) = run(&quick(), Some(&budget), always_failing).await;
    assert!(result.is_err());
    assert_eq!(calls, 3, "the first attempt and the budget's two retries");
    assert_eq!(budget.available(), 0);

    let (result, calls) = run(&quick(), Some(&budget), fail_until(2, RetryDecision::Retry)).await;
    assert!(result.is_err(), "the budget is empty: fail fast");
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn a_success_refills_the_budget() {
    let budget = RetryBudget::new(1, 1.0);
    let (result, calls) = run(&quick(), Some(&budget), fail_until(2, RetryDecision::Retry)).await;
    assert_eq!(result, Ok(2));
    assert_eq!(calls, 2);
    assert_eq!(
        budget.available(),
        1,
        "the retry was paid back by the success"
    );
}

#[tokio::test]
async fn a_refused_retry_costs_the_budget_nothing() {
    let budget = RetryBudget::new(1, 0.0);
    let (_, calls) = run(
        &quick(),
        Some(&budget),
        fail_until(2, RetryDecision::DoNotRetry),
    )
    .await;
    assert_eq!(calls, 1);
    let backoff = quick().with_max_attempts(1);
    let (_, calls) = run(&backoff, Some(&budget), fail_until(2, RetryDecision::Retry)).await;
    assert_eq!(calls, 1);
    assert_eq!(budget.available(), 1);
}

#[tokio::test]
async fn a_shared_budget_bounds_the_retries_of_concurrent_calls() {
    // 20 calls to a server that is down, each allowed 5 attempts: unbudgeted, that is 100
    // requests; with a budget of 10 retries, 30.
    let budget = RetryBudget::new(10, 0.1);
    let calls = AtomicU32::new(0);
    let backoff = quick().with_max_attempts(5);
    let loops = (0..20).map(|_| {
        retry(&backoff, Some(&budget), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Failure(RetryDecision::Retry)) }
        })
    });
    let results = within_timeout(futures::future::join_all(loops)).await;
    assert!(results.iter().all(Result::is_err));
    assert_eq!(calls.load(Ordering::SeqCst), 20 + 10);
}
