//! Sagas on the wire: starting one, reading it, its history, listing.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use sagaflow_core::{Event, EventKind, Payload, SagaState};

use crate::time::{rfc3339, rfc3339_bytes};

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

impl SagaView {
    /// `SagaView::from_state(state)` as the JSON it serializes to, byte for byte, written
    /// straight from the state: no view is built (no string copied, no timestamp allocated).
    /// What a start that waits for its saga answers with.
    pub fn json_of(state: &SagaState) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        // The state's fields serialize as the view's do; writing to a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut out, &SagaViewOf(state));
        out
    }
}

/// Serializes as `SagaView::from_state` of the state: the same fields, in the same order, with
/// the same attributes (kept together by `the_view_written_from_the_state_is_the_built_views`).
struct SagaViewOf<'a>(&'a SagaState);

#[derive(Serialize)]
struct SagaViewFields<'a> {
    id: &'a str,
    definition: &'a str,
    version: u32,
    status: &'a str,
    input: AsValue<'a>,
    created_at: Timestamp,
    updated_at: Timestamp,
    deadline_at: Option<Timestamp>,
    error: &'a Option<String>,
    trace_id: &'a str,
    steps: StepsOf<'a>,
}

#[derive(Serialize)]
struct StepViewFields<'a> {
    name: &'a str,
    status: &'a str,
    attempts: u32,
    output: Option<AsValue<'a>>,
    error: &'a Option<String>,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<Timestamp>,
    compensation: CompensationViewFields<'a>,
}

#[derive(Serialize)]
struct CompensationViewFields<'a> {
    status: &'a str,
    attempts: u32,
    error: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<Timestamp>,
}

impl Serialize for SagaViewOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let state = self.0;
        SagaViewFields {
            id: &state.id,
            definition: &state.definition.name,
            version: state.definition.version,
            status: state.status.as_str(),
            input: AsValue(&state.input),
            created_at: Timestamp(state.created_at_ms),
            updated_at: Timestamp(state.updated_at_ms),
            deadline_at: state.deadline_at_ms.map(Timestamp),
            error: &state.error,
            trace_id: &state.trace_id,
            steps: StepsOf(state),
        }
        .serialize(serializer)
    }
}

struct StepsOf<'a>(&'a SagaState);

impl Serialize for StepsOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let state = self.0;
        serializer.collect_seq(
            state
                .definition
                .steps
                .iter()
                .zip(&state.steps)
                .map(|(def, s)| {
                    StepViewFields {
                        name: &def.name,
                        status: s.status.as_str(),
                        attempts: s.action.attempts,
                        // `None` serializes as `null`, as the view's `Value::Null`.
                        output: s.output.as_ref().map(AsValue),
                        error: &s.action.error,
                        started_at: s.started_at_ms.map(Timestamp),
                        finished_at: s.finished_at_ms.map(Timestamp),
                        next_attempt_at: s.action.retry_at_ms.map(Timestamp),
                        compensation: CompensationViewFields {
                            status: match (&def.compensation, s.compensation.status) {
                                (None, _) => "none",
                                (Some(_), status) => status.as_str(),
                            },
                            attempts: s.compensation.attempts,
                            error: &s.compensation.error,
                            next_attempt_at: s.compensation.retry_at_ms.map(Timestamp),
                        },
                    }
                }),
        )
    }
}

/// A payload as the view's `serde_json::Value` of it serializes: a participant's output is kept
/// as it sent it, and the view prints it again (keys sorted, no spaces).
struct AsValue<'a>(&'a Payload);

impl Serialize for AsValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.to_value().serialize(serializer)
    }
}

/// A time as the view writes it (`rfc3339`), without allocating.
struct Timestamp(u64);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match rfc3339_bytes(self.0) {
            // ASCII digits and punctuation only.
            Some(bytes) => serializer.serialize_str(std::str::from_utf8(&bytes).unwrap_or("")),
            None => serializer.serialize_str(&rfc3339(self.0)),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use sagaflow_core::{
        Call, Command, Context, Definition, Failure, Method, Phase, RetryPolicy, StepDef,
        decide_and_apply,
    };

    use super::*;

    fn definition() -> Arc<Definition> {
        let call = |path: &str| Call {
            url: format!("http://127.0.0.1:8101/{path}"),
            method: Method::Post,
            timeout_ms: 5_000,
        };
        let step = |name: &str, compensated: bool| StepDef {
            name: name.into(),
            action: call(name),
            compensation: compensated.then(|| call(&format!("{name}/undo"))),
            retry: RetryPolicy::action_default(),
            compensation_retry: RetryPolicy::compensation_default(),
        };
        Arc::new(Definition {
            name: "order".into(),
            version: 2,
            timeout_ms: Some(60_000),
            steps: vec![
                step("reserve", true),
                step("note", false),
                step("charge", true),
            ],
        })
    }

    fn check(state: &SagaState) {
        let built = serde_json::to_vec(&SagaView::from_state(state)).unwrap();
        assert_eq!(
            String::from_utf8(SagaView::json_of(state)).unwrap(),
            String::from_utf8(built).unwrap()
        );
    }

    #[test]
    fn the_view_written_from_the_state_is_the_built_views() {
        let input = Payload::from_json(r#"{ "sku": "A-1", "order": 42 }"#).unwrap();
        let (mut state, started) = SagaState::start(
            "0193a3f0-0000-7000-8000-000000000000".into(),
            definition(),
            input,
            "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            1_000,
        );
        state.apply(&started);
        check(&state);
        let mut command = Command::Wake;
        let mut now = 1_000;
        for _ in 0..40 {
            now += 250;
            let ctx = Context {
                now_ms: now,
                random: now,
            };
            let decision = decide_and_apply(&mut state, command, ctx).unwrap();
            check(&state);
            if state.status.is_terminal() {
                break;
            }
            command = match decision.sends.first() {
                // Wait for a retry's time.
                None => Command::Wake,
                Some(send) => {
                    let outcome = match (send.step, send.phase, send.attempt) {
                        // A participant that prints its answer spread out, keys unsorted.
                        (0, Phase::Action, _) => Ok(Payload::from_json(
                            "{ \"held\": true,\n  \"at\": [1, 2.5e3] }",
                        )
                        .unwrap()),
                        // One transient failure (a retry scheduled), then an answer.
                        (1, Phase::Action, 1) => {
                            Err(Failure::from_status(503, "busy".into(), Some(1_000)))
                        }
                        (1, Phase::Action, _) => Ok(Payload::from_json("\"noted\"").unwrap()),
                        // A business refusal: what completed is compensated.
                        (_, Phase::Action, _) => {
                            Err(Failure::from_status(422, "card declined".into(), None))
                        }
                        // Undone at the second try.
                        (_, Phase::Compensation, 1) => {
                            Err(Failure::from_status(500, "try again".into(), None))
                        }
                        (_, Phase::Compensation, _) => Ok(Payload::null()),
                    };
                    Command::Answer {
                        step: send.step,
                        phase: send.phase,
                        attempt: send.attempt,
                        outcome,
                    }
                }
            };
        }
        assert_eq!(state.status.as_str(), "compensated");
        // Beyond four-digit years, timestamps still agree.
        state.updated_at_ms = 253_402_300_800_000;
        check(&state);
    }
}
