//! [`Retryable`]: how an error says whether trying again can help, and its answer for the
//! SDK's own [`Error`].

use std::time::Duration;

use crate::error::Error;

/// Whether, and when, a failed call is worth trying again.
///
/// ```
/// use std::time::Duration;
/// use sagaflow::retry::RetryDecision;
///
/// let decision = RetryDecision::RetryAfter(Duration::from_secs(2));
/// assert!(decision.is_retry());
/// assert!(!RetryDecision::DoNotRetry.is_retry());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryDecision {
    /// The failure is permanent (a bad request, a missing resource, a conflict): trying again
    /// gives the same answer.
    DoNotRetry,
    /// The failure may be transient: try again after the policy's backoff.
    Retry,
    /// The server said when to come back (`Retry-After`): try again after exactly this long,
    /// in place of the backoff.
    RetryAfter(Duration),
}

impl RetryDecision {
    /// Whether this is [`Retry`](RetryDecision::Retry) or
    /// [`RetryAfter`](RetryDecision::RetryAfter).
    ///
    /// ```
    /// # use sagaflow::retry::RetryDecision;
    /// assert!(RetryDecision::Retry.is_retry());
    /// ```
    pub fn is_retry(self) -> bool {
        !matches!(self, RetryDecision::DoNotRetry)
    }
}

/// An error that knows whether the call that failed with it is worth trying again.
///
/// It classifies the *failure*; whether the *call* may be repeated (is it idempotent?) is the
/// caller's to know. An error that says [`Retry`](RetryDecision::Retry) for a timeout is right
/// that the server may answer next time, and wrong to retry a payment that may have gone
/// through: use [`retry`](crate::retry::retry) only around calls that are safe to repeat, or
/// wrap the error in a type of your own that says [`DoNotRetry`](RetryDecision::DoNotRetry)
/// for ambiguous failures.
///
/// ```
/// use std::time::Duration;
/// use sagaflow::retry::{RetryDecision, Retryable};
///
/// #[derive(Debug)]
/// enum PaymentError {
///     Declined,
///     Busy { retry_after_s: Option<u64> },
/// }
///
/// impl Retryable for PaymentError {
///     fn retry_decision(&self) -> RetryDecision {
///         match self {
///             PaymentError::Declined => RetryDecision::DoNotRetry,
///             PaymentError::Busy { retry_after_s: Some(s) } => {
///                 RetryDecision::RetryAfter(Duration::from_secs(*s))
///             }
///             PaymentError::Busy { retry_after_s: None } => RetryDecision::Retry,
///         }
///     }
/// }
///
/// assert_eq!(PaymentError::Declined.retry_decision(), RetryDecision::DoNotRetry);
/// ```
pub trait Retryable {
    /// Whether, and when, to try again after this error.
    fn retry_decision(&self) -> RetryDecision;
}

/// Classifies the SDK's [`Error`]:
///
/// - [`Error::Unreachable`] (connection refused or reset, timed out): [`Retry`];
/// - [`Error::RetryLater`] (a transient status with `Retry-After`): [`RetryAfter`];
/// - [`Error::Problem`] with status 408, 425, 429, 502, 503 or 504: [`Retry`];
/// - any other problem, [`Error::Decode`] and [`Error::InvalidUrl`]: [`DoNotRetry`].
///
/// [`Retry`]: RetryDecision::Retry
/// [`RetryAfter`]: RetryDecision::RetryAfter
/// [`DoNotRetry`]: RetryDecision::DoNotRetry
///
/// ```
/// use sagaflow::retry::{RetryDecision, Retryable};
/// use sagaflow::{Error, Problem};
///
/// let unavailable = Error::Problem(Problem {
///     kind: "about:blank".to_owned(),
///     title: "Service Unavailable".to_owned(),
///     status: 503,
///     detail: String::new(),
///     field: None,
/// });
/// assert_eq!(unavailable.retry_decision(), RetryDecision::Retry);
/// ```
impl Retryable for Error {
    fn retry_decision(&self) -> RetryDecision {
        match self {
            Error::Unreachable { .. } => RetryDecision::Retry,
            Error::RetryLater { retry_after, .. } => RetryDecision::RetryAfter(*retry_after),
            Error::Problem(problem) if is_transient_status(problem.status) => RetryDecision::Retry,
            Error::Problem(_) | Error::Decode { .. } | Error::InvalidUrl { .. } => {
                RetryDecision::DoNotRetry
            }
        }
    }
}

/// Whether an error answer with this status may succeed if the request is sent again: 408
/// Request Timeout, 425 Too Early, 429 Too Many Requests, 502 Bad Gateway, 503 Service
/// Unavailable, 504 Gateway Timeout. A 500 is not among them: it is as likely a bug that
/// answers the same every time.
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use sagaflow_api::Problem;

    use super::*;

    fn problem(status: u16) -> Error {
        Error::Problem(Problem {
            kind: "about:blank".to_owned(),
            title: "x".to_owned(),
            status,
            detail: String::new(),
            field: None,
        })
    }

    #[test]
    fn transient_statuses_are_retried_and_others_are_not() {
        let check = |status: u16, expected: RetryDecision| {
            assert_eq!(problem(status).retry_decision(), expected, "{status}");
        };
        for status in [408, 425, 429, 502, 503, 504] {
            check(status, RetryDecision::Retry);
        }
        for status in [400, 401, 403, 404, 409, 422, 500, 501, 505] {
            check(status, RetryDecision::DoNotRetry);
        }
    }

    #[test]
    fn an_unreachable_server_is_retried() {
        let error = Error::Unreachable {
            url: "http://127.0.0.1:1".to_owned(),
            message: "connection refused".to_owned(),
        };
        assert_eq!(error.retry_decision(), RetryDecision::Retry);
    }

    #[test]
    fn retry_later_carries_the_servers_delay() {
        let Error::Problem(problem) = problem(429) else {
            unreachable!("problem() builds a problem")
        };
        let error = Error::RetryLater {
            problem,
            retry_after: Duration::from_secs(7),
        };
        assert_eq!(
            error.retry_decision(),
            RetryDecision::RetryAfter(Duration::from_secs(7))
        );
    }

    #[test]
    fn decode_and_url_errors_are_not_retried() {
        let decode = Error::Decode {
            url: "http://x/".to_owned(),
            message: "expected value".to_owned(),
        };
        let url = Error::InvalidUrl {
            url: "x".to_owned(),
            message: "relative URL without a base".to_owned(),
        };
        assert_eq!(decode.retry_decision(), RetryDecision::DoNotRetry);
        assert_eq!(url.retry_decision(), RetryDecision::DoNotRetry);
    }
}
