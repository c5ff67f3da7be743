//! Calls participants: builds the request of the participant protocol, sends it on a pooled
//! keep-alive HTTP/1.1 connection (`http1.rs`), and classifies the answer as the protocol's
//! table says.
//!
//! Participants see what the reqwest client first used here sent them: the URL as the `url`
//! crate normalizes it (with userinfo sent as Basic credentials), the same headers and the same
//! TCP options; redirects are not followed (a 3xx fails the step). Each call costs less: a
//! definition's URL becomes an `http::Uri` with its `Host` header once per dispatcher, for its
//! first call (most URLs skip the `url` crate), the headers are written straight into the
//! request, and the request goes out in one write from the saga's own task.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, StatusCode, Uri};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::value::RawValue;
use tokio::sync::Semaphore;
use tokio::time::timeout_at;

use sagaflow_core::{Failure, FailureKind, Payload, Phase, SagaState, Send};

use super::http1::{self, Endpoint, Progress, Stage};
use crate::metrics::{AttemptLabels, Metrics, PhaseLabel};

/// The most of a failure answer's body kept for the error message.
const ERROR_BODY_BYTES_MAX: usize = 2048;
/// How a failure while reading the answer's body begins (reqwest's words, kept for the messages
/// already in journals).
const BODY_ERROR: &str = "error decoding response body: request or response body error";

/// Tells dispatchers apart: each has connection pools of its own (one per event loop).
static DISPATCHER_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The most participant URLs whose parsed form a dispatcher keeps; past it they are parsed
/// again (a coordinator's definitions name a few dozen).
const TARGETS_MAX: usize = 4096;

/// Makes participant calls, at most `calls_in_flight_max` at once.
pub struct Dispatcher {
    id: u64,
    permits: Arc<Semaphore>,
    output_bytes_max: usize,
    metrics: Arc<Metrics>,
    /// The definitions' participant URLs as calls to them are made, by the URL's text: parsed
    /// for the first call, not for every attempt.
    targets: std::sync::Mutex<HashMap<String, Arc<Target>>>,
}

/// A participant URL as calls to it are made.
pub struct Target {
    /// Where the call goes, or why the definition's URL cannot be called (told when the call is
    /// made: a validated definition never has such a URL).
    endpoint: Result<Endpoint, String>,
    /// `Authorization: Basic` from the URL's userinfo, which is taken out of the URL.
    authorization: Option<HeaderValue>,
}

impl Target {
    fn new(url: &str) -> Target {
        match participant_uri(url) {
            Ok((uri, authorization)) => Target {
                endpoint: Ok(Endpoint::new(uri)),
                authorization,
            },
            Err(reason) => Target {
                endpoint: Err(reason),
                authorization: None,
            },
        }
    }
}

/// Everything one call needs, taken from the saga's state when the call is decided.
pub struct CallSpec {
    pub saga_id: String,
    pub trace_id: String,
    pub step_name: String,
    pub send: Send,
    pub method: Method,
    pub target: Arc<Target>,
    pub body: Bytes,
}

