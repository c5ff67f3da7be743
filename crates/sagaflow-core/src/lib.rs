//! The saga state machine: definitions, events, state and `decide`.
//!
//! - [`definition`]: what a saga is made of, with every default filled in and every rule checked.
//! - [`event`]: the journal's vocabulary.
//! - [`state`]: a saga's state, the fold of its events ([`SagaState::apply`]).
//! - [`decide()`]: from a state and a [`Command`], the events to journal and the calls to send.
//!
//! Nothing here does I/O, reads the clock or draws random numbers: time and jitter are inputs.
//! That is what makes replay after a crash exact and the property tests cheap.

pub mod decide;
pub mod definition;
pub mod event;
pub mod payload;
pub mod state;

pub use decide::{Command, Context, Decision, Rejection, Send, decide, decide_and_apply};
pub use definition::{
    Call, Definition, DefinitionLimits, Jitter, Method, RetryPolicy, StepDef, ValidationError,
};
pub use event::{Event, EventKind, Failure, FailureKind, Phase, StopReason};
pub use payload::Payload;
pub use state::{CallStatus, ReplayError, SagaState, SagaStatus, StepState, StepStatus};
