//! Saga definitions as the state machine sees them: every default filled in, every rule checked.

use serde::{Deserialize, Serialize};

/// The HTTP method of a participant call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
    Get,
}

impl Method {
    /// Parses an HTTP method name (case-insensitive).
    pub fn parse(text: &str) -> Option<Method> {
        match text.to_ascii_uppercase().as_str() {
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            "GET" => Some(Method::Get),
            _ => None,
        }
    }

    /// The method's name as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Get => "GET",
        }
    }
}

/// How a retry delay is randomised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// A uniform delay in `0 ..= backoff` (AWS "full jitter").
    Full,
    /// Half the backoff plus a uniform `0 ..= backoff / 2`.
    Equal,
    /// Exactly the backoff.
    None,
}

impl Jitter {
    /// Parses a jitter name.
    pub fn parse(text: &str) -> Option<Jitter> {
        match text {
            "full" => Some(Jitter::Full),
            "equal" => Some(Jitter::Equal),
            "none" => Some(Jitter::None),
            _ => None,
        }
    }
}

/// Exponential backoff with jitter. Field names follow the API contract.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub multiplier: f64,
    pub jitter: Jitter,
}

impl RetryPolicy {
    /// The default for actions: a few quick attempts.
    pub fn action_default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff_ms: 100,
            max_backoff_ms: 10_000,
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }

    /// The default for compensations: they must eventually succeed, so many patient attempts.
    pub fn compensation_default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 20,
            initial_backoff_ms: 100,
            max_backoff_ms: 60_000,
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }

    /// The delay before the attempt after `attempts_used` failed ones, given a uniform random
    /// number. Pure: the caller journals the result, so a replay never draws again.
    pub fn backoff_ms(&self, attempts_used: u32, random: u64) -> u64 {
        let exponent = attempts_used.saturating_sub(1).min(64) as i32;
        let raw = self.initial_backoff_ms as f64 * self.multiplier.powi(exponent);
        let capped = if raw.is_finite() {
            raw.min(self.max_backoff_ms as f64) as u64
        } else {
            self.max_backoff_ms
        };
        match self.jitter {
            Jitter::None => capped,
            Jitter::Full => random % (capped + 1),
            Jitter::Equal => capped / 2 + random % (capped / 2 + 1),
        }
    }
}

/// One HTTP call to a participant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub url: String,
    pub method: Method,
    pub timeout_ms: u64,
}

/// One step: an action, an optional compensation, and their retry policies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepDef {
    pub name: String,
    pub action: Call,
    pub compensation: Option<Call>,
    pub retry: RetryPolicy,
    pub compensation_retry: RetryPolicy,
}

/// A named, versioned, ordered list of steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub name: String,
    pub version: u32,
    /// The saga's own deadline, from its start. `None`: no deadline.
    pub timeout_ms: Option<u64>,
    pub steps: Vec<StepDef>,
}

/// Limits a definition must respect; the server configures them.
#[derive(Clone, Debug)]
pub struct DefinitionLimits {
    pub steps_max: usize,
    pub name_len_max: usize,
    pub url_len_max: usize,
}

impl Default for DefinitionLimits {
    fn default() -> DefinitionLimits {
        DefinitionLimits {
            steps_max: 100,
            name_len_max: 200,
            url_len_max: 2048,
        }
    }
}

/// A rule a definition breaks, naming the field as the API spells it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A step's attempt timeout: 1 ms … 1 h.
pub const STEP_TIMEOUT_MS_MAX: u64 = 3_600_000;
/// A saga's timeout: 1 ms … 30 days.
pub const SAGA_TIMEOUT_MS_MAX: u64 = 30 * 24 * 3_600_000;
/// Retry attempts: 1 … 100.
pub const ATTEMPTS_MAX: u32 = 100;
/// The default attempt timeout.
pub const STEP_TIMEOUT_MS_DEFAULT: u64 = 10_000;

impl Definition {
    /// Checks every rule of the API contract. The version is not checked (the store assigns it).
    pub fn validate(&self, limits: &DefinitionLimits) -> Result<(), ValidationError> {
        check_name("name", &self.name, limits)?;
        if self.steps.is_empty() {
            return Err(ValidationError::new(
                "steps",
                "a definition needs at least one step",
            ));
        }
        if self.steps.len() > limits.steps_max {
            return Err(ValidationError::new(
                "steps",
                format!(
                    "{} steps is more than the limit of {}",
                    self.steps.len(),
                    limits.steps_max
                ),
            ));
        }
        if let Some(timeout_ms) = self.timeout_ms
            && !(1..=SAGA_TIMEOUT_MS_MAX).contains(&timeout_ms)
        {
            return Err(ValidationError::new(
                "timeout_ms",
                format!("must be between 1 and {SAGA_TIMEOUT_MS_MAX} ms (30 days)"),
            ));
        }
        for (index, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{index}]");
            check_name(&format!("{at}.name"), &step.name, limits)?;
            if self.steps[..index].iter().any(|s| s.name == step.name) {
                return Err(ValidationError::new(
                    format!("{at}.name"),
                    format!("duplicate step name {:?}", step.name),
                ));
            }
            check_call(&format!("{at}.action"), &step.action, limits)?;
            if let Some(compensation) = &step.compensation {
                check_call(&format!("{at}.compensation"), compensation, limits)?;
            }
            check_retry(&format!("{at}.retry"), &step.retry)?;
            check_retry(
                &format!("{at}.compensation_retry"),
                &step.compensation_retry,
            )?;
        }
        Ok(())
    }

    /// The index of the step with this name.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}

