//! `decide`: from a saga's state and one input, the events to journal and the calls to send.
//! Pure: the clock and the randomness for jitter come in through `Context`.

use crate::definition::STEP_TIMEOUT_MS_MAX;
use crate::event::{Event, EventKind, Failure, Phase, StopReason};
use crate::payload::Payload;
use crate::state::{CallStatus, SagaState, SagaStatus};

/// What the outside world tells a saga.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Look at the clock and do whatever is due (first step, a retry, the saga's timeout).
    Wake,
    /// The engine restarted: send every in-flight attempt again, then do whatever is due.
    Recover,
    /// A participant answered an attempt (or the transport failed it).
    Answer {
        step: usize,
        phase: Phase,
        attempt: u32,
        outcome: Result<Payload, Failure>,
    },
    /// `POST /v1/sagas/{id}/cancel`.
    Cancel,
    /// `POST /v1/sagas/{id}/retry`.
    Retry,
}

/// The inputs `decide` must not fetch itself.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub now_ms: u64,
    /// A uniform random number for jitter; one decision derives what it needs from it.
    pub random: u64,
}

/// A call the runtime must make, after the decision's events are durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    pub step: usize,
    pub phase: Phase,
    pub attempt: u32,
    pub timeout_ms: u64,
}

/// The result of one decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// To journal, in order, before any `sends` leaves.
    pub events: Vec<Event>,
    pub sends: Vec<Send>,
}

/// A command the saga's status does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the saga is {0} and cannot be cancelled")]
    CancelTerminal(&'static str),
    #[error("the saga is {0}; only a failed saga can be retried")]
    RetryNotFailed(&'static str),
}

/// Decides what happens next. The state is not changed: the caller journals `events` and then
/// applies them (`SagaState::apply`), which yields exactly the state `decide` reasoned on.
pub fn decide(state: &SagaState, command: Command, ctx: Context) -> Result<Decision, Rejection> {
    decide_and_apply(&mut state.clone(), command, ctx)
}

/// `decide`, with the decision's events applied to `state` (`SagaState::apply`, one by one as
/// they are decided), for a caller that would apply them next anyway: no copy of the state is
/// made. A rejected command leaves `state` as it was.
pub fn decide_and_apply(
    state: &mut SagaState,
    command: Command,
    ctx: Context,
) -> Result<Decision, Rejection> {
    // Rejections are told before the decider changes anything.
    match &command {
        Command::Cancel if state.status.is_terminal() => {
            return Err(Rejection::CancelTerminal(state.status.as_str()));
        }
        Command::Retry if state.status != SagaStatus::Failed => {
            return Err(Rejection::RetryNotFailed(state.status.as_str()));
        }
        _ => {}
    }
    let mut d = Decider {
        state,
        out: Decision::default(),
        ctx,
        draws: 0,
    };
    match command {
        Command::Wake => {}
        Command::Recover => d.recover(),
        Command::Answer {
            step,
            phase,
            attempt,
            outcome,
        } => d.answer(step, phase, attempt, outcome),
        Command::Cancel => {
            if d.state.stop.is_none() && d.state.status == SagaStatus::Running {
                d.emit(EventKind::StopRequested {
                    reason: StopReason::Cancelled,
                });
            }
        }
        Command::Retry => d.emit(EventKind::RetryRequested),
    }
    d.advance();
    Ok(d.out)
}

struct Decider<'a> {
    state: &'a mut SagaState,
    out: Decision,
    ctx: Context,
    draws: u64,
}

