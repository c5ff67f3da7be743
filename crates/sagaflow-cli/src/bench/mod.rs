//! `sagaflow bench`: an honest benchmark of the coordinator against a minimal participant, and
//! the `direct` baseline (the same calls with no coordinator) measured in the same run.

mod args;
mod children;
mod disk;
mod host;
mod load;
mod parked;
mod participant;
mod procs;
mod report;
mod restart;
mod run;
mod soak;
mod workload;

pub use args::{BenchArgs, BenchParticipantArgs};
pub use participant::serve as serve_participant;
pub use run::run;
