//! Property tests of the saga state machine, driven by a small deterministic simulator.
//!
//! The simulator plays the engine and the participants: it keeps the journal, applies what
//! `decide` returns, keeps the calls in flight, and lets a script drawn by proptest pick which
//! call answers and how, when the clock moves, when a cancel or a retry comes in and when the
//! engine crashes (state and calls in flight lost, state replayed from the journal, then
//! `Command::Recover`). When the script runs out, every call answers 2xx and the saga is woken
//! whenever it asks to be, so it must end.
//!
//! Every decision is checked as it happens (`Sim::run`); each proptest then checks the property
//! its name states over the whole journal, independently of the online checks.
//!
//! The simulation uses nothing but the script's values (no `thread_rng`, no clock), so a failing
//! case reproduces from its proptest seed.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use sagaflow_core::{
    Call, CallStatus, Command, Context, Definition, DefinitionLimits, Event, EventKind, Failure,
    FailureKind, Jitter, Method, Payload, Phase, Rejection, RetryPolicy, SagaState, SagaStatus,
    Send, StepDef, StepStatus, StopReason, decide, decide_and_apply,
};

const SAGA_ID: &str = "saga-1";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const START_MS: u64 = 1_700_000_000_000;
/// The bound on the decisions of the final, all-succeeding phase of a simulation.
const ITERATIONS_MAX: usize = 2_000;
/// `decide` honours a `Retry-After` up to an hour.
const RETRY_AFTER_MAX_MS: u64 = 3_600_000;

/// A call: (step, phase, attempt).
type Key = (usize, Phase, u32);

fn key(send: &Send) -> Key {
    (send.step, send.phase, send.attempt)
}

// ---------------------------------------------------------------------------------------------
// Participants' answers
// ---------------------------------------------------------------------------------------------

/// How a participant (or the transport) answers one call.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// 2xx with the JSON `{"n": n}`.
    Success(u32),
    /// A non-2xx HTTP answer, with an optional `Retry-After` in ms.
    Status(u16, Option<u64>),
    /// No answer within the call's timeout.
    Timeout,
    /// The connection was refused.
    Refused,
    /// The connection broke after the request was sent.
    ConnectionLost,
    /// A 2xx answer that cannot be accepted.
    InvalidAnswer,
}