impl Dispatcher {
    pub fn new(
        calls_in_flight_max: usize,
        output_bytes_max: usize,
        metrics: Arc<Metrics>,
    ) -> Dispatcher {
        Dispatcher {
            id: DISPATCHER_IDS.fetch_add(1, Ordering::Relaxed),
            permits: Arc::new(Semaphore::new(calls_in_flight_max.max(1))),
            output_bytes_max,
            metrics,
            targets: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// `url` as calls to it are made.
    fn target(&self, url: &str) -> Arc<Target> {
        // A poisoned lock: a caller panicked while it held it; the map itself is whole.
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(target) = targets.get(url) {
            return Arc::clone(target);
        }
        let target = Arc::new(Target::new(url));
        if targets.len() >= TARGETS_MAX {
            targets.clear();
        }
        targets.insert(url.to_owned(), Arc::clone(&target));
        target
    }

    /// The request for one attempt, built from the saga as it stands when it is decided.
    pub fn prepare(&self, state: &SagaState, send: &Send) -> CallSpec {
        let def = &state.definition.steps[send.step];
        let call = match send.phase {
            Phase::Action => &def.action,
            Phase::Compensation => def.compensation.as_ref().unwrap_or(&def.action),
        };
        let body = RequestBody {
            saga_id: &state.id,
            step: &def.name,
            phase: send.phase.as_str(),
            attempt: send.attempt,
            input: state.input.as_raw(),
            results: Results(state),
        };
        CallSpec {
            saga_id: state.id.clone(),
            trace_id: state.trace_id.clone(),
            step_name: def.name.clone(),
            send: send.clone(),
            method: http_method(call.method),
            target: self.target(&call.url),
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
        }
    }

    /// Sends one attempt and classifies its answer.
    pub async fn call(&self, spec: &CallSpec) -> Result<Payload, Failure> {
        let _permit = self.permits.acquire().await.map_err(|_| {
            Failure::transport(
                FailureKind::Refused,
                "the coordinator is shutting down".into(),
            )
        })?;
        self.metrics.calls_in_flight.inc();
        let started = Instant::now();
        let outcome = self.exchange(spec).await;
        self.metrics.calls_in_flight.dec();
        let phase = spec.send.phase.as_str();
        self.metrics
            .step_duration
            .get_or_create(&PhaseLabel { phase })
            .observe(started.elapsed().as_secs_f64());
        let outcome_name = match &outcome {
            Ok(_) => "succeeded",
            Err(f) => failure_kind_name(f.kind),
        };
        self.metrics
            .step_attempts
            .get_or_create(&AttemptLabels {
                phase,
                outcome: outcome_name,
            })
            .inc();
        outcome
    }

    async fn exchange(&self, spec: &CallSpec) -> Result<Payload, Failure> {
        let endpoint = spec
            .target
            .endpoint
            .as_ref()
            .map_err(|reason| Failure::transport(FailureKind::Refused, reason.clone()))?;
        // One deadline for the whole exchange: connecting, sending, and reading the body.
        let timeout = Duration::from_millis(spec.send.timeout_ms);
        let now = tokio::time::Instant::now();
        // Validated timeouts are at most an hour; a corrupt one waits long rather than panics.
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        let answer = self.send(spec, endpoint, deadline).await?;
        let status = answer.status;
        if status.is_success() {
            let mut output = Vec::new();
            // One byte past the limit tells a body that does not fit.
            let limit = self.output_bytes_max;
            let read = timeout_at(deadline, answer.body(&mut output, limit.saturating_add(1)));
            match read.await {
                Err(_) => {
                    return Err(Failure::transport(
                        FailureKind::Timeout,
                        format!("{BODY_ERROR}: operation timed out"),
                    ));
                }
                Ok(Err(error)) => {
                    return Err(Failure::transport(
                        transport_kind(&error, Stage::Answered),
                        format!("{BODY_ERROR}: {error}"),
                    ));
                }
                Ok(Ok(_)) if output.len() > limit => {
                    return Err(Failure::transport(
                        FailureKind::InvalidAnswer,
                        format!(
                            "the answer's body is larger than the output limit of {limit} bytes"
                        ),
                    ));
                }
                Ok(Ok(_)) => {}
            }
            return Ok(output_payload(&output));
        }
        if status.is_redirection() {
            return Err(redirect_failure(status, answer.location.as_ref()));
        }
        let retry_after_ms = answer
            .retry_after
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after_ms);
        // The status decides; the body only explains, so whatever arrives before it ends, fails
        // or the deadline passes is enough.
        let mut text = Vec::new();
        let _ = timeout_at(deadline, answer.body(&mut text, ERROR_BODY_BYTES_MAX)).await;
        Err(Failure::from_status(
            status.as_u16(),
            error_message(&text),
            retry_after_ms,
        ))
    }

    /// Sends the attempt and reads its answer's status and headers. Redirects are not
    /// followed: reqwest's default policy, which the first client here had, turned a 301 or 302
    /// to a POST into a GET without the saga's body, whose 2xx would have passed for the step's
    /// answer. A redirect is a step pointed at the wrong URL: it fails as the participant's no
    /// (see `redirect_failure`).
    async fn send(
        &self,
        spec: &CallSpec,
        endpoint: &Endpoint,
        deadline: tokio::time::Instant,
    ) -> Result<http1::Answer, Failure> {
        // Validated step names and generated ids always make valid header values; if one did
        // not, the request was never sent.
        if ![&spec.saga_id, &spec.step_name, &spec.trace_id]
            .iter()
            .all(|text| is_header_value(text))
        {
            return Err(Failure::transport(
                FailureKind::Refused,
                "the request cannot be sent: a header value is not valid".into(),
            ));
        }
        let uri = endpoint.uri();
        let progress = Progress::new();
        let headers = |out: &mut Vec<u8>| write_headers(spec, out);
        let sent = http1::send(
            self.id,
            &spec.method,
            endpoint,
            headers,
            &spec.body,
            &progress,
        );
        match timeout_at(deadline, sent).await {
            Err(_) if progress.stage() == Stage::Connecting => Err(Failure::transport(
                FailureKind::Refused,
                format!(
                    "error sending request for url ({uri}): operation timed out before a \
                     connection to the participant was made"
                ),
            )),
            Err(_) => Err(Failure::transport(
                FailureKind::Timeout,
                format!("error sending request for url ({uri}): operation timed out"),
            )),
            Ok(Err(error)) => Err(Failure::transport(
                transport_kind(&error, progress.stage()),
                format!("error sending request for url ({uri}): {error}"),
            )),
            Ok(Ok(answer)) => Ok(answer),
        }
    }
}

/// A 3xx answer: a business no (not retried, nothing to compensate: the participant did not
/// take the request), saying where it pointed.
fn redirect_failure(status: StatusCode, location: Option<&HeaderValue>) -> Failure {
    let to = location
        .and_then(|l| l.to_str().ok())
        .map(|l| format!(" to {l}"))
        .unwrap_or_default();
    Failure::from_status(
        status.as_u16(),
        format!(
            "the participant answered a redirect{to}; Sagaflow does not follow redirects: point the step at the final URL"
        ),
        None,
    )
}

/// The headers of the participant protocol, plus the `Accept: */*` every reqwest request had,
/// as the request's lines (their values checked by `is_header_value`).
fn write_headers(spec: &CallSpec, out: &mut Vec<u8>) {
    let (saga, step, send) = (&spec.saga_id, &spec.step_name, &spec.send);
    let phase = send.phase.as_str();
    if let Some(authorization) = &spec.target.authorization {
        out.extend_from_slice(b"authorization: ");
        out.extend_from_slice(authorization.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let span = span_id(saga, step, phase, send.attempt);
    // Writing to a `Vec` cannot fail.
    let _ = write!(
        out,
        "content-type: application/json\r\n\
         idempotency-key: {saga}/{step}/{phase}\r\n\
         traceparent: 00-{trace}-{span:016x}-01\r\n\
         sagaflow-saga-id: {saga}\r\n\
         sagaflow-step: {step}\r\n\
         sagaflow-attempt: {attempt}\r\n\
         accept: */*\r\n",
        trace = spec.trace_id,
        attempt = send.attempt,
    );
}

/// Whether `text` may be a header's value as it is (`http::HeaderValue`'s rule: no control
/// character but tab).
fn is_header_value(text: &str) -> bool {
    text.bytes().all(|b| (b >= 32 && b != 127) || b == b'\t')
}

fn http_method(method: sagaflow_core::Method) -> Method {
    match method {
        sagaflow_core::Method::Post => Method::POST,
        sagaflow_core::Method::Put => Method::PUT,
        sagaflow_core::Method::Patch => Method::PATCH,
        sagaflow_core::Method::Delete => Method::DELETE,
        sagaflow_core::Method::Get => Method::GET,
    }
}

/// The definition's URL as reqwest sent it: normalized by the `url` crate, with any userinfo
/// taken out as Basic credentials. Most URLs are already in that form and skip the `url` crate.
fn participant_uri(text: &str) -> Result<(Uri, Option<HeaderValue>), String> {
    if is_normal_form(text)
        && let Ok(uri) = Uri::try_from(text)
    {
        return Ok((uri, None));
    }
    let unusable = |reason: &dyn std::fmt::Display| {
        format!("the participant URL {text:?} cannot be called: {reason}")
    };
    let mut url = url::Url::parse(text).map_err(|e| unusable(&e))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(unusable(&"it is not an http(s) URL"));
    }
    let authorization = take_credentials(&mut url);
    let uri = Uri::try_from(url.as_str()).map_err(|e| unusable(&e))?;
    Ok((uri, authorization))
}

/// Whether the `url` crate would leave `text` as it is, and `http::Uri` reads it the same way: an
/// http(s) URL with a lowercase host name or a dotted-quad address, no userinfo, no port or a
/// non-default one, and a path and query made of characters neither changes, without dot
/// segments. A `false` only means the slower way.
fn is_normal_form(text: &str) -> bool {
    let (rest, default_port) = if let Some(rest) = text.strip_prefix("http://") {
        (rest, "80")
    } else if let Some(rest) = text.strip_prefix("https://") {
        (rest, "443")
    } else {
        return false;
    };
    let (authority, path_and_query) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let port_is_normal = port.is_none_or(|port| {
        !port.starts_with('0')
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok()
            && port != default_port
    });
    port_is_normal && is_normal_host(host) && is_normal_path(path_and_query)
}

fn is_normal_host(host: &str) -> bool {
    let labels_are_plain = host.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with("xn--")
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if !labels_are_plain {
        return false;
    }
    // The `url` crate reads a host whose last label looks numeric as an IPv4 address and
    // rewrites it (`127.1` is `127.0.0.1`), so only the form it writes back is taken as is.
    let last = host.rsplit('.').next().unwrap_or("");
    if !last.starts_with(|c: char| c.is_ascii_digit()) {
        return true;
    }
    let mut octets = 0;
    let octets_are_plain = host.split('.').all(|octet| {
        octets += 1;
        octet.bytes().all(|b| b.is_ascii_digit())
            && (octet.len() == 1 || !octet.starts_with('0'))
            && octet.parse::<u8>().is_ok()
    });
    octets_are_plain && octets == 4
}

fn is_normal_path(path_and_query: &str) -> bool {
    if path_and_query.is_empty() {
        // `http://svc` is sent as `GET /` either way.
        return true;
    }
    let characters_are_kept = path_and_query
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&()*+,;=:@/?%".contains(&b));
    let path = path_and_query.split('?').next().unwrap_or("");
    characters_are_kept && !path.split('/').any(is_dot_segment)
}

/// `.` or `..`, either dot perhaps written `%2e`: the `url` crate resolves these away.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return false,
        };
        dots += 1;
    }
    (1..=2).contains(&dots)
}

