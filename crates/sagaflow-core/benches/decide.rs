//! Micro-benchmarks of the state machine: a whole saga decided and applied, and a replay.
//! Run with `cargo bench -p sagaflow-core`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sagaflow_core::{
    Call, Command, Context, Definition, Event, Method, Payload, Phase, RetryPolicy, SagaState,
    StepDef, decide,
};

fn main() {
    divan::main();
}

fn definition(steps: usize) -> Arc<Definition> {
    let call = |path: &str| Call {
        url: format!("http://127.0.0.1:8101/{path}"),
        method: Method::Post,
        timeout_ms: 5_000,
    };
    Arc::new(Definition {
        name: "bench".into(),
        version: 1,
        timeout_ms: Some(60_000),
        steps: (0..steps)
            .map(|i| StepDef {
                name: format!("step-{i}"),
                action: call(&format!("step-{i}")),
                compensation: Some(call(&format!("step-{i}/undo"))),
                retry: RetryPolicy::action_default(),
                compensation_retry: RetryPolicy::compensation_default(),
            })
            .collect(),
    })
}

/// Runs a saga whose steps all succeed; returns its journal.
fn run_saga(definition: &Arc<Definition>) -> Vec<Event> {
    let input = Payload::from_json(r#"{"order": 42, "sku": "A-1"}"#).unwrap();
    let output = Payload::from_json(r#"{"ok": true}"#).unwrap();
    let (mut state, started) = SagaState::start(
        "0193a3f0-0000-7000-8000-000000000000".into(),
        Arc::clone(definition),
        input,
        "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        1_000,
    );
    let mut journal = vec![started];
    let mut command = Command::Wake;
    for now in 1_000..1_000 + 10 * definition.steps.len() as u64 {
        let ctx = Context {
            now_ms: now,
            random: now,
        };
        let decision = decide(&state, command, ctx).unwrap();
        for event in &decision.events {
            state.apply(event);
        }
        journal.extend(decision.events);
        let Some(send) = decision.sends.first() else {
            break;
        };
        command = Command::Answer {
            step: send.step,
            phase: Phase::Action,
            attempt: send.attempt,
            outcome: Ok(output.clone()),
        };
    }
    assert!(state.status.is_terminal());
    journal
}

#[divan::bench(args = [3, 10])]
fn decide_and_apply_a_whole_saga(bencher: divan::Bencher, steps: usize) {
    let definition = definition(steps);
    bencher.bench(|| run_saga(&definition));
}

#[divan::bench(args = [3, 10])]
fn replay_a_journal(bencher: divan::Bencher, steps: usize) {
    let definition = definition(steps);
    let journal = run_saga(&definition);
    bencher.bench(|| SagaState::replay("id".into(), Arc::clone(&definition), &journal).unwrap());
}

#[divan::bench]
fn encode_an_event(bencher: divan::Bencher) {
    let journal = run_saga(&definition(3));
    bencher.bench(|| serde_json::to_string(&journal[2]).unwrap());
}
