//! `sagaflow bench --restart-finished F --restart-unfinished U`: how long a coordinator takes
//! to be ready again after `kill -9` with F finished and U unfinished sagas in its journal.
//!
//! The F finished sagas are written straight into a fresh journal with the store's own API
//! (`Store::start_saga`, group-committed by its writer), each with the journal the coordinator
//! would write for a completed saga of the workload: the events come from the real state
//! machine (`SagaState::start`, `decide`, `apply`) answering every call with the bench
//! participant's body. Only their order on disk differs (each saga's events are adjacent, where
//! a live coordinator interleaves them). Then the coordinator parks U sagas on a step that never
//! answers (as `--parked` does), is killed with SIGKILL and started again, `RESTARTS` times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

use sagaflow_api::DefinitionSpec;
use sagaflow_core::{
    Command, Context, Definition, DefinitionLimits, Payload, SagaState, SagaStatus, decide,
};
use sagaflow_store::sqlite::{SqliteConfig, SqliteStore};
use sagaflow_store::{NewSaga, SagaRecord, Store};

use super::args::BenchArgs;
use super::children;
use super::parked;
use crate::error::Error;
use sagaflow_server::clock::now_ms;

/// Kill-and-restart cycles measured in one run (the figure is their median).
const RESTARTS: usize = 3;
/// Finished sagas whose writes are queued at the store at once while filling the journal:
/// enough for the writer's batches (1,024 requests each) to stay full.
const FILL_IN_FLIGHT: usize = 4_096;
/// The pace the finished sagas' timestamps pretend they ran at (sagas per second).
const FILL_PACE_PER_S: u64 = 5_000;
/// How long parked calls may take to reach the participant after a (re)start.
const CALLS_TIMEOUT: Duration = Duration::from_secs(120);

/// One kill-and-restart.
#[derive(Debug, Serialize)]
pub struct Restart {
    /// From starting the coordinator to its first `/readyz` 200.
    pub ready_s: f64,
    /// From starting it until the participant had every re-sent call that may be in flight
    /// (`min(unfinished, calls_in_flight_max)`).
    pub calls_resent_s: f64,
}

/// What a restart run measured.
#[derive(Debug, Serialize)]
pub struct RestartReport {
    pub workload: &'static str,
    pub finished: u64,
    pub unfinished: usize,
    /// Time to write the finished sagas into the journal.
    pub fill_s: f64,
    pub events_per_finished_saga: f64,
    /// The first start, on the finished sagas alone.
    pub first_ready_s: f64,
    pub restarts: Vec<Restart>,
    /// The median of the restarts.
    pub restart_ready_s: f64,
    pub calls_resent_s: f64,
    /// Participant calls the coordinator has in flight at most: how many re-sends can arrive.
    pub calls_in_flight_max: usize,
    pub journal_bytes: u64,
}

impl RestartReport {
    pub fn table(&self) -> String {
        let mut out = format!(
            "workload              restart ({} finished sagas, {} unfinished)\nfill s                {:.1}\nevents per finished   {:.1}\nfirst start ready s   {:.2}\n",
            self.finished,
            self.unfinished,
            self.fill_s,
            self.events_per_finished_saga,
            self.first_ready_s
        );
        for (i, r) in self.restarts.iter().enumerate() {
            out.push_str(&format!(
                "restart {}: ready s {:.2}, calls re-sent s {:.2}\n",
                i + 1,
                r.ready_s,
                r.calls_resent_s
            ));
        }
        out.push_str(&format!(
            "restart ready s       {:.2} (median)\ncalls re-sent s       {:.2} (median)\njournal bytes         {}\n",
            self.restart_ready_s, self.calls_resent_s, self.journal_bytes
        ));
        out
    }
}

pub async fn run(
    args: &BenchArgs,
    finished: u64,
    unfinished: usize,
) -> Result<RestartReport, Error> {
    let (_participant, participant_addr) = children::participant()?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| Error::Other(format!("cannot build an HTTP client: {e}")))?;
    let temp = tempfile::tempdir().map_err(|e| Error::Other(format!("a temporary dir: {e}")))?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    let occupied = std::fs::read_dir(&data_dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return Err(Error::Input(format!(
            "{} is not empty; the restart bench fills a fresh journal",
            data_dir.display()
        )));
    }
    let definition = args
        .workload
        .definition(&format!("http://{participant_addr}"));
    let fill_started = Instant::now();
    let events = fill(&data_dir, definition, finished).await?;
    let fill_s = fill_started.elapsed().as_secs_f64();

    let started = Instant::now();
    let (mut coordinator, addr) = children::coordinator(&data_dir, "embedded")?;
    let base = format!("http://{addr}");
    children::wait_ready(&http, &format!("{base}/readyz"), &mut coordinator).await?;
    let first_ready_s = started.elapsed().as_secs_f64();
    parked::park(&http, &base, participant_addr, unfinished).await?;
    let calls_in_flight_max = sagaflow_server::Limits::default().calls_in_flight_max;
    let in_flight = unfinished.min(calls_in_flight_max) as u64;
    children::wait_parked_calls(&http, participant_addr, in_flight, CALLS_TIMEOUT).await?;

    let mut restarts = Vec::with_capacity(RESTARTS);
    for _ in 0..RESTARTS {
        let calls_before = children::parked_calls(&http, participant_addr).await?;
        drop(coordinator); // SIGKILL
        let started = Instant::now();
        let (mut restarted, _) = children::coordinator_at(&data_dir, "embedded", addr)?;
        children::wait_ready(&http, &format!("{base}/readyz"), &mut restarted).await?;
        let ready_s = started.elapsed().as_secs_f64();
        children::wait_parked_calls(
            &http,
            participant_addr,
            calls_before + in_flight,
            CALLS_TIMEOUT,
        )
        .await?;
        let calls_resent_s = started.elapsed().as_secs_f64();
        restarts.push(Restart {
            ready_s,
            calls_resent_s,
        });
        coordinator = restarted;
    }
    drop(coordinator);
    Ok(RestartReport {
        workload: args.workload.name(),
        finished,
        unfinished,
        fill_s,
        events_per_finished_saga: events as f64 / finished.max(1) as f64,
        first_ready_s,
        restart_ready_s: median(restarts.iter().map(|r| r.ready_s)),
        calls_resent_s: median(restarts.iter().map(|r| r.calls_resent_s)),
        restarts,
        calls_in_flight_max,
        journal_bytes: children::dir_bytes(&data_dir),
    })
}

