//! A saga's state: the fold of its events. `apply` is the only way it changes.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::definition::Definition;
use crate::event::{Event, EventKind, Phase, StopReason};
use crate::payload::Payload;

/// A saga's status, as the API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SagaStatus {
    Running,
    Compensating,
    Completed,
    Compensated,
    Failed,
}

impl SagaStatus {
    pub const ALL: [SagaStatus; 5] = [
        SagaStatus::Running,
        SagaStatus::Compensating,
        SagaStatus::Completed,
        SagaStatus::Compensated,
        SagaStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Completed => "completed",
            SagaStatus::Compensated => "compensated",
            SagaStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<SagaStatus> {
        SagaStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Completed, compensated or failed: nothing happens any more (but for a retry of `failed`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SagaStatus::Completed | SagaStatus::Compensated | SagaStatus::Failed
        )
    }
}

/// A step's status, as the API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Compensating,
    Compensated,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Compensating => "compensating",
            StepStatus::Compensated => "compensated",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// The status of one call (a step's action or its compensation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    /// Not sent yet.
    Pending,
    /// An attempt is in flight or a retry is scheduled.
    Running,
    Succeeded,
    /// Gave up (attempts exhausted, a definite no, or abandoned by a cancel).
    Failed,
    /// Will never be sent.
    Skipped,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Pending => "pending",
            CallStatus::Running => "running",
            CallStatus::Succeeded => "succeeded",
            CallStatus::Failed => "failed",
            CallStatus::Skipped => "skipped",
        }
    }
}

/// Attempts of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallState {
    pub status: CallStatus,
    /// The highest attempt number sent (attempt numbers never repeat, even after a retry).
    pub attempts: u32,
    /// Attempts sent before the last `retry`: `attempts - attempts_base` count toward the policy.
    pub attempts_base: u32,
    pub in_flight: Option<u32>,
    pub retry_at_ms: Option<u64>,
    pub error: Option<String>,
}

impl CallState {
    fn new() -> CallState {
        CallState {
            status: CallStatus::Pending,
            attempts: 0,
            attempts_base: 0,
            in_flight: None,
            retry_at_ms: None,
            error: None,
        }
    }

    /// Attempts that count toward the retry policy.
    pub fn attempts_used(&self) -> u32 {
        self.attempts - self.attempts_base
    }
}

/// One step of a live saga.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepState {
    pub status: StepStatus,
    pub action: CallState,
    pub compensation: CallState,
    pub output: Option<Payload>,
    /// Some failed attempt of the action may have taken effect (timeout, lost connection, 5xx).
    pub maybe_applied: bool,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
}

impl StepState {
    fn new() -> StepState {
        StepState {
            status: StepStatus::Pending,
            action: CallState::new(),
            compensation: CallState::new(),
            output: None,
            maybe_applied: false,
            started_at_ms: None,
            finished_at_ms: None,
        }
    }

    pub fn call(&self, phase: Phase) -> &CallState {
        match phase {
            Phase::Action => &self.action,
            Phase::Compensation => &self.compensation,
        }
    }

    fn call_mut(&mut self, phase: Phase) -> &mut CallState {
        match phase {
            Phase::Action => &mut self.action,
            Phase::Compensation => &mut self.compensation,
        }
    }

    /// Whether the action took effect, or may have: then it is compensated when unwinding.
    pub fn needs_compensation(&self) -> bool {
        self.action.status == CallStatus::Succeeded
            || (self.action.status == CallStatus::Failed && self.maybe_applied)
    }
}

/// A saga as the engine keeps it in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct SagaState {
    pub id: String,
    pub definition: Arc<Definition>,
    pub input: Payload,
    pub trace_id: String,
    pub status: SagaStatus,
    pub stop: Option<StopReason>,
    pub error: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub deadline_at_ms: Option<u64>,
    pub steps: Vec<StepState>,
}

/// Why a journal cannot be folded into a state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("the journal is empty")]
    Empty,
    #[error("the journal does not start with saga_started")]
    NoStart,
    #[error(
        "the journal names definition {name} v{version} but {given_name} v{given_version} was given"
    )]
    WrongDefinition {
        name: String,
        version: u32,
        given_name: String,
        given_version: u32,
    },
    #[error("event {index} ({event}) names step {step}, but the definition has {steps} steps")]
    NoSuchStep {
        index: usize,
        event: &'static str,
        step: usize,
        steps: usize,
    },
}