impl Outcome {
    fn result(&self) -> Result<Payload, Failure> {
        match self {
            Outcome::Success(n) => {
                Ok(Payload::from_json(&format!(r#"{{"n":{n}}}"#)).expect("valid JSON"))
            }
            Outcome::Status(status, retry_after_ms) => Err(Failure::from_status(
                *status,
                format!("answered {status}"),
                *retry_after_ms,
            )),
            Outcome::Timeout => Err(Failure::transport(
                FailureKind::Timeout,
                "timed out".to_owned(),
            )),
            Outcome::Refused => Err(Failure::transport(
                FailureKind::Refused,
                "connection refused".to_owned(),
            )),
            Outcome::ConnectionLost => Err(Failure::transport(
                FailureKind::ConnectionLost,
                "connection reset".to_owned(),
            )),
            Outcome::InvalidAnswer => Err(Failure {
                kind: FailureKind::InvalidAnswer,
                status: Some(200),
                message: "output above the payload limit".to_owned(),
                retry_after_ms: None,
            }),
        }
    }
}

/// The contract's table, written out again rather than taken from `Failure`: whether the
/// participant may have applied the request (so the step must be compensated).
fn may_have_taken_effect(failure: &Failure) -> bool {
    match (failure.kind, failure.status) {
        // A 2xx that could not be accepted was applied.
        (FailureKind::InvalidAnswer, _) => true,
        (_, Some(status)) => (500..=599).contains(&status),
        (FailureKind::Timeout | FailureKind::ConnectionLost, None) => true,
        (_, None) => false,
    }
}

/// The contract's table again: whether another attempt may be made.
fn may_be_retried(failure: &Failure) -> bool {
    match (failure.kind, failure.status) {
        (FailureKind::InvalidAnswer, _) => false,
        (_, Some(status)) => matches!(status, 408 | 425 | 429 | 500..=599),
        (_, None) => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Definitions
// ---------------------------------------------------------------------------------------------

fn policy(
    max_attempts: u32,
    initial_backoff_ms: u64,
    max_backoff_ms: u64,
    multiplier: f64,
    jitter: Jitter,
) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff_ms,
        max_backoff_ms,
        multiplier,
        jitter,
    }
}

fn step_def(
    index: usize,
    compensation: bool,
    retry: RetryPolicy,
    compensation_retry: RetryPolicy,
    timeout_ms: u64,
) -> StepDef {
    let call = |what: &str| Call {
        url: format!("http://127.0.0.1:{}/{what}", 8100 + index),
        method: Method::Post,
        timeout_ms,
    };
    StepDef {
        name: format!("step-{index}"),
        action: call("action"),
        compensation: compensation.then(|| call("compensation")),
        retry,
        compensation_retry,
    }
}

fn definition(steps: Vec<StepDef>, timeout_ms: Option<u64>) -> Arc<Definition> {
    let def = Definition {
        name: "simulated".to_owned(),
        version: 1,
        timeout_ms,
        steps,
    };
    def.validate(&DefinitionLimits::default())
        .expect("the definition is valid");
    Arc::new(def)
}

fn policy_of(def: &Definition, step: usize, phase: Phase) -> &RetryPolicy {
    match phase {
        Phase::Action => &def.steps[step].retry,
        Phase::Compensation => &def.steps[step].compensation_retry,
    }
}

fn call_timeout_ms(def: &Definition, step: usize, phase: Phase) -> u64 {
    let s = &def.steps[step];
    match phase {
        Phase::Action => s.action.timeout_ms,
        Phase::Compensation => s
            .compensation
            .as_ref()
            .map_or(s.action.timeout_ms, |c| c.timeout_ms),
    }
}

fn input() -> Payload {
    Payload::from_json(r#"{"order":42}"#).expect("valid JSON")
}

// ---------------------------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------------------------

/// What the simulator has seen, independently of the saga's state: the oracle.
#[derive(Debug, Default)]
struct Model {
    /// A step's action answered 2xx.
    action_ok: Vec<bool>,
    /// A failed attempt of the step's action may have taken effect.
    action_maybe: Vec<bool>,
    /// A step's compensation answered 2xx.
    compensation_ok: Vec<bool>,
    /// A compensation attempt of the step was sent.
    compensation_started: Vec<bool>,
    /// The highest attempt number started, per call.
    last_attempt: HashMap<(usize, Phase), u32>,
    /// Attempts started since the last retry of the saga, per call.
    used: HashMap<(usize, Phase), u32>,
    /// A stop (cancel, timeout) was accepted or compensation began: no new action from here.
    stopped: bool,
    /// Some compensation was sent.
    compensation_sent: bool,
    /// The saga was `failed` at some point.
    failed_seen: bool,
    /// Statuses the saga went through, in order, without repeats.
    statuses: Vec<SagaStatus>,
}

/// The engine and its participants, for one saga.
struct Sim {
    def: Arc<Definition>,
    now: u64,
    state: SagaState,
    journal: Vec<Event>,
    /// Calls in flight, with when they were sent.
    in_flight: Vec<(Send, u64)>,
    /// Calls whose answer was accepted.
    answered: Vec<Key>,
    /// Calls lost in the last crash (to be resent by the recovery).
    lost: Vec<Key>,
    /// Calls resent by the last recovery.
    resent: Vec<Key>,
    /// Every attempt started, in order (resends excluded).
    started: Vec<Key>,
    /// Decisions checked, and replays compared.
    decisions: usize,
    replays: usize,
    crashes: usize,
    model: Model,
}

impl Sim {
    /// Starts a saga and wakes it up, as the engine does after journaling `saga_started`.
    fn new(def: Arc<Definition>, random: u64) -> Sim {
        let steps = def.steps.len();
        let (state, event) = SagaState::start(
            SAGA_ID.to_owned(),
            def.clone(),
            input(),
            TRACE_ID.to_owned(),
            START_MS,
        );
        let mut sim = Sim {
            def,
            now: START_MS,
            state,
            journal: vec![event],
            in_flight: Vec::new(),
            answered: Vec::new(),
            lost: Vec::new(),
            resent: Vec::new(),
            started: Vec::new(),
            decisions: 0,
            replays: 0,
            crashes: 0,
            model: Model {
                action_ok: vec![false; steps],
                action_maybe: vec![false; steps],
                compensation_ok: vec![false; steps],
                compensation_started: vec![false; steps],
                statuses: vec![SagaStatus::Running],
                ..Model::default()
            },
        };
        sim.check_replay();
        sim.run(Command::Wake, None, random)
            .expect("the first wake is never rejected");
        sim
    }

    fn status(&self) -> SagaStatus {
        self.state.status
    }

    /// Whether the oracle says the step must be compensated when unwinding.
    fn needs_compensation(&self, step: usize) -> bool {
        self.def.steps[step].compensation.is_some()
            && (self.model.action_ok[step] || self.model.action_maybe[step])
    }

    /// The call in flight answers, `delay_ms` later (a timeout: once the call's timeout passed).
    /// Returns false when nothing was in flight.
    fn answer(
        &mut self,
        outcome_for: impl FnOnce(&Send) -> Outcome,
        delay_ms: u64,
        random: u64,
    ) -> bool {
        self.answer_then_crash(outcome_for, delay_ms, random, None)
    }

    /// As `answer`; with `crash_after: Some(n)`, the engine dies once the first `n` events of
    /// the decision are journaled, before any of its calls leaves, and then recovers.
    fn answer_then_crash(
        &mut self,
        outcome_for: impl FnOnce(&Send) -> Outcome,
        delay_ms: u64,
        random: u64,
        crash_after: Option<usize>,
    ) -> bool {
        let Some((send, sent_at)) = self.in_flight.pop() else {
            return false;
        };
        let outcome = outcome_for(&send);
        self.now = match outcome {
            Outcome::Timeout => self.now.max(sent_at + send.timeout_ms),
            _ => self.now + delay_ms,
        };
        let command = Command::Answer {
            step: send.step,
            phase: send.phase,
            attempt: send.attempt,
            outcome: outcome.result(),
        };
        let journaled = self
            .run_cut(command, Some(key(&send)), random, crash_after)
            .expect("an answer is never rejected");
        if journaled > 0 {
            self.answered.push(key(&send));
        } else {
            // The answer was lost with the engine: the call is still in flight.
            self.in_flight.push((send, sent_at));
        }
        if crash_after.is_some() {
            self.crash(random);
        }
        true
    }

    /// An answer already received arrives again, with whatever outcome: it must change nothing.
    fn duplicate(&mut self, pick: usize, outcome: &Outcome, random: u64) {
        if self.answered.is_empty() {
            return;
        }
        let (step, phase, attempt) = self.answered[pick % self.answered.len()];
        assert!(
            !self
                .in_flight
                .iter()
                .any(|(s, _)| key(s) == (step, phase, attempt)),
            "attempt {attempt} of {phase:?} of step {step} was answered and is in flight again"
        );
        let command = Command::Answer {
            step,
            phase,
            attempt,
            outcome: outcome.result(),
        };
        self.run(command, None, random)
            .expect("an answer is never rejected");
    }

    /// The clock moves to when the saga asked to be woken (or 1 ms on), and it is woken.
    fn wake_due(&mut self, random: u64) {
        self.now = match self.state.next_wakeup_ms() {
            Some(at) => self.now.max(at),
            None => self.now + 1,
        };
        self.run(Command::Wake, None, random)
            .expect("a wake is never rejected");
    }

    /// The saga is woken `delay_ms` from now, whether anything is due or not.
    fn wake_after(&mut self, delay_ms: u64, random: u64) {
        self.now += delay_ms;
        self.run(Command::Wake, None, random)
            .expect("a wake is never rejected");
    }

    fn cancel(&mut self, delay_ms: u64, random: u64) -> Result<(), Rejection> {
        self.now += delay_ms;
        self.run(Command::Cancel, None, random)
    }

    fn retry(&mut self, random: u64) -> Result<(), Rejection> {
        self.run(Command::Retry, None, random)
    }

    /// The engine dies: the in-memory state and the calls in flight are gone. A new one
    /// rebuilds the state from the journal and recovers, which must resend exactly the lost
    /// calls, with their attempt numbers.
    fn crash(&mut self, random: u64) {
        self.crashes += 1;
        self.lost = self.in_flight.drain(..).map(|(s, _)| key(&s)).collect();
        let rebuilt = SagaState::replay(SAGA_ID.to_owned(), self.def.clone(), &self.journal)
            .expect("the journal replays");
        assert_eq!(rebuilt, self.state, "the replayed state differs");
        self.state = rebuilt;
        self.resent.clear();
        self.run(Command::Recover, None, random)
            .expect("a recovery is never rejected");
        let mut lost = std::mem::take(&mut self.lost);
        let mut resent = std::mem::take(&mut self.resent);
        lost.sort_by_key(|k| (k.0, k.1 as u8, k.2));
        resent.sort_by_key(|k| (k.0, k.1 as u8, k.2));
        assert_eq!(
            resent, lost,
            "the recovery must resend exactly the calls in flight"
        );
    }

    /// After the script: every call answers 2xx, the saga is woken whenever it asks, and a
    /// `failed` saga is retried when `retry_failed`. It must end within the bound.
    fn drain(&mut self, retry_failed: bool) {
        for i in 0..ITERATIONS_MAX {
            // Deterministic and derived from nothing but the loop counter.
            let random = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            match self.status() {
                SagaStatus::Completed | SagaStatus::Compensated => return,
                SagaStatus::Failed if retry_failed => {
                    self.retry(random).expect("a failed saga can be retried");
                    continue;
                }
                SagaStatus::Failed => return,
                SagaStatus::Running | SagaStatus::Compensating => {}
            }
            if self.answer(|_| Outcome::Success(i as u32), 1, random) {
                continue;
            }
            assert!(
                self.state.next_wakeup_ms().is_some(),
                "stuck: {:?}, nothing in flight and no wakeup\n{:#?}",
                self.status(),
                self.journal
            );
            self.wake_due(random);
        }
        panic!(
            "the saga is still {:?} after {ITERATIONS_MAX} iterations",
            self.status()
        );
    }

    /// One command: decide, check every event, journal and apply it, send the calls, check the
    /// invariants. `live` is the call whose answer this is, when it was in flight.
    fn run(&mut self, command: Command, live: Option<Key>, random: u64) -> Result<(), Rejection> {
        self.run_cut(command, live, random, None).map(|_| ())
    }

    /// As `run`, but with `cut: Some(n)` only the first `n` events are journaled and applied:
    /// the engine dies there, before any call leaves (the caller then crashes the simulation).
    /// Returns how many events were journaled.
    fn run_cut(
        &mut self,
        command: Command,
        live: Option<Key>,
        random: u64,
        cut: Option<usize>,
    ) -> Result<usize, Rejection> {
        let before = self.state.clone();
        let ctx = Context {
            now_ms: self.now,
            random,
        };
        // The engine's way: decided and applied on the state itself, no copy.
        let mut applied = self.state.clone();
        let in_place = decide_and_apply(&mut applied, command.clone(), ctx);
        let decision = decide(&self.state, command.clone(), ctx);
        assert_eq!(in_place, decision, "decide_and_apply decided otherwise");
        let mut replayed = before.clone();
        for event in decision.iter().flat_map(|d| &d.events) {
            replayed.apply(event);
        }
        assert_eq!(
            applied, replayed,
            "decide_and_apply's state is not its events applied (or a rejection changed it)"
        );
        let decision = match decision {
            Ok(decision) => decision,
            Err(rejection) => {
                match (&command, &rejection) {
                    (Command::Cancel, Rejection::CancelTerminal(_)) => assert!(
                        before.status.is_terminal(),
                        "a {:?} saga refused a cancel",
                        before.status
                    ),
                    (Command::Retry, Rejection::RetryNotFailed(_)) => assert_ne!(
                        before.status,
                        SagaStatus::Failed,
                        "a failed saga refused a retry"
                    ),
                    _ => panic!("{command:?} was rejected: {rejection:?}"),
                }
                return Err(rejection);
            }
        };
        self.decisions += 1;
        match command {
            Command::Cancel => assert!(
                !before.status.is_terminal(),
                "a {:?} saga accepted a cancel",
                before.status
            ),
            Command::Retry => assert_eq!(
                before.status,
                SagaStatus::Failed,
                "only a failed saga accepts a retry"
            ),
            _ => {}
        }
        if before.status.is_terminal() && command != Command::Retry {
            assert!(
                decision.events.is_empty() && decision.sends.is_empty(),
                "a {:?} saga changed on {command:?}: {decision:?}",
                before.status
            );
        }
        if let Some((step, phase, attempt)) = live {
            let first = decision.events.first().map(|e| &e.kind);
            assert!(
                matches!(
                    first,
                    Some(EventKind::AttemptSucceeded { step: s, phase: p, attempt: a, .. }
                        | EventKind::AttemptFailed { step: s, phase: p, attempt: a, .. })
                        if (*s, *p, *a) == (step, phase, attempt)
                ),
                "the answer to the call in flight was not recorded first: {decision:?}"
            );
        }

        let keep = cut.unwrap_or(usize::MAX).min(decision.events.len());
        let mut sends = Vec::new();
        for event in &decision.events[..keep] {
            assert_eq!(
                event.at_ms, self.now,
                "an event is stamped with the decision's time"
            );
            let status_before = self.state.status;
            self.check_event(&command, live, event, &mut sends);
            self.journal.push(event.clone());
            self.state.apply(event);
            check_transition(status_before, self.state.status, &event.kind);
            if self.model.statuses.last() != Some(&self.state.status) {
                self.model.statuses.push(self.state.status);
            }
        }
        let all_sends: Vec<Key> = decision.sends.iter().map(key).collect();
        if keep == decision.events.len() {
            assert_eq!(
                all_sends, sends,
                "the sends are the attempts the events started or resent, in order"
            );
        } else {
            assert!(
                all_sends.starts_with(&sends),
                "the sends are the attempts the events started or resent, in order"
            );
        }
        // With a cut, these are journaled as about to leave: the crash loses them.
        for send in decision.sends.into_iter().take(sends.len()) {
            assert_eq!(
                send.timeout_ms,
                call_timeout_ms(&self.def, send.step, send.phase),
                "a call carries its configured timeout"
            );
            self.in_flight.push((send, self.now));
        }
        if cut.is_some() {
            self.check_replay();
        } else {
            self.check_invariants();
        }
        Ok(keep)
    }

    /// Checks one event against the oracle, before it is applied, and updates the oracle.
    fn check_event(
        &mut self,
        command: &Command,
        live: Option<Key>,
        event: &Event,
        sends: &mut Vec<Key>,
    ) {
        let def = self.def.clone();
        let steps = def.steps.len();
        let now = self.now;
        let status = self.state.status;
        let deadline = self.state.deadline_at_ms;
        match &event.kind {
            EventKind::SagaStarted { .. } => panic!("saga_started in a decision"),
            &EventKind::AttemptStarted {
                step,
                phase,
                attempt,
            } => {
                assert!(
                    self.in_flight.is_empty() && sends.is_empty(),
                    "attempt {attempt} of {phase:?} of step {step} started while {:?} {sends:?} \
                     are in flight",
                    self.in_flight
                );
                let last = self.model.last_attempt.entry((step, phase)).or_insert(0);
                assert_eq!(
                    attempt,
                    *last + 1,
                    "attempt numbers of {phase:?} of step {step} go up by one and never repeat"
                );
                *last = attempt;
                let used = self.model.used.entry((step, phase)).or_insert(0);
                *used += 1;
                let max_attempts = policy_of(&def, step, phase).max_attempts;
                assert!(
                    *used <= max_attempts,
                    "{used} attempts of {phase:?} of step {step}, above max_attempts \
                     {max_attempts}"
                );
                match phase {
                    Phase::Action => {
                        assert_eq!(status, SagaStatus::Running, "an action while {status:?}");
                        assert!(
                            !self.model.stopped,
                            "an action after a stop or compensation"
                        );
                        assert!(
                            !self.model.compensation_started[step],
                            "an action of step {step} after its compensation started"
                        );
                        assert!(
                            self.model.action_ok[..step].iter().all(|ok| *ok),
                            "step {step} started before the steps before it succeeded"
                        );
                        assert!(
                            !self.model.action_ok[step],
                            "step {step} started again after it succeeded"
                        );
                        assert!(
                            (step + 1..steps).all(|s| !self
                                .model
                                .last_attempt
                                .contains_key(&(s, Phase::Action))),
                            "step {step} started after a later step"
                        );
                        if let Some(deadline) = deadline {
                            assert!(
                                now < deadline,
                                "an action started after the saga's deadline"
                            );
                        }
                    }
                    Phase::Compensation => {
                        assert_eq!(
                            status,
                            SagaStatus::Compensating,
                            "a compensation while {status:?}"
                        );
                        assert!(
                            def.steps[step].compensation.is_some(),
                            "a compensation of step {step}, which has none"
                        );
                        assert!(
                            self.model.action_ok[step] || self.model.action_maybe[step],
                            "step {step} compensated, but its action never took effect"
                        );
                        assert!(
                            !self.model.compensation_ok[step],
                            "step {step} compensated again after its compensation succeeded"
                        );
                        for later in step + 1..steps {
                            assert!(
                                !self.needs_compensation(later)
                                    || self.model.compensation_ok[later],
                                "step {step} compensated before step {later}"
                            );
                        }
                        for earlier in 0..step {
                            assert!(
                                !self.model.compensation_started[earlier],
                                "step {step} compensated after step {earlier}"
                            );
                        }
                        self.model.compensation_started[step] = true;
                        self.model.compensation_sent = true;
                    }
                }
                self.started.push((step, phase, attempt));
                sends.push((step, phase, attempt));
            }
            &EventKind::AttemptResent {
                step,
                phase,
                attempt,
            } => {
                assert_eq!(*command, Command::Recover, "a resend outside a recovery");
                assert!(
                    self.lost.contains(&(step, phase, attempt)),
                    "resent {phase:?} attempt {attempt} of step {step}, which was not in flight"
                );
                assert_eq!(
                    self.model.last_attempt.get(&(step, phase)),
                    Some(&attempt),
                    "a resend carries the attempt already started"
                );
                self.resent.push((step, phase, attempt));
                sends.push((step, phase, attempt));
            }
            EventKind::AttemptSucceeded {
                step,
                phase,
                attempt,
                output,
            } => {
                let (step, phase, attempt) = (*step, *phase, *attempt);
                assert_eq!(
                    live,
                    Some((step, phase, attempt)),
                    "a success recorded for a call that was not in flight"
                );
                let Command::Answer {
                    outcome: Ok(answered),
                    ..
                } = command
                else {
                    panic!("a success recorded for {command:?}");
                };
                assert_eq!(output, answered, "the output is the participant's answer");
                match phase {
                    Phase::Action => self.model.action_ok[step] = true,
                    Phase::Compensation => self.model.compensation_ok[step] = true,
                }
            }
            EventKind::AttemptFailed {
                step,
                phase,
                attempt,
                failure,
                retry_at_ms,
            } => {
                let (step, phase, attempt) = (*step, *phase, *attempt);
                assert_eq!(
                    live,
                    Some((step, phase, attempt)),
                    "a failure recorded for a call that was not in flight"
                );
                let Command::Answer {
                    outcome: Err(answered),
                    ..
                } = command
                else {
                    panic!("a failure recorded for {command:?}");
                };
                assert_eq!(failure, answered, "the failure is the participant's answer");
                if phase == Phase::Action && may_have_taken_effect(failure) {
                    self.model.action_maybe[step] = true;
                }
                let policy = policy_of(&def, step, phase);
                let used = self.model.used.get(&(step, phase)).copied().unwrap_or(0);
                let may_retry = may_be_retried(failure)
                    && used < policy.max_attempts
                    && !(phase == Phase::Action && self.model.stopped);
                assert_eq!(
                    retry_at_ms.is_some(),
                    may_retry,
                    "{phase:?} of step {step} after {used} of {} attempts, {failure:?}, stopped \
                     {}: retry at {retry_at_ms:?}",
                    policy.max_attempts,
                    self.model.stopped
                );
                if let Some(at) = *retry_at_ms {
                    let cap = if phase == Phase::Action {
                        deadline
                    } else {
                        None
                    };
                    let latest = match failure.retry_after_ms {
                        Some(after) => now + after.min(RETRY_AFTER_MAX_MS),
                        None => now + policy.max_backoff_ms,
                    };
                    let latest = cap.map_or(latest, |d| latest.min(d));
                    if failure.retry_after_ms.is_some() {
                        assert_eq!(at, latest, "a Retry-After sets the next attempt's time");
                    } else {
                        assert!(
                            at <= latest,
                            "a backoff above max_backoff_ms: {at} > {latest}"
                        );
                    }
                    assert!(
                        at >= now || Some(at) == cap,
                        "a retry scheduled in the past"
                    );
                }
            }
            EventKind::StopRequested { reason } => {
                assert_eq!(status, SagaStatus::Running, "a stop while {status:?}");
                match reason {
                    StopReason::Cancelled => {
                        assert_eq!(*command, Command::Cancel, "a cancel nobody asked for")
                    }
                    StopReason::TimedOut => assert!(
                        deadline.is_some_and(|d| d <= now),
                        "a timeout before the deadline {deadline:?} (now {now})"
                    ),
                }
                self.model.stopped = true;
            }
            EventKind::CompensationBegan { .. } => {
                assert_eq!(
                    status,
                    SagaStatus::Running,
                    "compensation began while {status:?}"
                );
                assert!(
                    self.state
                        .steps
                        .iter()
                        .any(|s| s.action.status == CallStatus::Failed),
                    "compensation began but no step failed"
                );
                self.model.stopped = true;
            }
            &EventKind::SagaFailed { step, .. } => {
                assert_eq!(status, SagaStatus::Compensating, "failed while {status:?}");
                assert!(
                    self.model.compensation_started[step] && !self.model.compensation_ok[step],
                    "failed on step {step}, whose compensation did not fail"
                );
                assert_eq!(
                    self.state.steps[step].compensation.status,
                    CallStatus::Failed
                );
                self.model.failed_seen = true;
            }
            EventKind::RetryRequested => {
                assert_eq!(*command, Command::Retry, "a retry nobody asked for");
                assert_eq!(status, SagaStatus::Failed, "a retry while {status:?}");
                for step in 0..steps {
                    self.model.used.insert((step, Phase::Compensation), 0);
                }
            }
            EventKind::SagaCompleted => {
                assert_eq!(status, SagaStatus::Running, "completed while {status:?}");
                assert!(
                    self.model.action_ok.iter().all(|ok| *ok),
                    "completed before every step succeeded"
                );
                assert!(
                    !self.model.compensation_sent,
                    "completed after a compensation"
                );
                assert!(!self.model.stopped, "completed after a stop");
            }
            EventKind::SagaCompensated => {
                assert_eq!(
                    status,
                    SagaStatus::Compensating,
                    "compensated while {status:?}"
                );
                assert!(
                    self.in_flight.is_empty() && sends.is_empty(),
                    "compensated with a call in flight"
                );
                for step in 0..steps {
                    assert!(
                        !self.needs_compensation(step) || self.model.compensation_ok[step],
                        "compensated, but step {step} needed compensation and did not get it"
                    );
                }
            }
        }
    }

    fn check_replay(&mut self) {
        let rebuilt = SagaState::replay(SAGA_ID.to_owned(), self.def.clone(), &self.journal)
            .expect("the journal replays");
        assert_eq!(
            rebuilt, self.state,
            "replaying the journal does not rebuild the state"
        );
        self.replays += 1;
    }

    fn check_invariants(&mut self) {
        assert!(
            self.in_flight.len() <= 1,
            "two calls in flight: {:?}",
            self.in_flight
        );
        let in_state: Vec<Key> = self
            .state
            .steps
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                [Phase::Action, Phase::Compensation]
                    .into_iter()
                    .filter_map(move |p| s.call(p).in_flight.map(|a| (i, p, a)))
            })
            .collect();
        let in_sim: Vec<Key> = self.in_flight.iter().map(|(s, _)| key(s)).collect();
        assert_eq!(
            in_state, in_sim,
            "the state's calls in flight are the ones sent"
        );
        self.check_replay();
        // `decide` takes everything due: waking again at the same time changes nothing.
        let again = decide(
            &self.state,
            Command::Wake,
            Context {
                now_ms: self.now,
                random: 0,
            },
        )
        .expect("a wake is never rejected");
        assert!(
            again.events.is_empty() && again.sends.is_empty(),
            "a decision left something due: {again:?}"
        );
        if let Some(at) = self.state.next_wakeup_ms() {
            assert!(
                at > self.now,
                "a wakeup at {at} is already due at {}",
                self.now
            );
        }
        match self.status() {
            SagaStatus::Running | SagaStatus::Compensating => assert!(
                !self.in_flight.is_empty() || self.state.next_wakeup_ms().is_some(),
                "stuck: {:?}, nothing in flight and no wakeup",
                self.status()
            ),
            SagaStatus::Completed => {
                assert!(!self.model.compensation_sent);
                assert!(
                    self.state
                        .steps
                        .iter()
                        .all(|s| s.status == StepStatus::Succeeded)
                );
            }
            SagaStatus::Compensated => assert!(self.in_flight.is_empty()),
            SagaStatus::Failed => {
                assert!(self.in_flight.is_empty());
                assert!(
                    self.state
                        .steps
                        .iter()
                        .any(|s| s.compensation.status == CallStatus::Failed)
                );
            }
        }
    }
}

/// The saga's status moves only along the contract's arrows, and only by the right events.
fn check_transition(before: SagaStatus, after: SagaStatus, kind: &EventKind) {
    use SagaStatus::*;
    if before == after {
        return;
    }
    let allowed = matches!(
        (before, after, kind),
        (Running, Completed, EventKind::SagaCompleted)
            | (Running, Compensating, EventKind::StopRequested { .. })
            | (Running, Compensating, EventKind::CompensationBegan { .. })
            | (Compensating, Compensated, EventKind::SagaCompensated)
            | (Compensating, Failed, EventKind::SagaFailed { .. })
            | (Failed, Compensating, EventKind::RetryRequested)
    );
    assert!(allowed, "{before:?} -> {after:?} on {kind:?}");
}

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

/// One scripted move of the world.
#[derive(Clone, Debug)]
enum Op {
    /// The call in flight answers `delay_ms` later; a compensation answers 2xx when
    /// `compensation_ok`, else `outcome`. With nothing in flight: as `Wake`.
    Answer {
        outcome: Outcome,
        compensation_ok: bool,
        delay_ms: u64,
        random: u64,
        /// The engine dies after journaling this many of the decision's events.
        crash_after: Option<usize>,
    },
    /// The clock moves to `next_wakeup_ms()` and the saga is woken.
    Wake { random: u64 },
    /// The saga is woken `delay_ms` later, whether anything is due or not.
    WakeAfter { delay_ms: u64, random: u64 },
    /// `POST /cancel`, `delay_ms` later.
    Cancel { delay_ms: u64, random: u64 },
    /// `POST /retry`.
    Retry { random: u64 },
    /// The engine crashes and recovers.
    Crash { random: u64 },
    /// An answer already accepted arrives again, with any outcome.
    Duplicate {
        pick: usize,
        outcome: Outcome,
        random: u64,
    },
}

fn outcome_strategy() -> impl Strategy<Value = Outcome> {
    let business = prop_oneof![Just(400u16), Just(404), Just(409), Just(422)];
    let server = prop_oneof![Just(500u16), Just(502), Just(503)];
    let throttled = prop_oneof![Just(408u16), Just(425), Just(429)];
    let retry_after = || prop::option::weighted(0.3, 0u64..=8_000);
    prop_oneof![
        5 => (0u32..1_000).prop_map(Outcome::Success),
        1 => business.prop_map(|s| Outcome::Status(s, None)),
        2 => (server, retry_after()).prop_map(|(s, after)| Outcome::Status(s, after)),
        2 => (throttled, retry_after()).prop_map(|(s, after)| Outcome::Status(s, after)),
        1 => Just(Outcome::Timeout),
        1 => Just(Outcome::Refused),
        1 => Just(Outcome::ConnectionLost),
        1 => Just(Outcome::InvalidAnswer),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        16 => (
            outcome_strategy(),
            prop::bool::weighted(0.6),
            0u64..=3_000,
            any::<u64>(),
            prop::option::weighted(0.1, 0usize..=3),
        )
            .prop_map(|(outcome, compensation_ok, delay_ms, random, crash_after)| Op::Answer {
                outcome,
                compensation_ok,
                delay_ms,
                random,
                crash_after,
            }),
        4 => any::<u64>().prop_map(|random| Op::Wake { random }),
        1 => (0u64..=2_000, any::<u64>())
            .prop_map(|(delay_ms, random)| Op::WakeAfter { delay_ms, random }),
        1 => (0u64..=2_000, any::<u64>())
            .prop_map(|(delay_ms, random)| Op::Cancel { delay_ms, random }),
        1 => any::<u64>().prop_map(|random| Op::Retry { random }),
        2 => any::<u64>().prop_map(|random| Op::Crash { random }),
        1 => (any::<usize>(), outcome_strategy(), any::<u64>())
            .prop_map(|(pick, outcome, random)| Op::Duplicate { pick, outcome, random }),
    ]
}

fn retry_policy_strategy() -> impl Strategy<Value = RetryPolicy> {
    (
        1u32..=4,
        1u64..=500,
        0u64..=5_000,
        prop_oneof![Just(1.0), Just(1.5), Just(2.0), Just(3.0)],
        prop_oneof![Just(Jitter::Full), Just(Jitter::Equal), Just(Jitter::None)],
    )
        .prop_map(|(max_attempts, initial, extra, multiplier, jitter)| {
            policy(max_attempts, initial, initial + extra, multiplier, jitter)
        })
}

/// 1 to 6 steps, each with or without a compensation, retry policies of 1 to 4 attempts, and
/// sometimes a saga timeout.
fn definition_strategy() -> impl Strategy<Value = Arc<Definition>> {
    let step = (
        prop::bool::weighted(0.75),
        retry_policy_strategy(),
        retry_policy_strategy(),
        1u64..=5_000,
    );
    (
        prop::collection::vec(step, 1..=6),
        prop::option::weighted(0.4, 1u64..=30_000),
    )
        .prop_map(|(steps, timeout_ms)| {
            let steps = steps
                .into_iter()
                .enumerate()
                .map(
                    |(i, (compensation, retry, compensation_retry, timeout_ms))| {
                        step_def(i, compensation, retry, compensation_retry, timeout_ms)
                    },
                )
                .collect();
            definition(steps, timeout_ms)
        })
}

#[derive(Clone, Debug)]
struct Scenario {
    def: Arc<Definition>,
    first_random: u64,
    script: Vec<Op>,
    /// After the script, whether a `failed` saga is retried (then it must end compensated).
    retry_failed: bool,
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    (
        definition_strategy(),
        any::<u64>(),
        prop::collection::vec(op_strategy(), 0..=60),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(def, first_random, script, retry_failed)| Scenario {
            def,
            first_random,
            script,
            retry_failed,
        })
}

/// Plays a scenario to its end: the script, then every call succeeding until the saga ends.
fn simulate(scenario: &Scenario) -> Sim {
    let mut sim = Sim::new(scenario.def.clone(), scenario.first_random);
    for op in &scenario.script {
        match op {
            Op::Answer {
                outcome,
                compensation_ok,
                delay_ms,
                random,
                crash_after,
            } => {
                let answered = sim.answer_then_crash(
                    |send| match send.phase {
                        Phase::Compensation if *compensation_ok => Outcome::Success(0),
                        _ => outcome.clone(),
                    },
                    *delay_ms,
                    *random,
                    *crash_after,
                );
                if !answered {
                    sim.wake_due(*random);
                }
            }
            Op::Wake { random } => sim.wake_due(*random),
            Op::WakeAfter { delay_ms, random } => sim.wake_after(*delay_ms, *random),
            Op::Cancel { delay_ms, random } => {
                // A rejection (a terminal saga) is checked inside.
                let _ = sim.cancel(*delay_ms, *random);
            }
            Op::Retry { random } => {
                let _ = sim.retry(*random);
            }
            Op::Crash { random } => sim.crash(*random),
            Op::Duplicate {
                pick,
                outcome,
                random,
            } => sim.duplicate(*pick, outcome, *random),
        }
    }
    sim.drain(scenario.retry_failed);
    sim
}

// ---------------------------------------------------------------------------------------------
// Checks over a whole journal, independent of the online checks
// ---------------------------------------------------------------------------------------------

/// What the journal says each step's action did: (succeeded, may have taken effect).
fn action_effects(journal: &[Event], steps: usize) -> (Vec<bool>, Vec<bool>) {
    let mut ok = vec![false; steps];
    let mut maybe = vec![false; steps];
    for event in journal {
        match &event.kind {
            EventKind::AttemptSucceeded {
                step,
                phase: Phase::Action,
                ..
            } => ok[*step] = true,
            EventKind::AttemptFailed {
                step,
                phase: Phase::Action,
                failure,
                ..
            } if may_have_taken_effect(failure) => maybe[*step] = true,
            _ => {}
        }
    }
    (ok, maybe)
}

/// The statuses the saga went through, folding its journal one event at a time.
fn journal_statuses(def: &Arc<Definition>, journal: &[Event]) -> Vec<SagaStatus> {
    let mut state = SagaState::replay(SAGA_ID.to_owned(), def.clone(), &journal[..1])
        .expect("the journal starts with saga_started");
    let mut statuses = vec![state.status];
    for event in &journal[1..] {
        state.apply(event);
        if statuses.last() != Some(&state.status) {
            statuses.push(state.status);
        }
    }
    statuses
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Property 1: whatever happens, once the world lets it, a saga ends completed, compensated
    /// or failed; retried after `failed` with compensations that succeed, it ends compensated.
    #[test]
    fn a_saga_always_ends_terminal_and_a_retried_failed_saga_ends_compensated(
        scenario in scenario_strategy()
    ) {
        let sim = simulate(&scenario);
        let status = sim.status();
        prop_assert!(status.is_terminal(), "ended {status:?}");
        if scenario.retry_failed {
            prop_assert_ne!(status, SagaStatus::Failed);
        }
        if sim.model.failed_seen && scenario.retry_failed {
            prop_assert_eq!(status, SagaStatus::Compensated);
        }
        if sim.model.stopped {
            prop_assert_ne!(status, SagaStatus::Completed, "completed after a stop");
        }
        // The statuses follow the contract's arrows: running first, and terminal ones only left
        // through a retry of `failed`.
        let statuses = journal_statuses(&scenario.def, &sim.journal);
        prop_assert_eq!(&statuses, &sim.model.statuses);
        prop_assert_eq!(statuses[0], SagaStatus::Running);
        for pair in statuses.windows(2) {
            let allowed = matches!(
                (pair[0], pair[1]),
                (SagaStatus::Running, SagaStatus::Completed)
                    | (SagaStatus::Running, SagaStatus::Compensating)
                    | (SagaStatus::Compensating, SagaStatus::Compensated)
                    | (SagaStatus::Compensating, SagaStatus::Failed)
                    | (SagaStatus::Failed, SagaStatus::Compensating)
            );
            prop_assert!(allowed, "{:?} -> {:?}", pair[0], pair[1]);
        }
        // Whatever the saga ends as, its journal replays to it.
        let rebuilt = SagaState::replay(SAGA_ID.to_owned(), scenario.def.clone(), &sim.journal)
            .expect("the journal replays");
        prop_assert_eq!(rebuilt, sim.state);
    }

    /// Property 2: compensations go in reverse step order, one call at a time, and only for
    /// steps whose action succeeded or may have taken effect; a compensated saga compensated
    /// every such step that has a compensation.
    #[test]
    fn compensations_run_in_reverse_order_one_at_a_time_only_for_steps_that_may_have_taken_effect(
        scenario in scenario_strategy()
    ) {
        let sim = simulate(&scenario);
        let def = &scenario.def;
        let steps = def.steps.len();
        let mut open: Option<Key> = None;
        let mut last_compensated: Option<usize> = None;
        let mut compensated = vec![false; steps];
        // What the actions did so far, per the journal.
        let (mut ok, mut maybe) = (vec![false; steps], vec![false; steps]);
        for event in &sim.journal {
            match event.kind {
                EventKind::AttemptStarted { step, phase, attempt } => {
                    prop_assert!(open.is_none(), "{:?} started while {:?} is in flight",
                        (step, phase, attempt), open);
                    open = Some((step, phase, attempt));
                    if phase == Phase::Compensation {
                        prop_assert!(def.steps[step].compensation.is_some());
                        prop_assert!(ok[step] || maybe[step],
                            "step {} compensated, every attempt was a definite no or none ran",
                            step);
                        if let Some(last) = last_compensated {
                            prop_assert!(step <= last,
                                "step {} compensated after step {}", step, last);
                        }
                        last_compensated = Some(step);
                    }
                }
                EventKind::AttemptResent { step, phase, attempt } => {
                    prop_assert_eq!(open, Some((step, phase, attempt)),
                        "a resend of a call that is not in flight");
                }
                EventKind::AttemptSucceeded { step, phase, attempt, .. } => {
                    prop_assert_eq!(open.take(), Some((step, phase, attempt)));
                    match phase {
                        Phase::Action => ok[step] = true,
                        Phase::Compensation => compensated[step] = true,
                    }
                }
                EventKind::AttemptFailed { step, phase, attempt, ref failure, .. } => {
                    prop_assert_eq!(open.take(), Some((step, phase, attempt)));
                    if phase == Phase::Action && may_have_taken_effect(failure) {
                        maybe[step] = true;
                    }
                }
                _ => {}
            }
        }
        if sim.status() == SagaStatus::Compensated {
            let (ok, maybe) = action_effects(&sim.journal, steps);
            for step in 0..steps {
                let needed = def.steps[step].compensation.is_some() && (ok[step] || maybe[step]);
                prop_assert_eq!(compensated[step], needed,
                    "step {} compensated: {}, needed: {}", step, compensated[step], needed);
            }
        }
    }

    /// Property 3: no action attempt starts after a cancel or a timeout was accepted, after
    /// compensation began, or after the step's compensation started; only resends (of the
    /// attempt already started) may leave then.
    #[test]
    fn no_action_is_sent_after_a_stop_or_once_compensation_began(
        scenario in scenario_strategy()
    ) {
        let sim = simulate(&scenario);
        let mut stopped = false;
        let mut compensation_started = vec![false; scenario.def.steps.len()];
        let mut last_action: HashMap<usize, u32> = HashMap::new();
        for event in &sim.journal {
            match &event.kind {
                EventKind::StopRequested { .. } | EventKind::CompensationBegan { .. } => {
                    stopped = true;
                }
                &EventKind::AttemptStarted { step, phase: Phase::Action, attempt } => {
                    prop_assert!(!stopped, "action {} of step {} after a stop", attempt, step);
                    prop_assert!(!compensation_started[step],
                        "action {} of step {} after its compensation", attempt, step);
                    last_action.insert(step, attempt);
                }
                &EventKind::AttemptStarted { step, phase: Phase::Compensation, .. } => {
                    compensation_started[step] = true;
                }
                &EventKind::AttemptResent { step, phase: Phase::Action, attempt } => {
                    prop_assert_eq!(last_action.get(&step), Some(&attempt),
                        "a resent action carries the attempt already started");
                }
                _ => {}
            }
        }
    }

    /// Property 4: replaying the journal rebuilds exactly the state that produced it, after
    /// every decision of the simulation (checked as it runs) and after every single event.
    #[test]
    fn replaying_the_journal_rebuilds_the_state_at_every_step(
        scenario in scenario_strategy()
    ) {
        let sim = simulate(&scenario);
        prop_assert!(sim.replays > sim.decisions, "a replay after every decision");
        let (mut live, _) = SagaState::start(
            SAGA_ID.to_owned(),
            scenario.def.clone(),
            input(),
            TRACE_ID.to_owned(),
            START_MS,
        );
        for n in 1..=sim.journal.len() {
            if n > 1 {
                live.apply(&sim.journal[n - 1]);
            }
            let rebuilt = SagaState::replay(
                SAGA_ID.to_owned(),
                scenario.def.clone(),
                &sim.journal[..n],
            )
            .expect("every prefix of the journal replays");
            prop_assert_eq!(&rebuilt, &live, "after {} events", n);
        }
        prop_assert_eq!(live, sim.state);
    }

    /// Property 5: a completed saga never sent a compensation; attempt numbers of a call never
    /// repeat (resends excepted); attempts per call between retries stay within max_attempts.
    #[test]
    fn attempts_never_repeat_or_exceed_the_policy_and_a_completed_saga_never_compensated(
        scenario in scenario_strategy()
    ) {
        let sim = simulate(&scenario);
        let def = &scenario.def;
        let mut seen: HashMap<(usize, Phase), Vec<u32>> = HashMap::new();
        let mut used: HashMap<(usize, Phase), u32> = HashMap::new();
        for event in &sim.journal {
            match &event.kind {
                &EventKind::AttemptStarted { step, phase, attempt } => {
                    let attempts = seen.entry((step, phase)).or_default();
                    prop_assert!(!attempts.contains(&attempt),
                        "attempt {} of {:?} of step {} sent twice", attempt, phase, step);
                    attempts.push(attempt);
                    let n = used.entry((step, phase)).or_insert(0);
                    *n += 1;
                    let max_attempts = policy_of(def, step, phase).max_attempts;
                    prop_assert!(*n <= max_attempts,
                        "{} attempts of {:?} of step {} (max {})", n, phase, step, max_attempts);
                }
                &EventKind::AttemptResent { step, phase, attempt } => {
                    prop_assert_eq!(seen.get(&(step, phase)).and_then(|a| a.last()),
                        Some(&attempt), "a resend is of the attempt last started");
                }
                EventKind::RetryRequested => {
                    used.retain(|(_, phase), _| *phase == Phase::Action);
                }
                _ => {}
            }
        }
        if sim.status() == SagaStatus::Completed {
            prop_assert!(
                !sim.journal.iter().any(|e| matches!(
                    e.kind,
                    EventKind::AttemptStarted { phase: Phase::Compensation, .. }
                )),
                "a completed saga sent a compensation"
            );
        }
    }

    /// Property 6: the simulation draws nothing but the scenario, so the same scenario (the
    /// same seed) plays out identically.
    #[test]
    fn a_scenario_replays_identically_from_its_seed(scenario in scenario_strategy()) {
        let first = simulate(&scenario);
        let second = simulate(&scenario);
        prop_assert_eq!(&first.journal, &second.journal);
        prop_assert_eq!(&first.started, &second.started);
        prop_assert_eq!(first.now, second.now);
        prop_assert_eq!(first.state, second.state);
    }
}

// ---------------------------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------------------------

const A: Phase = Phase::Action;
const C: Phase = Phase::Compensation;

/// Steps as (has a compensation, action max_attempts); no jitter, backoff 100 ms … 1 s.
fn example_definition(steps: &[(bool, u32)], timeout_ms: Option<u64>) -> Arc<Definition> {
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, &(compensation, attempts))| {
            step_def(
                i,
                compensation,
                policy(attempts, 100, 1_000, 2.0, Jitter::None),
                policy(3, 100, 1_000, 2.0, Jitter::None),
                2_000,
            )
        })
        .collect();
    definition(steps, timeout_ms)
}

