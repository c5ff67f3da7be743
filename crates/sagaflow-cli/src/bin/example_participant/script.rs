//! The behaviour a test scripts through the step's URL query string.

use std::time::Duration;

use axum::http::StatusCode;

/// Longest delay a script may ask for; more is surely a typo.
const DELAY_MS_MAX: u64 = 10 * 60 * 1000;

/// What the query string asks for. Every field is optional; an empty query means "succeed".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    /// `?fail=STATUS`: always answer STATUS.
    pub fail: Option<StatusCode>,
    /// `?fail_times=N`: the first N deliveries of each Idempotency-Key fail.
    pub fail_times: Option<u32>,
    /// `?fail_status=STATUS`: the status of those failures (503 when left out).
    pub fail_status: StatusCode,
    /// `?retry_after=SECS`: a Retry-After header on failure answers.
    pub retry_after_secs: Option<u64>,
    /// `?delay_ms=N`: wait this long before answering.
    pub delay: Duration,
}

impl Script {
    /// Parses a query string (`None` when the URL has none). Unknown parameters are ignored,
    /// so a participant URL may carry its own; a known one with a bad value is an error.
    pub fn parse(query: Option<&str>) -> Result<Script, String> {
        let mut script = Script {
            fail_status: StatusCode::SERVICE_UNAVAILABLE,
            ..Script::default()
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "fail" => script.fail = Some(failure_status(name, value)?),
                "fail_times" => script.fail_times = Some(number(name, value)?),
                "fail_status" => script.fail_status = failure_status(name, value)?,
                "retry_after" => script.retry_after_secs = Some(number(name, value)?),
                "delay_ms" => {
                    let ms: u64 = number(name, value)?;
                    if ms > DELAY_MS_MAX {
                        return Err(format!("delay_ms={ms} is above {DELAY_MS_MAX}"));
                    }
                    script.delay = Duration::from_millis(ms);
                }
                _ => {}
            }
        }
        Ok(script)
    }
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{name}={value:?} is not a non-negative number"))
}

/// A status a failure may answer: 400 … 599.
fn failure_status(name: &str, value: &str) -> Result<StatusCode, String> {
    let code: u16 = number(name, value)?;
    match StatusCode::from_u16(code) {
        Ok(status) if status.is_client_error() || status.is_server_error() => Ok(status),
        _ => Err(format!("{name}={code} is not an error status (400 … 599)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_query_succeeds_without_delay() {
        let script = Script::parse(None).expect("no query is fine");
        assert_eq!(script.fail, None);
        assert_eq!(script.fail_times, None);
        assert_eq!(script.fail_status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(script.delay, Duration::ZERO);
    }

    #[test]
    fn every_parameter_is_read_and_unknown_ones_are_ignored() {
        let script = Script::parse(Some(
            "fail_times=2&fail_status=429&retry_after=3&delay_ms=40&sku=A-1",
        ))
        .expect("a valid script");
        assert_eq!(script.fail_times, Some(2));
        assert_eq!(script.fail_status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(script.retry_after_secs, Some(3));
        assert_eq!(script.delay, Duration::from_millis(40));
        let script = Script::parse(Some("fail=422")).expect("a valid script");
        assert_eq!(script.fail, Some(StatusCode::UNPROCESSABLE_ENTITY));
    }

    #[test]
    fn bad_values_are_refused() {
        for query in [
            "fail=200",
            "fail=abc",
            "fail_times=-1",
            "delay_ms=99999999",
            "fail_status=700",
        ] {
            assert!(
                Script::parse(Some(query)).is_err(),
                "{query} should be refused"
            );
        }
    }
}