/// Writes `count` completed sagas of `definition` into a fresh journal in `data_dir`; returns
/// how many events they hold.
async fn fill(
    data_dir: &std::path::Path,
    definition: serde_json::Value,
    count: u64,
) -> Result<u64, Error> {
    let spec: DefinitionSpec = serde_json::from_value(definition)
        .map_err(|e| Error::Other(format!("the workload's definition: {e}")))?;
    let mut definition = spec
        .to_definition(&DefinitionLimits::default())
        .map_err(|e| Error::Other(format!("the workload's definition: {e}")))?;
    // Stored as the coordinator stores it: canonical JSON, no version.
    definition.version = 0;
    let body = serde_json::to_string(&definition)
        .map_err(|e| Error::Other(format!("encoding the definition: {e}")))?;
    let store = SqliteStore::open(data_dir, SqliteConfig::default())
        .map_err(|e| Error::Other(format!("opening the journal: {e}")))?;
    let now_ms = now_ms();
    let (record, _) = store
        .put_definition(&definition.name, &body, now_ms)
        .await
        .map_err(|e| Error::Other(format!("storing the definition: {e}")))?;
    definition.version = record.version;
    let definition = Arc::new(definition);
    let input = Payload::from_json(r#"{"bench":true}"#).map_err(|e| Error::Other(e.to_string()))?;
    // What the bench participant answers, as the dispatcher records it.
    let output = Payload::from_json(r#"{"ok":true}"#).map_err(|e| Error::Other(e.to_string()))?;
    let first_ms = now_ms.saturating_sub(count * 1000 / FILL_PACE_PER_S);
    let store = &store;
    let mut writes = futures::stream::iter(0..count)
        .map(|index| {
            let at_ms = first_ms + index * 1000 / FILL_PACE_PER_S;
            let saga = completed_saga(&definition, &input, &output, at_ms);
            async move {
                let saga = saga?;
                let events = saga.events.len() as u64;
                store
                    .start_saga(saga)
                    .await
                    .map_err(|e| Error::Other(format!("writing a finished saga: {e}")))?;
                Ok::<u64, Error>(events)
            }
        })
        .buffer_unordered(FILL_IN_FLIGHT);
    let mut events = 0;
    while let Some(written) = writes.next().await {
        events += written?;
    }
    drop(writes);
    store
        .close()
        .await
        .map_err(|e| Error::Other(format!("closing the journal: {e}")))?;
    Ok(events)
}

/// A saga of `definition` driven to `completed` by the state machine, every call answered with
/// `output` a millisecond after it was sent: the record and events the coordinator journals.
fn completed_saga(
    definition: &Arc<Definition>,
    input: &Payload,
    output: &Payload,
    at_ms: u64,
) -> Result<NewSaga, Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let trace_id = format!("{:032x}", rand::random::<u128>().max(1));
    let (mut state, started) = SagaState::start(
        id.clone(),
        Arc::clone(definition),
        input.clone(),
        trace_id,
        at_ms,
    );
    let mut events = vec![started];
    let mut command = Command::Wake;
    // Each step takes one decision to send and one to record its answer.
    for now in (at_ms..).take(2 * definition.steps.len() + 1) {
        let decision = decide(&state, command, context(now))
            .map_err(|e| Error::Other(format!("the state machine refused: {e}")))?;
        for event in &decision.events {
            state.apply(event);
        }
        events.extend(decision.events);
        if state.status.is_terminal() {
            break;
        }
        let send = decision
            .sends
            .first()
            .ok_or_else(|| Error::Other("a saga of the workload stopped sending".into()))?;
        command = Command::Answer {
            step: send.step,
            phase: send.phase,
            attempt: send.attempt,
            outcome: Ok(output.clone()),
        };
    }
    if state.status != SagaStatus::Completed {
        return Err(Error::Other(format!(
            "a saga of the workload ended {}, not completed",
            state.status.as_str()
        )));
    }
    Ok(NewSaga {
        record: SagaRecord {
            id,
            definition: definition.name.clone(),
            version: definition.version,
            status: state.status,
            created_at_ms: at_ms,
            updated_at_ms: state.updated_at_ms,
            idempotency_key: None,
            // The API's digest is 32 hex digits; the same bytes on disk.
            request_hash: Some(format!("{:032x}", u128::from(definition.version))),
            shard: 0,
        },
        events,
        fence: None,
        handoff: false,
    })
}

fn context(now_ms: u64) -> Context {
    Context {
        now_ms,
        random: rand::random(),
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