/// Answers every call with `answer`, 10 ms after it was sent, and wakes the saga when it asks.
fn run_example(def: Arc<Definition>, answer: fn(usize, Phase, u32) -> Outcome) -> Sim {
    let mut sim = Sim::new(def, 7);
    for _ in 0..ITERATIONS_MAX {
        if sim.status().is_terminal() {
            return sim;
        }
        if !sim.answer(|s| answer(s.step, s.phase, s.attempt), 10, 7) {
            sim.wake_due(7);
        }
    }
    panic!("the example did not end: {:#?}", sim.journal);
}

struct Example {
    name: &'static str,
    steps: &'static [(bool, u32)],
    answer: fn(usize, Phase, u32) -> Outcome,
    calls: &'static [Key],
    status: SagaStatus,
}

#[test]
fn examples_of_whole_sagas() {
    let examples = [
        Example {
            name: "happy path of three steps",
            steps: &[(true, 3), (true, 3), (true, 3)],
            answer: |_, _, _| Outcome::Success(1),
            calls: &[(0, A, 1), (1, A, 1), (2, A, 1)],
            status: SagaStatus::Completed,
        },
        Example {
            name: "step 3 refuses with 422: step 2 then step 1 are compensated",
            steps: &[(true, 3), (true, 3), (true, 3)],
            answer: |step, phase, _| match (step, phase) {
                (2, A) => Outcome::Status(422, None),
                _ => Outcome::Success(1),
            },
            calls: &[(0, A, 1), (1, A, 1), (2, A, 1), (1, C, 1), (0, C, 1)],
            status: SagaStatus::Compensated,
        },
        Example {
            name: "step 2 answers 503 until its attempts run out: step 2 then step 1 compensated",
            steps: &[(true, 3), (true, 3), (true, 3)],
            answer: |step, phase, _| match (step, phase) {
                (1, A) => Outcome::Status(503, None),
                _ => Outcome::Success(1),
            },
            calls: &[
                (0, A, 1),
                (1, A, 1),
                (1, A, 2),
                (1, A, 3),
                (1, C, 1),
                (0, C, 1),
            ],
            status: SagaStatus::Compensated,
        },
        Example {
            name: "step 2 answers 429 until its attempts run out: only step 1 is compensated",
            steps: &[(true, 2), (true, 2), (true, 2)],
            answer: |step, phase, _| match (step, phase) {
                (1, A) => Outcome::Status(429, None),
                _ => Outcome::Success(1),
            },
            calls: &[(0, A, 1), (1, A, 1), (1, A, 2), (0, C, 1)],
            status: SagaStatus::Compensated,
        },
        Example {
            name: "a step without a compensation is skipped when unwinding",
            steps: &[(true, 1), (false, 1), (true, 1)],
            answer: |step, phase, _| match (step, phase) {
                (2, A) => Outcome::Status(422, None),
                _ => Outcome::Success(1),
            },
            calls: &[(0, A, 1), (1, A, 1), (2, A, 1), (0, C, 1)],
            status: SagaStatus::Compensated,
        },
        Example {
            name: "a compensation that keeps failing gives up: failed",
            steps: &[(true, 1), (true, 1)],
            answer: |step, phase, _| match (step, phase) {
                (1, A) => Outcome::Status(422, None),
                (0, C) => Outcome::Status(503, None),
                _ => Outcome::Success(1),
            },
            calls: &[(0, A, 1), (1, A, 1), (0, C, 1), (0, C, 2), (0, C, 3)],
            status: SagaStatus::Failed,
        },
    ];
    for example in examples {
        let sim = run_example(example_definition(example.steps, None), example.answer);
        assert_eq!(sim.started, example.calls, "{}", example.name);
        assert_eq!(sim.status(), example.status, "{}", example.name);
    }
}

