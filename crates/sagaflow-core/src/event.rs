//! The journal's vocabulary: everything that happens to a saga is one of these events.
//! A saga's state is the fold of its events (`SagaState::apply`), nothing more.

use serde::{Deserialize, Serialize};

use crate::payload::Payload;

/// Which call of a step an attempt belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Action,
    Compensation,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Action => "action",
            Phase::Compensation => "compensation",
        }
    }
}

/// Why a saga stopped taking new steps before it completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `POST /v1/sagas/{id}/cancel`.
    Cancelled,
    /// The saga's own `timeout_ms` passed.
    TimedOut,
}

/// How an attempt failed, as the participant protocol's table classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A 4xx other than 408/425/429: the business said no.
    Rejected,
    /// 408, 425, 429: try later; the request was not applied.
    Throttled,
    /// A 5xx answer: the participant may have applied the request.
    ServerError,
    /// No answer within the attempt's timeout.
    Timeout,
    /// The request was never sent: the connection was refused, or could not be made in time.
    Refused,
    /// The connection broke after the request may have been sent.
    ConnectionLost,
    /// A 2xx answer Sagaflow cannot accept (e.g. an output above the payload limit).
    InvalidAnswer,
}

/// One failed attempt, classified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The HTTP status, when there was an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong, for people (a participant's problem detail, a transport error).
    pub message: String,
    /// The participant's `Retry-After`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl Failure {
    /// Classifies a non-2xx HTTP answer.
    pub fn from_status(status: u16, message: String, retry_after_ms: Option<u64>) -> Failure {
        let kind = match status {
            408 | 425 | 429 => FailureKind::Throttled,
            500..=599 => FailureKind::ServerError,
            _ => FailureKind::Rejected,
        };
        Failure {
            kind,
            status: Some(status),
            message,
            retry_after_ms,
        }
    }

    /// A failure without an HTTP answer.
    pub fn transport(kind: FailureKind, message: String) -> Failure {
        Failure {
            kind,
            status: None,
            message,
            retry_after_ms: None,
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self.kind,
            FailureKind::Rejected | FailureKind::InvalidAnswer
        )
    }

    /// Whether the participant may have applied the request (so it must be compensated).
    pub fn maybe_applied(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::ServerError
                | FailureKind::Timeout
                | FailureKind::ConnectionLost
                | FailureKind::InvalidAnswer
        )
    }
}

/// An event with the time it was decided (milliseconds since the Unix epoch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: u64,
    pub kind: EventKind,
}

/// What happened. Externally tagged on purpose: serde's internally tagged and flattened
/// enums buffer their content, which cannot hold the raw JSON of a `Payload`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The saga was accepted. Always the first event.
    SagaStarted {
        definition: String,
        version: u32,
        input: Payload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline_at_ms: Option<u64>,
        /// W3C trace id (32 hex digits) every call of this saga carries.
        trace_id: String,
    },
    /// An attempt is about to be sent. Durable before the request leaves (write-ahead).
    AttemptStarted {
        step: usize,
        phase: Phase,
        attempt: u32,
    },
    /// An in-flight attempt is sent again after a restart (same attempt, same key).
    AttemptResent {
        step: usize,
        phase: Phase,
        attempt: u32,
    },
    /// The participant answered 2xx.
    AttemptSucceeded {
        step: usize,
        phase: Phase,
        attempt: u32,
        output: Payload,
    },
    /// The attempt failed; `retry_at_ms` is when the next one is due, or `None` when this
    /// call has failed for good.
    AttemptFailed {
        step: usize,
        phase: Phase,
        attempt: u32,
        failure: Failure,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at_ms: Option<u64>,
    },
    /// A cancel or the saga's timeout: no new step from here on; a pending action retry is
    /// abandoned.
    StopRequested { reason: StopReason },
    /// The saga unwinds: compensations from here, in reverse order.
    CompensationBegan { error: String },
    /// A compensation gave up; the saga needs a person.
    SagaFailed { step: usize, error: String },
    /// `POST /v1/sagas/{id}/retry`: compensations resume with fresh attempts.
    RetryRequested,
    /// Every step succeeded.
    SagaCompleted,
    /// Every step that needed it was compensated.
    SagaCompensated,
}

impl EventKind {
    /// A short name for logs, metrics and the history.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::SagaStarted { .. } => "saga_started",
            EventKind::AttemptStarted { .. } => "attempt_started",
            EventKind::AttemptResent { .. } => "attempt_resent",
            EventKind::AttemptSucceeded { .. } => "attempt_succeeded",
            EventKind::AttemptFailed { .. } => "attempt_failed",
            EventKind::StopRequested { .. } => "stop_requested",
            EventKind::CompensationBegan { .. } => "compensation_began",
            EventKind::SagaFailed { .. } => "saga_failed",
            EventKind::RetryRequested => "retry_requested",
            EventKind::SagaCompleted => "saga_completed",
            EventKind::SagaCompensated => "saga_compensated",
        }
    }
}
