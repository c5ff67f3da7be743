//! Retry helpers for outbound calls: a policy value, a shared budget, a classifier and the
//! loop that ties them together.
//!
//! - [`Backoff`] (in `backoff.rs`): exponential backoff with [`Jitter`], a maximum number of
//!   attempts and an optional time budget. Pure: [`Backoff::delay`] and
//!   [`Backoff::next_delay`] take the attempt count, the elapsed time and a random number.
//! - [`RetryBudget`] (in `budget.rs`): a token bucket shared across calls, so that retries
//!   cannot amplify an outage: when it is empty, calls fail at their first error.
//! - [`Retryable`] and [`RetryDecision`] (in `decision.rs`): how an error says whether to
//!   retry, and when. [`Error`](crate::Error) implements it: unreachable servers and 408, 425,
//!   429, 502, 503 and 504 answers are retried, after the server's `Retry-After` when it sent
//!   one ([`Error::RetryLater`](crate::Error::RetryLater)).
//! - [`retry`] (in `run.rs`): calls an async operation until it succeeds or the policy, the
//!   error or the budget says stop.
//! - [`parse_retry_after`] (in `retry_after.rs`): a `Retry-After` header value as a delay.
//!
//! The [`Client`](crate::Client) uses them when built with
//! [`with_retry`](crate::Client::with_retry); by default it makes one attempt per call.
//!
//! ```no_run
//! use std::time::Duration;
//! use sagaflow::retry::{Backoff, RetryBudget, retry};
//!
//! # async fn example() -> Result<(), sagaflow::Error> {
//! let client = sagaflow::Client::new("http://127.0.0.1:7070")?;
//! let backoff = Backoff::default()
//!     .with_max_attempts(4)
//!     .with_max_elapsed(Some(Duration::from_secs(10)));
//! let budget = RetryBudget::default();
//! let sagas = retry(&backoff, Some(&budget), || {
//!     client.list_sagas(Some("failed"), None, Some(50), None)
//! })
//! .await?;
//! println!("{} failed sagas", sagas.items.len());
//! # Ok(())
//! # }
//! ```

mod backoff;
mod budget;
mod decision;
mod retry_after;
mod run;

pub use backoff::{Backoff, Jitter};
pub use budget::RetryBudget;
pub(crate) use decision::is_transient_status;
pub use decision::{RetryDecision, Retryable};
pub use retry_after::parse_retry_after;
pub use run::retry;