#[test]
fn a_failed_saga_retried_resumes_its_compensation_with_fresh_attempts() {
    let def = example_definition(&[(true, 1), (true, 1)], None);
    let mut sim = run_example(def, |step, phase, _| match (step, phase) {
        (1, A) => Outcome::Status(422, None),
        (0, C) => Outcome::Status(503, None),
        _ => Outcome::Success(1),
    });
    assert_eq!(sim.status(), SagaStatus::Failed);
    sim.retry(7).expect("a failed saga can be retried");
    assert_eq!(sim.status(), SagaStatus::Compensating);
    assert_eq!(sim.started.last(), Some(&(0, C, 4)));
    assert!(sim.answer(|_| Outcome::Success(1), 10, 7));
    assert_eq!(sim.status(), SagaStatus::Compensated);
    assert!(sim.retry(7).is_err(), "only a failed saga can be retried");
}

#[test]
fn a_retry_after_of_5000_ms_schedules_the_retry_then_even_above_max_backoff() {
    // max_backoff_ms is 1000.
    let def = example_definition(&[(true, 3)], None);
    let mut sim = Sim::new(def, 7);
    assert_eq!(sim.started, [(0, A, 1)]);
    assert!(sim.answer(|_| Outcome::Status(429, Some(5_000)), 0, 7));
    let now = sim.now;
    assert_eq!(sim.state.steps[0].action.retry_at_ms, Some(now + 5_000));
    assert_eq!(sim.state.next_wakeup_ms(), Some(now + 5_000));
    assert!(matches!(
        sim.journal.last().map(|e| &e.kind),
        Some(EventKind::AttemptFailed { retry_at_ms: Some(at), .. }) if *at == now + 5_000
    ));
    sim.wake_after(4_999, 7);
    assert_eq!(sim.started, [(0, A, 1)], "not before the Retry-After");
    sim.wake_after(1, 7);
    assert_eq!(sim.started, [(0, A, 1), (0, A, 2)]);
}