/// Takes userinfo out of the URL as reqwest did, as `Authorization: Basic` credentials.
fn take_credentials(url: &mut url::Url) -> Option<HeaderValue> {
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .ok()
            .map(|text| text.into_owned())
    };
    let username = decode(url.username())?;
    let password = url.password().and_then(decode);
    if username.is_empty() && password.is_none() {
        return None;
    }
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let credentials = format!("{username}:{}", password.unwrap_or_default());
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value = HeaderValue::try_from(format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A 2xx body as the step's output: JSON as is, nothing as `null`, other text as a string.
fn output_payload(body: &[u8]) -> Payload {
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return Payload::null();
    }
    Payload::from_json(&text)
        .unwrap_or_else(|_| Payload::from_value(&serde_json::Value::String(text.into_owned())))
}

/// The most useful line of a failure answer: a problem's detail or title, else the text.
fn error_message(body: &[u8]) -> String {
    let body = &body[..body.len().min(ERROR_BODY_BYTES_MAX)];
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        for field in ["detail", "title", "error", "message"] {
            if let Some(text) = value.get(field).and_then(|v| v.as_str()) {
                return text.to_owned();
            }
        }
    }
    String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(500)
        .collect()
}

/// `Retry-After` as delay-seconds (an HTTP-date is rare from services and is ignored).
fn parse_retry_after_ms(value: &str) -> Option<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s.saturating_mul(1000))
}

