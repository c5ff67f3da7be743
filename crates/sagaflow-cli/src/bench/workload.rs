//! The workloads' definitions.

use serde_json::{Value, json};

use super::args::Workload;

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Saga3 => "saga-3",
            Workload::Saga3Fail => "saga-3-fail",
            Workload::Saga10 => "saga-10",
        }
    }

    /// Steps per saga (actions and compensations sent when nothing fails transiently).
    pub fn calls_per_saga(self) -> usize {
        match self {
            Workload::Saga3 => 3,
            // Two actions, a refused one, two compensations.
            Workload::Saga3Fail => 5,
            Workload::Saga10 => 10,
        }
    }

    /// The status every saga must end in.
    pub fn expected_status(self) -> &'static str {
        match self {
            Workload::Saga3Fail => "compensated",
            _ => "completed",
        }
    }

    /// The paths the `direct` baseline calls, in order.
    pub fn direct_paths(self) -> Vec<String> {
        match self {
            Workload::Saga3 => (1..=3).map(|i| format!("/step-{i}")).collect(),
            Workload::Saga3Fail => vec![
                "/step-1".into(),
                "/step-2".into(),
                "/refuse".into(),
                "/step-2/undo".into(),
                "/step-1/undo".into(),
            ],
            Workload::Saga10 => (1..=10).map(|i| format!("/step-{i}")).collect(),
        }
    }

    /// The definition registered with the coordinator.
    pub fn definition(self, participant: &str) -> Value {
        let steps: usize = match self {
            Workload::Saga10 => 10,
            _ => 3,
        };
        let steps: Vec<Value> = (1..=steps)
            .map(|i| {
                let action = if self == Workload::Saga3Fail && i == 3 {
                    format!("{participant}/refuse")
                } else {
                    format!("{participant}/step-{i}")
                };
                json!({
                    "name": format!("step-{i}"),
                    "action": {"url": action, "timeout_ms": 5000},
                    "compensation": {"url": format!("{participant}/step-{i}/undo")},
                })
            })
            .collect();
        json!({"name": format!("bench-{}", self.name()), "steps": steps})
    }
}