impl Decider<'_> {
    fn emit(&mut self, kind: EventKind) {
        let event = Event {
            at_ms: self.ctx.now_ms,
            kind,
        };
        self.state.apply(&event);
        self.out.events.push(event);
    }

    /// A fresh uniform number per draw (SplitMix64 over the context's seed).
    fn random(&mut self) -> u64 {
        self.draws += 1;
        let mut z = self
            .ctx
            .random
            .wrapping_add(self.draws.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn send(&mut self, step: usize, phase: Phase, attempt: u32) {
        let def = &self.state.definition.steps[step];
        let timeout_ms = match phase {
            Phase::Action => def.action.timeout_ms,
            Phase::Compensation => def
                .compensation
                .as_ref()
                .map_or(def.action.timeout_ms, |c| c.timeout_ms),
        };
        self.out.sends.push(Send {
            step,
            phase,
            attempt,
            timeout_ms,
        });
    }

    fn start_attempt(&mut self, step: usize, phase: Phase) {
        let attempt = self.state.steps[step].call(phase).attempts + 1;
        self.emit(EventKind::AttemptStarted {
            step,
            phase,
            attempt,
        });
        self.send(step, phase, attempt);
    }

    fn recover(&mut self) {
        for step in 0..self.state.steps.len() {
            for phase in [Phase::Action, Phase::Compensation] {
                if let Some(attempt) = self.state.steps[step].call(phase).in_flight {
                    self.emit(EventKind::AttemptResent {
                        step,
                        phase,
                        attempt,
                    });
                    self.send(step, phase, attempt);
                }
            }
        }
    }

    fn answer(
        &mut self,
        step: usize,
        phase: Phase,
        attempt: u32,
        outcome: Result<Payload, Failure>,
    ) {
        let Some(s) = self.state.steps.get(step) else {
            return;
        };
        // A late or duplicate answer (after a restart, the same attempt may answer twice).
        if s.call(phase).in_flight != Some(attempt) {
            return;
        }
        match outcome {
            Ok(output) => self.emit(EventKind::AttemptSucceeded {
                step,
                phase,
                attempt,
                output,
            }),
            Err(failure) => {
                let retry_at_ms = self.retry_at(step, phase, &failure);
                self.emit(EventKind::AttemptFailed {
                    step,
                    phase,
                    attempt,
                    failure,
                    retry_at_ms,
                });
            }
        }
    }

    /// When the next attempt is due, or `None` when the call has failed for good.
    fn retry_at(&mut self, step: usize, phase: Phase, failure: &Failure) -> Option<u64> {
        if !failure.is_retryable() {
            return None;
        }
        // A cancelled or timed-out saga takes no new action attempt.
        if phase == Phase::Action && self.state.stop.is_some() {
            return None;
        }
        let def = &self.state.definition.steps[step];
        let policy = match phase {
            Phase::Action => def.retry.clone(),
            Phase::Compensation => def.compensation_retry.clone(),
        };
        let used = self.state.steps[step].call(phase).attempts_used();
        if used >= policy.max_attempts {
            return None;
        }
        let random = self.random();
        let delay_ms = match failure.retry_after_ms {
            // The participant knows best, even above max_backoff_ms; never above an hour.
            Some(retry_after_ms) => retry_after_ms.min(STEP_TIMEOUT_MS_MAX),
            None => policy.backoff_ms(used, random),
        };
        let mut at = self.ctx.now_ms.saturating_add(delay_ms);
        if phase == Phase::Action
            && let Some(deadline) = self.state.deadline_at_ms
        {
            at = at.min(deadline);
        }
        Some(at)
    }

    /// Takes every step that is due now. Bounded: each pass emits an event that moves the saga
    /// forward, and there are at most a few per step.
    fn advance(&mut self) {
        let passes_max = 4 * self.state.steps.len() + 8;
        for _ in 0..passes_max {
            let progressed = match self.state.status {
                SagaStatus::Running => self.advance_running(),
                SagaStatus::Compensating => self.advance_compensating(),
                SagaStatus::Completed | SagaStatus::Compensated | SagaStatus::Failed => false,
            };
            if !progressed {
                return;
            }
        }
        debug_assert!(false, "advance did not settle in {passes_max} passes");
    }

    /// Returns whether it emitted an event that may allow more progress now.
    fn advance_running(&mut self) -> bool {
        let now = self.ctx.now_ms;
        if let Some(deadline) = self.state.deadline_at_ms
            && now >= deadline
        {
            self.emit(EventKind::StopRequested {
                reason: StopReason::TimedOut,
            });
            return true;
        }
        let Some(index) = self
            .state
            .steps
            .iter()
            .position(|s| s.action.status != CallStatus::Succeeded)
        else {
            self.emit(EventKind::SagaCompleted);
            return false;
        };
        let step = &self.state.steps[index];
        match step.action.status {
            CallStatus::Pending => {
                self.start_attempt(index, Phase::Action);
                false
            }
            CallStatus::Running => {
                if step.action.in_flight.is_none()
                    && step.action.retry_at_ms.is_some_and(|at| at <= now)
                {
                    self.start_attempt(index, Phase::Action);
                }
                false
            }
            CallStatus::Failed => {
                let error = format!(
                    "step {} failed: {}",
                    self.state.definition.steps[index].name,
                    step.action.error.as_deref().unwrap_or("unknown error")
                );
                self.emit(EventKind::CompensationBegan { error });
                true
            }
            CallStatus::Succeeded | CallStatus::Skipped => false,
        }
    }

    fn advance_compensating(&mut self) -> bool {
        // A cancel awaits the action in flight: its answer decides whether to compensate it.
        if self.state.action_in_flight().is_some() {
            return false;
        }
        let now = self.ctx.now_ms;
        let next = (0..self.state.steps.len()).rev().find(|&i| {
            let s = &self.state.steps[i];
            s.needs_compensation()
                && self.state.definition.steps[i].compensation.is_some()
                && s.compensation.status != CallStatus::Succeeded
        });
        let Some(index) = next else {
            self.emit(EventKind::SagaCompensated);
            return false;
        };
        let call = &self.state.steps[index].compensation;
        match call.status {
            CallStatus::Pending => self.start_attempt(index, Phase::Compensation),
            CallStatus::Running => {
                if call.in_flight.is_none() && call.retry_at_ms.is_some_and(|at| at <= now) {
                    self.start_attempt(index, Phase::Compensation);
                }
            }
            CallStatus::Failed => {
                let error = format!(
                    "compensation of step {} gave up after {} attempts: {}",
                    self.state.definition.steps[index].name,
                    call.attempts_used(),
                    call.error.as_deref().unwrap_or("unknown error")
                );
                self.emit(EventKind::SagaFailed { step: index, error });
            }
            CallStatus::Succeeded | CallStatus::Skipped => {}
        }
        false
    }
}