/// What a transport error means for the protocol. A request of which no byte was written is a
/// definite no, whatever the error; one that was may have taken effect: TCP's own timeout is a
/// timeout, anything else a lost connection.
fn transport_kind(error: &http1::Error, stage: Stage) -> FailureKind {
    if stage == Stage::Connecting {
        FailureKind::Refused
    } else if error.is_timeout() {
        FailureKind::Timeout
    } else {
        FailureKind::ConnectionLost
    }
}

pub fn failure_kind_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Rejected => "rejected",
        FailureKind::Throttled => "throttled",
        FailureKind::ServerError => "server_error",
        FailureKind::Timeout => "timeout",
        FailureKind::Refused => "refused",
        FailureKind::ConnectionLost => "connection_lost",
        FailureKind::InvalidAnswer => "invalid_answer",
    }
}

/// A span id for one attempt, stable across a re-send (never zero: written as 16 hex digits):
/// a hash of its idempotency key (`saga/step/phase`) and its attempt number.
fn span_id(saga: &str, step: &str, phase: &str, attempt: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let key = [saga, "/", step, "/", phase]
        .into_iter()
        .flat_map(str::bytes);
    for byte in key.chain(attempt.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.max(1)
}

#[derive(Serialize)]
struct RequestBody<'a> {
    saga_id: &'a str,
    step: &'a str,
    phase: &'a str,
    attempt: u32,
    input: &'a RawValue,
    results: Results<'a>,
}

