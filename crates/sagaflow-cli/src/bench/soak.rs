//! `sagaflow bench --soak N`: the coordinator's resident memory while it drives N sagas to
//! their end, to show that nothing it keeps grows with the sagas it has finished.
//!
//! The load is the closed loop of the timed bench (`-c` clients, `wait_ms`), run until N sagas
//! were started. The coordinator keeps its default retention (7 days: nothing is purged during
//! the run), so the journal grows on disk; what is measured is the process's `VmRSS` (not
//! `VmHWM`), read after every tenth of the sagas.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

use super::args::BenchArgs;
use super::children;
use super::load;
use super::run::Coordinator;
use crate::error::Error;

/// Memory samples over the run: one after every tenth of the sagas. The first is the warm one.
const SAMPLES: u64 = 10;

/// One reading of the coordinator's memory.
#[derive(Clone, Debug, Serialize)]
pub struct RssSample {
    /// Sagas that had succeeded when it was read.
    pub sagas: u64,
    pub elapsed_s: f64,
    pub rss_mb: f64,
}

/// What a soak measured.
#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub workload: &'static str,
    pub mode: &'static str,
    pub concurrency: usize,
    /// Sagas that ended in the workload's status.
    pub sagas: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed_s: f64,
    pub sagas_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Resident memory once ready, before any saga.
    pub rss_idle_mb: f64,
    pub samples: Vec<RssSample>,
    /// Resident memory after the first tenth of the sagas.
    pub rss_warm_mb: f64,
    /// Over the samples from the warm one on.
    pub rss_min_mb: f64,
    pub rss_max_mb: f64,
    pub rss_last_mb: f64,
    /// `(max - min) / min` over the samples from the warm one on.
    pub rss_spread: f64,
    /// `(last - warm) / warm`.
    pub rss_growth: f64,
    pub journal_bytes: u64,
}

impl SoakReport {
    pub fn table(&self) -> String {
        let mut out = format!(
            "workload          {} (soak, -c {})\nsagas             {}\nerrors            {}\nelapsed s         {:.1}\nsagas/s           {:.0}\np50 / p99 / max ms {:.2} / {:.2} / {:.2}\nrss idle MB       {:.1}\n",
            self.workload,
            self.concurrency,
            self.sagas,
            self.errors,
            self.elapsed_s,
            self.sagas_per_s,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.rss_idle_mb
        );
        out.push_str("\n    sagas   elapsed s   RSS MB\n");
        for s in &self.samples {
            out.push_str(&format!(
                "{:>9} {:>11.1} {:>8.1}\n",
                s.sagas, s.elapsed_s, s.rss_mb
            ));
        }
        out.push_str(&format!(
            "\nrss warm MB       {:.1}\nrss min/max MB    {:.1} / {:.1}\nrss last MB       {:.1}\nspread            {:.1} %\ngrowth warm→last  {:.1} %\njournal bytes     {}\n",
            self.rss_warm_mb,
            self.rss_min_mb,
            self.rss_max_mb,
            self.rss_last_mb,
            self.rss_spread * 100.0,
            self.rss_growth * 100.0,
            self.journal_bytes
        ));
        if let Some(e) = &self.first_error {
            out.push_str(&format!("first error       {e}\n"));
        }
        out
    }
}

pub async fn run(args: &BenchArgs, sagas: u64) -> Result<SoakReport, Error> {
    let (_participant, participant_addr) = children::participant()?;
    let participant = format!("http://{participant_addr}");
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency.max(64) * 2)
        .build()
        .map_err(|e| Error::Other(format!("cannot build an HTTP client: {e}")))?;
    let Coordinator {
        _temp,
        data_dir,
        mut coordinator,
        op,
        ..
    } = Coordinator::start(args, &http, &participant).await?;
    let rss_idle_mb = children::rss_mb(coordinator.pid()).unwrap_or(0.0);
    let every = (sagas / SAMPLES).max(1);
    let samples = Arc::new(Mutex::new(Vec::with_capacity(SAMPLES as usize)));
    let started = Instant::now();
    let pid = coordinator.pid();
    let sampler = {
        let samples = Arc::clone(&samples);
        let quiet = args.json;
        Arc::new(move |succeeded: u64| {
            if !succeeded.is_multiple_of(every) {
                return;
            }
            let sample = RssSample {
                sagas: succeeded,
                elapsed_s: started.elapsed().as_secs_f64(),
                rss_mb: children::rss_mb(pid).unwrap_or(0.0),
            };
            if !quiet {
                eprintln!(
                    "soak: {} sagas, {:.0} s, RSS {:.1} MB",
                    sample.sagas, sample.elapsed_s, sample.rss_mb
                );
            }
            samples.lock().push(sample);
        })
    };
    let mut run = load::closed_loop_count(op, args.concurrency, sagas, sampler).await;
    if !coordinator.is_running() {
        return Err(Error::Other("the coordinator died during the soak".into()));
    }
    let mut samples = std::mem::take(&mut *samples.lock());
    // Clients report out of order; the memory read at the k-th success belongs at k.
    samples.sort_by_key(|s| s.sagas);
    let rss: Vec<f64> = samples.iter().map(|s| s.rss_mb).collect();
    let rss_warm_mb = rss.first().copied().unwrap_or(0.0);
    let rss_last_mb = rss.last().copied().unwrap_or(0.0);
    let rss_min_mb = rss.iter().copied().fold(f64::INFINITY, f64::min);
    let rss_max_mb = rss.iter().copied().fold(0.0, f64::max);
    let rss_min_mb = if rss_min_mb.is_finite() {
        rss_min_mb
    } else {
        0.0
    };
    Ok(SoakReport {
        workload: args.workload.name(),
        mode: "soak",
        concurrency: args.concurrency,
        sagas: run.latencies_us.len() as u64,
        errors: run.errors,
        first_error: run.first_error.clone(),
        elapsed_s: run.window.as_secs_f64(),
        sagas_per_s: run.per_second(),
        p50_ms: run.quantile_ms(0.5),
        p99_ms: run.quantile_ms(0.99),
        max_ms: run.quantile_ms(1.0),
        rss_idle_mb,
        samples,
        rss_warm_mb,
        rss_min_mb,
        rss_max_mb,
        rss_last_mb,
        rss_spread: (rss_max_mb - rss_min_mb) / rss_min_mb.max(1e-9),
        rss_growth: (rss_last_mb - rss_warm_mb) / rss_warm_mb.max(1e-9),
        journal_bytes: children::dir_bytes(&data_dir),
    })
}
