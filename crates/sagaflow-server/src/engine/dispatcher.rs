//! Calls participants: builds the request of the participant protocol, sends it on a pooled
//! keep-alive connection, and classifies the answer as the protocol's table says.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::value::RawValue;
use tokio::sync::Semaphore;

use sagaflow_core::{Failure, FailureKind, Payload, Phase, SagaState, Send};

use crate::metrics::{AttemptLabels, Metrics, PhaseLabel};

/// The most of a failure answer's body kept for the error message.
const ERROR_BODY_BYTES_MAX: usize = 2048;

/// Makes participant calls, at most `calls_in_flight_max` at once.
pub struct Dispatcher {
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    output_bytes_max: usize,
    metrics: Arc<Metrics>,
}

/// Everything one call needs, taken from the saga's state when the call is decided.
pub struct CallSpec {
    pub saga_id: String,
    pub trace_id: String,
    pub step_name: String,
    pub send: Send,
    pub method: reqwest::Method,
    pub url: String,
    pub body: Vec<u8>,
}

impl Dispatcher {
    pub fn new(
        calls_in_flight_max: usize,
        output_bytes_max: usize,
        metrics: Arc<Metrics>,
    ) -> Dispatcher {
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Dispatcher {
            client,
            permits: Arc::new(Semaphore::new(calls_in_flight_max.max(1))),
            output_bytes_max,
            metrics,
        }
    }

    /// The request for one attempt, built from the saga as it stands when it is decided.
    pub fn prepare(state: &SagaState, send: &Send) -> CallSpec {
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
            method: reqwest::Method::from_bytes(call.method.as_str().as_bytes())
                .unwrap_or(reqwest::Method::POST),
            url: call.url.clone(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
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
        let send = &spec.send;
        let key = format!(
            "{}/{}/{}",
            spec.saga_id,
            spec.step_name,
            send.phase.as_str()
        );
        let traceparent = format!("00-{}-{}-01", spec.trace_id, span_id(&key, send.attempt));
        let request = self
            .client
            .request(spec.method.clone(), &spec.url)
            .timeout(Duration::from_millis(send.timeout_ms))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .header("traceparent", traceparent)
            .header("sagaflow-saga-id", &spec.saga_id)
            .header("sagaflow-step", &spec.step_name)
            .header("sagaflow-attempt", send.attempt.to_string())
            .body(spec.body.clone());
        let mut response = request.send().await.map_err(transport_failure)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
                if body.len() + chunk.len() > self.output_bytes_max {
                    return Err(Failure::transport(
                        FailureKind::InvalidAnswer,
                        format!(
                            "the answer's body is larger than the output limit of {} bytes",
                            self.output_bytes_max
                        ),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(output_payload(&body));
        }
        let retry_after_ms = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after_ms);
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= ERROR_BODY_BYTES_MAX {
                break;
            }
        }
        Err(Failure::from_status(
            status,
            error_message(&body),
            retry_after_ms,
        ))
    }
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

fn transport_failure(error: reqwest::Error) -> Failure {
    let message = error_chain(&error);
    let kind = if error.is_timeout() {
        FailureKind::Timeout
    } else if error.is_connect() {
        // The connection was never made: the request cannot have arrived.
        FailureKind::Refused
    } else {
        FailureKind::ConnectionLost
    };
    Failure::transport(kind, message)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
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

/// A span id for one attempt, stable across a re-send (16 hex digits, never all zero).
fn span_id(key: &str, attempt: u32) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes().chain(attempt.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:016x}", hash.max(1))
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
    fn outputs_are_json_null_or_text() {
        assert_eq!(output_payload(b"").as_str(), "null");
        assert_eq!(output_payload(br#"{"a":1}"#).as_str(), r#"{"a":1}"#);
        assert_eq!(output_payload(b"ok").as_str(), r#""ok""#);
    }
}