#[test]
fn a_saga_timeout_while_a_retry_is_scheduled_compensates() {
    // (step 2's answer, the calls sent)
    let cases: [(Outcome, &[Key]); 2] = [
        // A 5xx may have taken effect: step 2 is compensated too.
        (
            Outcome::Status(503, Some(60_000)),
            &[(0, A, 1), (1, A, 1), (1, C, 1), (0, C, 1)],
        ),
        // A 429 is a definite no: only step 1.
        (
            Outcome::Status(429, Some(60_000)),
            &[(0, A, 1), (1, A, 1), (0, C, 1)],
        ),
    ];
    for (outcome, calls) in cases {
        let def = example_definition(&[(true, 3), (true, 3), (true, 3)], Some(10_000));
        let mut sim = Sim::new(def, 7);
        assert!(sim.answer(|_| Outcome::Success(1), 10, 7));
        assert!(sim.answer(|_| outcome.clone(), 10, 7));
        // The retry the participant asked for is after the deadline: it is due at the deadline.
        let deadline = START_MS + 10_000;
        assert_eq!(sim.state.steps[1].action.retry_at_ms, Some(deadline));
        assert_eq!(sim.state.next_wakeup_ms(), Some(deadline));
        sim.wake_due(7);
        assert_eq!(sim.now, deadline);
        assert_eq!(sim.state.stop, Some(StopReason::TimedOut));
        assert!(
            sim.state
                .error
                .as_deref()
                .is_some_and(|e| e.contains("timed out"))
        );
        while sim.answer(|_| Outcome::Success(1), 10, 7) {}
        assert_eq!(sim.status(), SagaStatus::Compensated, "{outcome:?}");
        assert_eq!(sim.started, calls, "{outcome:?}");
        assert_eq!(sim.state.steps[2].status, StepStatus::Skipped);
    }
}

