//! Sagas on the wire: starting one, reading it, its history, listing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use sagaflow_core::{Event, EventKind, SagaState};

use crate::time::rfc3339;

/// `POST /v1/sagas`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartSaga {
    pub definition: String,
    /// The definition's version; its latest when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Any JSON; `null` when left out.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Value,
}

/// `GET /v1/sagas/{id}`: a saga and its steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaView {
    pub id: String,
    pub definition: String,
    pub version: u32,
    /// `running`, `compensating`, `completed`, `compensated` or `failed`.
    pub status: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Value,
    pub created_at: String,
    pub updated_at: String,
    /// When the saga's own timeout passes, if it has one.
    #[serde(default)]
    pub deadline_at: Option<String>,
    /// Why the saga is compensating, compensated or failed.
    pub error: Option<String>,
    /// The W3C trace id every call of this saga carries.
    #[serde(default)]
    pub trace_id: String,
    pub steps: Vec<StepView>,
}

/// One step of a saga.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepView {
    pub name: String,
    /// `pending`, `running`, `succeeded`, `failed`, `compensating`, `compensated` or `skipped`.
    pub status: String,
    pub attempts: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub output: Value,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// When the next attempt is due, while a retry is scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// Always present from this server (`status` is `none` when the step defines no
    /// compensation); optional for clients of older servers.
    pub compensation: Option<CompensationView>,
}

/// A step's compensation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompensationView {
    /// `pending`, `running`, `succeeded`, `failed`, `skipped` (will not run), or `none` (the
    /// step defines no compensation).
    pub status: String,
    pub attempts: u32,
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

/// One saga in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaSummary {
    pub id: String,
    pub definition: String,
    pub version: u32,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

/// `GET /v1/sagas`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaList {
    pub items: Vec<SagaSummary>,
    pub next_cursor: Option<String>,
}

/// One recorded event of a saga.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEntry {
    pub at: String,
    /// What happened: `saga_started`, `attempt_started` (request sent), `attempt_resent`,
    /// `attempt_succeeded` (answer), `attempt_failed` (error, maybe a retry scheduled),
    /// `stop_requested`, `compensation_began`, `saga_failed`, `retry_requested`,
    /// `saga_completed`, `saga_compensated`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// `action` or `compensation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// A sentence for people.
    pub detail: String,
    /// The recorded event itself.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
}

/// `GET /v1/sagas/{id}/history`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryList {
    pub items: Vec<HistoryEntry>,
}

impl SagaView {
    /// The view of a saga's state.
    pub fn from_state(state: &SagaState) -> SagaView {
        let steps = state
            .definition
            .steps
            .iter()
            .zip(&state.steps)
            .map(|(def, s)| StepView {
                name: def.name.clone(),
                status: s.status.as_str().to_owned(),
                attempts: s.action.attempts,
                output: s.output.as_ref().map_or(Value::Null, |o| o.to_value()),
                error: s.action.error.clone(),
                started_at: s.started_at_ms.map(rfc3339),
                finished_at: s.finished_at_ms.map(rfc3339),
                next_attempt_at: s.action.retry_at_ms.map(rfc3339),
                compensation: Some(CompensationView {
                    status: match (&def.compensation, s.compensation.status) {
                        (None, _) => "none",
                        (Some(_), status) => status.as_str(),
                    }
                    .to_owned(),
                    attempts: s.compensation.attempts,
                    error: s.compensation.error.clone(),
                    next_attempt_at: s.compensation.retry_at_ms.map(rfc3339),
                }),
            })
            .collect();
        SagaView {
            id: state.id.clone(),
            definition: state.definition.name.clone(),
            version: state.definition.version,
            status: state.status.as_str().to_owned(),
            input: state.input.to_value(),
            created_at: rfc3339(state.created_at_ms),
            updated_at: rfc3339(state.updated_at_ms),
            deadline_at: state.deadline_at_ms.map(rfc3339),
            error: state.error.clone(),
            trace_id: state.trace_id.clone(),
            steps,
        }
    }
}

impl HistoryEntry {
    /// The history entry of one event; `steps` are the definition's step names.
    pub fn from_event(event: &Event, steps: &[String]) -> HistoryEntry {
        let name = |i: usize| steps.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
        let (step, phase, attempt, detail) = match &event.kind {
            EventKind::SagaStarted {
                definition,
                version,
                ..
            } => (
                None,
                None,
                None,
                format!("saga started on {definition} v{version}"),
            ),
            EventKind::AttemptStarted {
                step,
                phase,
                attempt,
            } => (
                Some(name(*step)),
                Some(*phase),
                Some(*attempt),
                format!("{} request sent", phase.as_str()),
            ),
            EventKind::AttemptResent {
                step,
                phase,
                attempt,
            } => (
                Some(name(*step)),
                Some(*phase),
                Some(*attempt),
                format!("{} request sent again after a restart", phase.as_str()),
            ),
            EventKind::AttemptSucceeded {
                step,
                phase,
                attempt,
                ..
            } => (
                Some(name(*step)),
                Some(*phase),
                Some(*attempt),
                format!("{} succeeded", phase.as_str()),
            ),
            EventKind::AttemptFailed {
                step,
                phase,
                attempt,
                failure,
                retry_at_ms,
            } => {
                let what = sagaflow_core::state::describe(failure);
                let next = match retry_at_ms {
                    Some(at) => format!("; retry scheduled for {}", rfc3339(*at)),
                    None => "; no more attempts".to_owned(),
                };
                (
                    Some(name(*step)),
                    Some(*phase),
                    Some(*attempt),
                    format!("{} failed: {what}{next}", phase.as_str()),
                )
            }
            EventKind::StopRequested { reason } => (
                None,
                None,
                None,
                format!("stop requested: {reason:?}").to_lowercase(),
            ),
            EventKind::CompensationBegan { error } => {
                (None, None, None, format!("compensation began: {error}"))
            }
            EventKind::SagaFailed { step, error } => (
                Some(name(*step)),
                None,
                None,
                format!("saga failed: {error}"),
            ),
            EventKind::RetryRequested => (
                None,
                None,
                None,
                "retry requested: compensations resume".to_owned(),
            ),
            EventKind::SagaCompleted => (None, None, None, "saga completed".to_owned()),
            EventKind::SagaCompensated => (None, None, None, "saga compensated".to_owned()),
        };
        HistoryEntry {
            at: rfc3339(event.at_ms),
            event: event.kind.name().to_owned(),
            step,
            phase: phase.map(|p| p.as_str().to_owned()),
            attempt,
            detail,
            data: event_data(event),
        }
    }
}

/// The recorded event as one flat object: `{"type", "at_ms", …its fields}`.
fn event_data(event: &Event) -> Value {
    let mut data = serde_json::Map::new();
    data.insert("at_ms".into(), Value::from(event.at_ms));
    match serde_json::to_value(&event.kind).unwrap_or(Value::Null) {
        Value::String(name) => {
            data.insert("type".into(), Value::String(name));
        }
        Value::Object(tagged) => {
            for (name, fields) in tagged {
                data.insert("type".into(), Value::String(name));
                if let Value::Object(fields) = fields {
                    data.extend(fields);
                }
            }
        }
        _ => {}
    }
    Value::Object(data)
}
