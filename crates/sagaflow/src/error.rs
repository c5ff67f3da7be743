//! The SDK's one error type, and how answers that are not successes become one.

use std::time::{Duration, SystemTime};

use sagaflow_api::Problem;

use crate::retry::{is_transient_status, parse_retry_after};

/// Longest piece of a non-problem error body kept in a synthesized problem's `detail`.
const SYNTHESIZED_DETAIL_CHARS_MAX: usize = 200;

/// Why a call to the Sagaflow server did not give the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status. The body is its RFC 9457 problem; when the
    /// body was not one (a proxy's HTML page, say), a problem is synthesized from the status
    /// and the body's text.
    ///
    /// An error answer with a transient status and a `Retry-After` header is
    /// [`Error::RetryLater`] instead; [`Error::problem`] and [`Error::status`] read both.
    #[error("{} {}: {}", .0.status, .0.title, .0.detail)]
    Problem(Problem),
    /// The server answered with a transient error status (408, 425, 429, 502, 503 or 504)
    /// and a `Retry-After` header: it cannot answer now and said when to come back. The
    /// [retry helpers](crate::retry) wait `retry_after` before trying again.
    #[error(
        "{} {}: {} (retry after {:?})",
        .problem.status,
        .problem.title,
        .problem.detail,
        .retry_after
    )]
    RetryLater {
        /// The answer's problem, as for [`Error::Problem`].
        problem: Problem,
        /// How long the server asked to wait, from when its answer arrived.
        retry_after: Duration,
    },
    /// No answer: the connection was refused or reset, the name did not resolve, or the
    /// request timed out. `message` is short and meant for people ("connection refused").
    #[error("cannot reach the Sagaflow server at {url} ({message})")]
    Unreachable {
        /// The server's base URL, as the client was given it.
        url: String,
        /// What went wrong, e.g. `connection refused` or `timed out`.
        message: String,
    },
    /// The server answered with a success status, but the body is not what the API promises.
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// The URL of the request.
        url: String,
        /// What did not fit.
        message: String,
    },
    /// The base URL given to [`Client::new`](crate::Client::new) is not an absolute http(s)
    /// URL.
    #[error("{url:?} is not a valid server URL: {message}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        message: String,
    },
}

impl Error {
    /// The problem the server answered, if that is what this error is
    /// ([`Error::Problem`] or [`Error::RetryLater`]).
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Problem(problem) | Error::RetryLater { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The HTTP status of the server's error answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.problem().map(|p| p.status)
    }

    /// How long the server asked to wait before trying again, if it did
    /// ([`Error::RetryLater`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use sagaflow::{Error, Problem};
    ///
    /// let error = Error::RetryLater {
    ///     problem: Problem {
    ///         kind: "https://sagaflow.dev/problems/overloaded".to_owned(),
    ///         title: "Too many requests".to_owned(),
    ///         status: 429,
    ///         detail: "too many sagas in flight".to_owned(),
    ///         field: None,
    ///     },
    ///     retry_after: Duration::from_secs(1),
    /// };
    /// assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));
    /// assert_eq!(error.status(), Some(429));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RetryLater { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// The error an error answer stands for: [`Error::RetryLater`] when its status is transient
/// and its `Retry-After` header (`retry_after`) parses, [`Error::Problem`] otherwise. `now` is
/// the time the answer arrived, for a `Retry-After` given as an HTTP-date.
pub(crate) fn error_from_answer(
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    now: SystemTime,
) -> Error {
    let problem = problem_from_answer(status, body);
    let retry_after = retry_after
        .filter(|_| is_transient_status(status))
        .and_then(|value| parse_retry_after(value, now));
    match retry_after {
        Some(retry_after) => Error::RetryLater {
            problem,
            retry_after,
        },
        None => Error::Problem(problem),
    }
}

/// The problem an error answer carries: its body when that is a problem, or one synthesized
/// from the status and the body's text (RFC 9457's `about:blank` type).
fn problem_from_answer(status: u16, body: &[u8]) -> Problem {
    if let Ok(problem) = serde_json::from_slice::<Problem>(body) {
        return problem;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let detail = match text.char_indices().nth(SYNTHESIZED_DETAIL_CHARS_MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    };
    let title = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown Status");
    Problem {
        kind: "about:blank".to_owned(),
        title: title.to_owned(),
        status,
        detail,
        field: None,
    }
}

/// A short, human reason for a transport error: the innermost cause, with the I/O errors
/// people meet most often named plainly.
pub(crate) fn transport_reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut innermost: &dyn std::error::Error = error;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io_reason(io);
        }
        innermost = cause;
        source = cause.source();
    }
    innermost.to_string()
}

fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let plain = match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused",
        ErrorKind::ConnectionReset => "connection reset",
        ErrorKind::ConnectionAborted => "connection aborted",
        ErrorKind::TimedOut => "timed out",
        ErrorKind::HostUnreachable => "host unreachable",
        ErrorKind::NetworkUnreachable => "network unreachable",
        ErrorKind::AddrNotAvailable => "address not available",
        ErrorKind::UnexpectedEof => "connection closed",
        _ => {
            // "Name or service not known (os error -2)": the OS code helps nobody here.
            let text = error.to_string();
            return match text.find(" (os error") {
                Some(cut) => text[..cut].to_owned(),
                None => text,
            };
        }
    };
    plain.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_body_is_kept_as_is() {
        let body = br#"{"type":"https://sagaflow.dev/problems/not-found","title":"Not Found","status":404,"detail":"no saga 42"}"#;
        let problem = problem_from_answer(404, body);
        assert_eq!(problem.kind, "https://sagaflow.dev/problems/not-found");
        assert_eq!(problem.detail, "no saga 42");
    }

    #[test]
    fn a_non_problem_body_becomes_a_problem_from_the_status_and_text() {
        let problem = problem_from_answer(502, b"<html>\n  Bad   gateway\n</html>");
        assert_eq!(problem.kind, "about:blank");
        assert_eq!(problem.title, "Bad Gateway");
        assert_eq!(problem.status, 502);
        assert_eq!(problem.detail, "<html> Bad gateway </html>");
    }

    #[test]
    fn a_long_non_problem_body_is_cut() {
        let body = "é".repeat(500);
        let problem = problem_from_answer(500, body.as_bytes());
        assert_eq!(
            problem.detail.chars().count(),
            SYNTHESIZED_DETAIL_CHARS_MAX + 1
        );
        assert!(problem.detail.ends_with('…'));
    }

    #[test]
    fn a_transient_answer_with_retry_after_is_retry_later() {
        let now = SystemTime::UNIX_EPOCH;
        let error = error_from_answer(503, b"draining", Some("2"), now);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(error.status(), Some(503));
        assert_eq!(
            error.to_string(),
            "503 Service Unavailable: draining (retry after 2s)"
        );
    }

    #[test]
    fn retry_after_is_ignored_on_other_statuses_or_when_it_does_not_parse() {
        let now = SystemTime::UNIX_EPOCH;
        for (status, header) in [
            (404, Some("2")),
            (500, Some("2")),
            (503, Some("soon")),
            (503, None),
        ] {
            let error = error_from_answer(status, b"", header, now);
            assert!(
                matches!(&error, Error::Problem(p) if p.status == status),
                "{status} {header:?}: {error:?}"
            );
        }
    }

    #[test]
    fn io_reasons_are_short() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&refused), "connection refused");
        let other = std::io::Error::other("failed to lookup address (os error -2)");
        assert_eq!(io_reason(&other), "failed to lookup address");
    }
}