#[test]
fn a_cancel_while_an_action_is_in_flight_awaits_it_and_compensates_it_when_it_succeeds() {
    let def = example_definition(&[(true, 3), (true, 3), (true, 3)], None);
    let mut sim = Sim::new(def, 7);
    assert!(sim.answer(|_| Outcome::Success(1), 10, 7));
    assert_eq!(sim.started, [(0, A, 1), (1, A, 1)]);
    sim.cancel(5, 7).expect("a running saga can be cancelled");
    assert_eq!(sim.status(), SagaStatus::Compensating);
    assert_eq!(sim.state.stop, Some(StopReason::Cancelled));
    assert_eq!(
        sim.started.len(),
        2,
        "nothing is sent while the action is awaited"
    );
    assert_eq!(sim.in_flight.len(), 1);
    assert!(sim.answer(|_| Outcome::Success(1), 10, 7));
    assert_eq!(sim.started.last(), Some(&(1, C, 1)));
    while sim.answer(|_| Outcome::Success(1), 10, 7) {}
    assert_eq!(sim.status(), SagaStatus::Compensated);
    assert_eq!(sim.started, [(0, A, 1), (1, A, 1), (1, C, 1), (0, C, 1)]);
    assert_eq!(sim.state.steps[2].status, StepStatus::Skipped);
    assert!(
        sim.cancel(0, 7).is_err(),
        "a terminal saga cannot be cancelled"
    );
}

#[test]
fn a_crash_resends_the_call_in_flight_with_the_same_attempt() {
    let def = example_definition(&[(true, 3), (true, 3)], None);
    let mut sim = Sim::new(def, 7);
    assert!(sim.answer(|_| Outcome::Status(503, None), 10, 7));
    sim.wake_due(7);
    assert_eq!(sim.started, [(0, A, 1), (0, A, 2)]);
    sim.crash(7);
    assert_eq!(
        sim.journal.last().map(|e| &e.kind),
        Some(&EventKind::AttemptResent {
            step: 0,
            phase: A,
            attempt: 2
        })
    );
    assert_eq!(sim.started, [(0, A, 1), (0, A, 2)], "no new attempt");
    while sim.answer(|_| Outcome::Success(1), 10, 7) {}
    assert_eq!(sim.status(), SagaStatus::Completed);
    assert_eq!(sim.state.steps[0].action.attempts, 2);
}