fn check_name(field: &str, name: &str, limits: &DefinitionLimits) -> Result<(), ValidationError> {
    if name.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if name.len() > limits.name_len_max {
        return Err(ValidationError::new(
            field,
            format!("longer than {} bytes", limits.name_len_max),
        ));
    }
    // Names travel in URLs, headers and the Idempotency-Key: keep them printable and slash-free.
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err(ValidationError::new(
            field,
            "must not contain '/' or control characters",
        ));
    }
    Ok(())
}

fn check_call(field: &str, call: &Call, limits: &DefinitionLimits) -> Result<(), ValidationError> {
    if call.url.len() > limits.url_len_max {
        return Err(ValidationError::new(
            format!("{field}.url"),
            format!("longer than {} bytes", limits.url_len_max),
        ));
    }
    if !is_absolute_http_url(&call.url) {
        return Err(ValidationError::new(
            format!("{field}.url"),
            format!("{:?} is not an absolute http(s) URL", call.url),
        ));
    }
    if !(1..=STEP_TIMEOUT_MS_MAX).contains(&call.timeout_ms) {
        return Err(ValidationError::new(
            format!("{field}.timeout_ms"),
            format!("must be between 1 and {STEP_TIMEOUT_MS_MAX} ms (1 hour)"),
        ));
    }
    Ok(())
}

/// `http://host[:port][/path]` or `https://…`, with a non-empty host and no whitespace.
fn is_absolute_http_url(url: &str) -> bool {
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else {
        return false;
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return false;
    }
    // A port, when given, must be a number.
    if let Some((_, port)) = authority.rsplit_once("]:").or_else(|| {
        if authority.starts_with('[') {
            None
        } else {
            authority.rsplit_once(':')
        }
    }) && port.parse::<u16>().is_err()
    {
        return false;
    }
    true
}

fn check_retry(field: &str, retry: &RetryPolicy) -> Result<(), ValidationError> {
    if !(1..=ATTEMPTS_MAX).contains(&retry.max_attempts) {
        return Err(ValidationError::new(
            format!("{field}.max_attempts"),
            format!("must be between 1 and {ATTEMPTS_MAX}"),
        ));
    }
    if retry.initial_backoff_ms == 0 {
        return Err(ValidationError::new(
            format!("{field}.initial_backoff_ms"),
            "must be at least 1",
        ));
    }
    if retry.initial_backoff_ms > retry.max_backoff_ms {
        return Err(ValidationError::new(
            format!("{field}.initial_backoff_ms"),
            "must not be above max_backoff_ms",
        ));
    }
    if retry.max_backoff_ms > SAGA_TIMEOUT_MS_MAX {
        return Err(ValidationError::new(
            format!("{field}.max_backoff_ms"),
            format!("must not be above {SAGA_TIMEOUT_MS_MAX} ms (30 days)"),
        ));
    }
    if !retry.multiplier.is_finite() || retry.multiplier < 1.0 || retry.multiplier > 100.0 {
        return Err(ValidationError::new(
            format!("{field}.multiplier"),
            "must be between 1.0 and 100.0",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_http_urls_are_told_apart_from_others() {
        for ok in [
            "http://127.0.0.1:8101/reservations",
            "https://pay.example.com/charges?x=1",
            "http://[::1]:80/a",
            "http://svc",
        ] {
            assert!(is_absolute_http_url(ok), "{ok}");
        }
        for bad in [
            "",
            "/relative",
            "ftp://host/x",
            "http://",
            "http:///path",
            "http://host:notaport/x",
            "http://ho st/x",
            "127.0.0.1:8101/x",
        ] {
            assert!(!is_absolute_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_by_the_multiplier_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            multiplier: 2.0,
            jitter: Jitter::None,
        };
        let delays: Vec<u64> = (1..=6).map(|n| policy.backoff_ms(n, 0)).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_backoff() {
        let policy = RetryPolicy {
            jitter: Jitter::Full,
            ..RetryPolicy::action_default()
        };
        for random in [0, 1, 57, 100, 101, u64::MAX] {
            assert!(policy.backoff_ms(1, random) <= 100);
        }
        assert_eq!(policy.backoff_ms(1, 100), 100);
    }
}
