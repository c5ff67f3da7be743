//! `sagaflow bench --parked N`: the coordinator's memory with N sagas waiting on a slow step,
//! and how long a restart takes to be ready with them all unfinished in the journal.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::args::BenchArgs;
use super::children;
use crate::error::Error;

/// Start requests in flight at once while parking sagas.
const START_CONCURRENCY: usize = 64;

/// What a parked run measured.
#[derive(Debug, Serialize)]
pub struct ParkedReport {
    pub workload: &'static str,
    pub parked: usize,
    /// Resident memory with every saga parked.
    pub rss_parked_mb: f64,
    /// Resident memory right after start, before any saga.
    pub rss_idle_mb: f64,
    pub rss_per_parked_saga_kb: f64,
    /// From starting the restarted coordinator to its first `/readyz` 200.
    pub restart_ready_s: f64,
    pub journal_bytes: u64,
}

impl ParkedReport {
    pub fn table(&self) -> String {
        format!(
            "workload          parked\nsagas parked      {}\nrss idle MB       {:.1}\nrss parked MB     {:.1}\nrss per saga KB   {:.1}\nrestart ready s   {:.2}\njournal bytes     {}\n",
            self.parked,
            self.rss_idle_mb,
            self.rss_parked_mb,
            self.rss_per_parked_saga_kb,
            self.restart_ready_s,
            self.journal_bytes
        )
    }
}

pub async fn run(args: &BenchArgs, sagas: usize) -> Result<ParkedReport, Error> {
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
    let (mut coordinator, addr) = children::coordinator(&data_dir, &args.store)?;
    let base = format!("http://{addr}");
    children::wait_ready(&http, &format!("{base}/readyz"), &mut coordinator).await?;
    let rss_idle_mb = children::rss_mb(coordinator.pid()).unwrap_or(0.0);
    park(&http, &base, participant_addr, sagas).await?;
    // Let every saga reach its parked call, then read the memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_parked_mb = children::rss_mb(coordinator.pid()).unwrap_or(0.0);
    drop(coordinator); // SIGKILL
    let restarted_at = Instant::now();
    let (mut coordinator, addr) = children::coordinator_at(&data_dir, &args.store, addr)?;
    children::wait_ready(&http, &format!("http://{addr}/readyz"), &mut coordinator).await?;
    let restart_ready_s = restarted_at.elapsed().as_secs_f64();
    Ok(ParkedReport {
        workload: "parked",
        parked: sagas,
        rss_parked_mb,
        rss_idle_mb,
        rss_per_parked_saga_kb: (rss_parked_mb - rss_idle_mb) * 1024.0 / sagas.max(1) as f64,
        restart_ready_s,
        journal_bytes: children::dir_bytes(&data_dir),
    })
}

/// Registers the parked definition and starts `sagas` sagas on it through the coordinator at
/// `base`; each one's first step calls the participant's `/park`, which does not answer.
pub async fn park(
    http: &reqwest::Client,
    base: &str,
    participant_addr: std::net::SocketAddr,
    sagas: usize,
) -> Result<(), Error> {
    let definition = json!({"name": "bench-parked", "steps": [
        {"name": "slow", "action": {"url": format!("http://{participant_addr}/park"), "timeout_ms": 3_600_000}},
        {"name": "after", "action": {"url": format!("http://{participant_addr}/after")}}
    ]});
    http.post(format!("{base}/v1/definitions"))
        .json(&definition)
        .send()
        .await
        .map_err(|e| Error::Other(format!("registering: {e}")))?;
    let body = json!({"definition": "bench-parked", "input": {"bench": true}}).to_string();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..START_CONCURRENCY {
        let (http, base, body, next) = (http.clone(), base.to_owned(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < sagas {
                let response = http
                    .post(format!("{base}/v1/sagas"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if response.status().as_u16() != 201 {
                    return Err(format!("a start answered {}", response.status()));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| Error::Other(e.to_string()))?
            .map_err(Error::Other)?;
    }
    Ok(())
}