impl SagaState {
    /// A new saga, and the event that records its start.
    pub fn start(
        id: String,
        definition: Arc<Definition>,
        input: Payload,
        trace_id: String,
        now_ms: u64,
    ) -> (SagaState, Event) {
        let deadline_at_ms = definition.timeout_ms.map(|t| now_ms.saturating_add(t));
        let event = Event {
            at_ms: now_ms,
            kind: EventKind::SagaStarted {
                definition: definition.name.clone(),
                version: definition.version,
                input: input.clone(),
                deadline_at_ms,
                trace_id: trace_id.clone(),
            },
        };
        let steps = vec![StepState::new(); definition.steps.len()];
        let state = SagaState {
            id,
            definition,
            input,
            trace_id,
            status: SagaStatus::Running,
            stop: None,
            error: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            deadline_at_ms,
            steps,
        };
        (state, event)
    }

    /// Rebuilds a saga from its journal. The definition must be the one the journal names.
    pub fn replay(
        id: String,
        definition: Arc<Definition>,
        events: &[Event],
    ) -> Result<SagaState, ReplayError> {
        let (first, rest) = events.split_first().ok_or(ReplayError::Empty)?;
        let EventKind::SagaStarted {
            definition: name,
            version,
            input,
            deadline_at_ms,
            trace_id,
        } = &first.kind
        else {
            return Err(ReplayError::NoStart);
        };
        if *name != definition.name || *version != definition.version {
            return Err(ReplayError::WrongDefinition {
                name: name.clone(),
                version: *version,
                given_name: definition.name.clone(),
                given_version: definition.version,
            });
        }
        let (mut state, _) =
            SagaState::start(id, definition, input.clone(), trace_id.clone(), first.at_ms);
        state.deadline_at_ms = *deadline_at_ms;
        let steps = state.steps.len();
        for (index, event) in rest.iter().enumerate() {
            if let Some(step) = event_step(&event.kind)
                && step >= steps
            {
                return Err(ReplayError::NoSuchStep {
                    index: index + 1,
                    event: event.kind.name(),
                    step,
                    steps,
                });
            }
            state.apply(event);
        }
        Ok(state)
    }

    /// The action currently in flight, if any (at most one: steps run one at a time).
    pub fn action_in_flight(&self) -> Option<usize> {
        self.steps.iter().position(|s| s.action.in_flight.is_some())
    }