/// `{step name: output}` of the steps that succeeded, without re-parsing any output.
struct Results<'a>(&'a SagaState);

impl Serialize for Results<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let state = self.0;
        let mut map = serializer.serialize_map(None)?;
        for (def, step) in state.definition.steps.iter().zip(&state.steps) {
            if let Some(output) = &step.output {
                map.serialize_entry(&def.name, output.as_raw())?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn retry_after_in_seconds_becomes_milliseconds() {
        assert_eq!(parse_retry_after_ms("5"), Some(5000));
        assert_eq!(parse_retry_after_ms(" 0 "), Some(0));
        assert_eq!(parse_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn a_problem_answer_yields_its_detail() {
        let body = br#"{"type":"x","title":"Refused","status":422,"detail":"out of stock"}"#;
        assert_eq!(error_message(body), "out of stock");
        assert_eq!(error_message(b"plain text"), "plain text");
    }

    #[test]
    fn a_request_carries_the_protocol_headers_and_the_urls_credentials() {
        let spec = CallSpec {
            saga_id: "0190-ab".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            step_name: "charge".into(),
            send: Send {
                step: 1,
                phase: Phase::Compensation,
                attempt: 3,
                timeout_ms: 1000,
            },
            method: Method::POST,
            target: Arc::new(Target::new("http://user:pw@pay.example:8080/charges")),
            body: Bytes::new(),
        };
        let mut out = Vec::new();
        write_headers(&spec, &mut out);
        // The span id as a hash of the idempotency key's text and the attempt number.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in "0190-ab/charge/compensation"
            .bytes()
            .chain(3u32.to_le_bytes())
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "authorization: Basic dXNlcjpwdw==\r\n\
                 content-type: application/json\r\n\
                 idempotency-key: 0190-ab/charge/compensation\r\n\
                 traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-{hash:016x}-01\r\n\
                 sagaflow-saga-id: 0190-ab\r\n\
                 sagaflow-step: charge\r\n\
                 sagaflow-attempt: 3\r\n\
                 accept: */*\r\n"
            )
        );
        let uri = spec.target.endpoint.as_ref().unwrap().uri();
        assert_eq!(uri.to_string(), "http://pay.example:8080/charges");
        assert!(is_header_value("0190-ab\tx"));
        assert!(!is_header_value("a\r\nb: c"));
        assert!(!is_header_value("a\u{7f}"));
    }

    #[test]
    fn outputs_are_json_null_or_text() {
        assert_eq!(output_payload(b"").as_str(), "null");
        assert_eq!(output_payload(br#"{"a":1}"#).as_str(), r#"{"a":1}"#);
        assert_eq!(output_payload(b"ok").as_str(), r#""ok""#);
    }

    /// `participant_uri`'s answer as `uri [authorization]`, or the error.
    fn check_uri(url: &str, expected: &str) {
        let actual = match participant_uri(url) {
            Ok((uri, None)) => uri.to_string(),
            Ok((uri, Some(authorization))) => {
                format!("{uri} {}", authorization.to_str().unwrap_or("?"))
            }
            Err(reason) => format!("error: {reason}"),
        };
        assert_eq!(actual, expected, "{url}");
    }

    #[test]
    fn urls_are_sent_as_the_url_crate_normalizes_them() {
        check_uri(
            "http://127.0.0.1:8101/reservations",
            "http://127.0.0.1:8101/reservations",
        );
        check_uri("http://svc", "http://svc/");
        check_uri(
            "https://pay.example.com/charges?x=1",
            "https://pay.example.com/charges?x=1",
        );
        check_uri("http://Svc.Example:80/a/./b/../c", "http://svc.example/a/c");
        check_uri("http://127.1/x", "http://127.0.0.1/x");
        check_uri("http://svc/%2E/a%2eb/.../%2e./c", "http://svc/a%2eb/c");
        check_uri("http://svc/x#part", "http://svc/x");
        check_uri(
            "http://svc/caf\u{e9}?q=\"x\"",
            "http://svc/caf%C3%A9?q=%22x%22",
        );
        check_uri(
            "http://b\u{fc}cher.example/",
            "http://xn--bcher-kva.example/",
        );
        check_uri(
            "http://user:p%40ss@svc:8080/x",
            "http://svc:8080/x Basic dXNlcjpwQHNz",
        );
        check_uri("http://user@svc/x", "http://svc/x Basic dXNlcjo=");
        check_uri(
            "http://svc:99999/x",
            "error: the participant URL \"http://svc:99999/x\" cannot be called: invalid port number",
        );
    }

    proptest! {
        /// The shortcut past the `url` crate takes only URLs the `url` crate leaves as they are.
        #[test]
        fn a_url_in_normal_form_is_the_url_crates_own(
            scheme in "https?",
            host in "([0-9]{1,3}\\.){3}[0-9]{1,4}|[a-zA-Z0-9._-]{0,4}(\\.[0-9a-z]{0,3}){0,4}",
            port in "(:[0-9]{0,6})?",
            path in "(/(\\.|\\.\\.|%2[eE]\\.?|[a-zA-Z0-9._~!$&'()*+,;=:@%?#\\\\ \"<>{}|^`\\[\\]-]{0,6})){0,4}",
        ) {
            let text = format!("{scheme}://{host}{port}{path}");
            if is_normal_form(&text) {
                let url = url::Url::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                let expected = if path.is_empty() { format!("{text}/") } else { text.clone() };
                prop_assert_eq!(url.as_str(), expected.as_str());
                if let Ok(uri) = Uri::try_from(text.as_str()) {
                    prop_assert_eq!(uri.to_string(), expected);
                }
            }
        }
    }

    #[test]
    fn a_redirect_is_a_refusal_that_names_where_it_pointed() {
        let location = HeaderValue::from_static("http://svc/moved");
        let failure = redirect_failure(StatusCode::FOUND, Some(&location));
        assert_eq!(failure.kind, FailureKind::Rejected);
        assert_eq!(failure.status, Some(302));
        assert!(
            failure.message.contains("to http://svc/moved"),
            "{}",
            failure.message
        );
        let failure = redirect_failure(StatusCode::PERMANENT_REDIRECT, None);
        assert!(!failure.is_retryable() && !failure.maybe_applied());
    }

    #[test]
    fn transport_errors_are_told_apart_by_how_far_the_call_got() {
        let timed_out = http1::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "user timeout",
        ));
        assert_eq!(
            transport_kind(&timed_out, Stage::Sent),
            FailureKind::Timeout
        );
        let reset = http1::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(
            transport_kind(&reset, Stage::Sent),
            FailureKind::ConnectionLost
        );
        let closed = http1::Error::Closed;
        assert_eq!(
            transport_kind(&closed, Stage::Answered),
            FailureKind::ConnectionLost
        );
        // A request of which nothing was written was not delivered, however the attempt failed.
        assert_eq!(
            transport_kind(&timed_out, Stage::Connecting),
            FailureKind::Refused
        );
        assert_eq!(
            transport_kind(&reset, Stage::Connecting),
            FailureKind::Refused
        );
    }
}