    /// When the engine must wake this saga up if nothing else happens.
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut consider = |at: Option<u64>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        match self.status {
            SagaStatus::Running => {
                if self.stop.is_none() {
                    consider(self.deadline_at_ms);
                }
                for step in &self.steps {
                    consider(step.action.retry_at_ms);
                }
            }
            SagaStatus::Compensating => {
                for step in &self.steps {
                    consider(step.compensation.retry_at_ms);
                }
            }
            _ => {}
        }
        next
    }

    /// Applies one event. Total: events that do not fit (a stale answer) change nothing but
    /// `updated_at_ms`; `decide` never emits such events.
    pub fn apply(&mut self, event: &Event) {
        let at = event.at_ms;
        self.updated_at_ms = self.updated_at_ms.max(at);
        match &event.kind {
            EventKind::SagaStarted { .. } | EventKind::AttemptResent { .. } => {}
            EventKind::AttemptStarted {
                step,
                phase,
                attempt,
            } => {
                let Some(s) = self.steps.get_mut(*step) else {
                    return;
                };
                let call = s.call_mut(*phase);
                call.attempts = call.attempts.max(*attempt);
                call.in_flight = Some(*attempt);
                call.retry_at_ms = None;
                call.status = CallStatus::Running;
                match phase {
                    Phase::Action => {
                        s.status = StepStatus::Running;
                        s.started_at_ms.get_or_insert(at);
                    }
                    Phase::Compensation => s.status = StepStatus::Compensating,
                }
            }
            EventKind::AttemptSucceeded {
                step,
                phase,
                attempt,
                output,
            } => {
                let Some(s) = self.steps.get_mut(*step) else {
                    return;
                };
                let call = s.call_mut(*phase);
                if call.in_flight != Some(*attempt) {
                    return;
                }
                call.in_flight = None;
                call.status = CallStatus::Succeeded;
                call.error = None;
                match phase {
                    Phase::Action => {
                        s.status = StepStatus::Succeeded;
                        s.output = Some(output.clone());
                        s.finished_at_ms = Some(at);
                    }
                    Phase::Compensation => s.status = StepStatus::Compensated,
                }
            }
            EventKind::AttemptFailed {
                step,
                phase,
                attempt,
                failure,
                retry_at_ms,
            } => {
                let Some(s) = self.steps.get_mut(*step) else {
                    return;
                };
                if s.call(*phase).in_flight != Some(*attempt) {
                    return;
                }
                if *phase == Phase::Action && failure.maybe_applied() {
                    s.maybe_applied = true;
                }
                let call = s.call_mut(*phase);
                call.in_flight = None;
                call.error = Some(describe(failure));
                call.retry_at_ms = *retry_at_ms;
                if retry_at_ms.is_none() {
                    call.status = CallStatus::Failed;
                    if *phase == Phase::Action {
                        s.status = StepStatus::Failed;
                        s.finished_at_ms = Some(at);
                    }
                }
            }
            EventKind::StopRequested { reason } => {
                self.stop = Some(*reason);
                self.status = SagaStatus::Compensating;
                self.error = Some(match reason {
                    StopReason::Cancelled => "cancelled".to_owned(),
                    StopReason::TimedOut => format!(
                        "saga timed out after {} ms",
                        self.definition.timeout_ms.unwrap_or_default()
                    ),
                });
                let error = self.error.clone();
                for s in &mut self.steps {
                    // A scheduled action retry is abandoned; an in-flight one is awaited.
                    if s.action.status == CallStatus::Running && s.action.in_flight.is_none() {
                        s.action.retry_at_ms = None;
                        s.action.status = CallStatus::Failed;
                        s.action.error = error.clone();
                        s.status = StepStatus::Failed;
                        s.finished_at_ms = Some(at);
                    }
                }
                self.skip_pending_steps();
            }
            EventKind::CompensationBegan { error } => {
                self.status = SagaStatus::Compensating;
                self.error = Some(error.clone());
                self.skip_pending_steps();
            }
            EventKind::SagaFailed { error, .. } => {
                self.status = SagaStatus::Failed;
                self.error = Some(error.clone());
            }
            EventKind::RetryRequested => {
                self.status = SagaStatus::Compensating;
                for s in &mut self.steps {
                    if s.compensation.status == CallStatus::Failed {
                        s.compensation.status = CallStatus::Pending;
                        s.compensation.attempts_base = s.compensation.attempts;
                    }
                }
            }
            EventKind::SagaCompleted => {
                self.status = SagaStatus::Completed;
                for s in &mut self.steps {
                    s.compensation.status = CallStatus::Skipped;
                }
            }
            EventKind::SagaCompensated => {
                self.status = SagaStatus::Compensated;
                self.skip_pending_steps();
                for s in &mut self.steps {
                    if s.compensation.status == CallStatus::Pending {
                        s.compensation.status = CallStatus::Skipped;
                    }
                }
            }
        }
    }

    fn skip_pending_steps(&mut self) {
        for s in &mut self.steps {
            if s.status == StepStatus::Pending {
                s.status = StepStatus::Skipped;
                s.action.status = CallStatus::Skipped;
                s.compensation.status = CallStatus::Skipped;
            }
        }
    }
}

/// The step an event is about, if any.
pub fn event_step(kind: &EventKind) -> Option<usize> {
    match kind {
        EventKind::AttemptStarted { step, .. }
        | EventKind::AttemptResent { step, .. }
        | EventKind::AttemptSucceeded { step, .. }
        | EventKind::AttemptFailed { step, .. }
        | EventKind::SagaFailed { step, .. } => Some(*step),
        _ => None,
    }
}

/// A one-line description of a failure for people.
pub fn describe(failure: &crate::event::Failure) -> String {
    match failure.status {
        Some(status) if failure.message.is_empty() => format!("HTTP {status}"),
        Some(status) => format!("HTTP {status}: {}", failure.message),
        None => failure.message.clone(),
    }
}
