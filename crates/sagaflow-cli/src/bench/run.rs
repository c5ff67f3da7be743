//! Runs a benchmark: starts the processes, drives the load, reads the figures, stops it all.

use std::sync::Arc;
use std::time::Duration;

use super::args::{Baseline, BenchArgs};
use super::children;
use super::load::{self, Op, Samples};
use super::parked::ParkedReport;
use super::procs::{self, Processes};
use super::report::{Report, RoundReport};
use super::restart::RestartReport;
use super::soak::SoakReport;
use crate::error::Error;

/// The soak's range: each tenth must hold a few sagas; a billion would take days.
const SOAK_SAGAS_MIN: u64 = 10;
const SOAK_SAGAS_MAX: u64 = 1_000_000_000;
/// Finished sagas the restart bench writes at most (about 2 KB of journal each).
const RESTART_FINISHED_MAX: u64 = 100_000_000;
/// Rounds of `--compare-direct` at most: each is two loads of `--warmup` + `--duration`.
const ROUNDS_MAX: usize = 20;

/// Runs `sagaflow bench` and prints its report.
pub fn run(args: BenchArgs) -> Result<String, Error> {
    if args.concurrency == 0 || args.concurrency > 10_000 {
        return Err(Error::Input("-c must be between 1 and 10000".into()));
    }
    if args.rate == Some(0) {
        return Err(Error::Input("--rate must be above 0".into()));
    }
    if args.duration.is_zero() {
        return Err(Error::Input("--duration must be above 0".into()));
    }
    if args.rounds == 0 || args.rounds > ROUNDS_MAX {
        return Err(Error::Input(format!(
            "--rounds must be between 1 and {ROUNDS_MAX}"
        )));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?;
    if let Some(sagas) = args.parked {
        if sagas == 0 || sagas > 1_000_000 {
            return Err(Error::Input(
                "--parked must be between 1 and 1000000".into(),
            ));
        }
        let report = runtime.block_on(super::parked::run(&args, sagas))?;
        return output(&args, &report, ParkedReport::table);
    }
    if let Some(sagas) = args.soak {
        if !(SOAK_SAGAS_MIN..=SOAK_SAGAS_MAX).contains(&sagas) {
            return Err(Error::Input(format!(
                "--soak must be between {SOAK_SAGAS_MIN} and {SOAK_SAGAS_MAX}"
            )));
        }
        let report = runtime.block_on(super::soak::run(&args, sagas))?;
        return output(&args, &report, SoakReport::table);
    }
    if let Some(finished) = args.restart_finished {
        if finished > RESTART_FINISHED_MAX {
            return Err(Error::Input(format!(
                "--restart-finished must be at most {RESTART_FINISHED_MAX}"
            )));
        }
        let unfinished = args.restart_unfinished;
        if unfinished == 0 || unfinished > 1_000_000 {
            return Err(Error::Input(
                "--restart-unfinished must be between 1 and 1000000".into(),
            ));
        }
        if args.store != "embedded" {
            return Err(Error::Input(
                "--restart-finished fills the embedded journal; --store must be embedded".into(),
            ));
        }
        let report = runtime.block_on(super::restart::run(&args, finished, unfinished))?;
        return output(&args, &report, RestartReport::table);
    }
    let report = runtime.block_on(bench(&args))?;
    output(&args, &report, Report::table)
}

/// A report as one JSON line (`--json`) or as its table.
fn output<R: serde::Serialize>(
    args: &BenchArgs,
    report: &R,
    table: impl Fn(&R) -> String,
) -> Result<String, Error> {
    Ok(if args.json {
        let mut text = serde_json::to_string(report).map_err(|e| Error::Other(e.to_string()))?;
        text.push('\n');
        text
    } else {
        table(report)
    })
}

async fn bench(args: &BenchArgs) -> Result<Report, Error> {
    // Timed first, while nothing of the run is busy yet.
    let wake_us = super::host::wake_round_trip_us();
    let (participant_process, participant_addr) = children::participant()?;
    let me = std::process::id();
    let mut direct_processes = Processes::new(&[
        ("participant", participant_process.pid()),
        ("load_generator", me),
    ]);
    let participant = format!("http://{participant_addr}");
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency.max(64) * 2)
        .build()
        .map_err(|e| Error::Other(format!("cannot build an HTTP client: {e}")))?;

    let direct_op = (args.baseline == Some(Baseline::Direct) || args.compare_direct).then(|| {
        let urls = args
            .workload
            .direct_paths()
            .into_iter()
            .map(|p| format!("{participant}{p}"))
            .collect();
        Arc::new(Op::direct(http.clone(), urls))
    });
    if let (Some(Baseline::Direct), Some(op)) = (args.baseline, &direct_op) {
        let mut samples =
            drive_measured(args, &http, Arc::clone(op), &mut direct_processes).await?;
        let mut report = base_report(args, &mut samples, "direct");
        report.store = "none".into();
        report.processes = direct_processes.shares(samples.latencies_us.len());
        report.set_wake(wake_us);
        return Ok(report);
    }
    // A single round measures `direct` before the coordinator exists, as it always did; with
    // several, the coordinator (idle meanwhile) stays up between its loads.
    let mut direct_first = match (&direct_op, args.rounds) {
        (Some(op), 1) => {
            Some(drive_measured(args, &http, Arc::clone(op), &mut direct_processes).await?)
        }
        _ => None,
    };

    let Coordinator {
        _temp,
        data_dir,
        coordinator,
        base,
        op,
        fsync_ms,
    } = Coordinator::start(args, &http, &participant).await?;
    let mut run_processes = Processes::new(&[
        ("coordinator", coordinator.pid()),
        ("participant", participant_process.pid()),
        ("load_generator", me),
    ]);
    let mut samples = Samples::default();
    let mut direct_samples = direct_op.as_ref().map(|_| Samples::default());
    let mut window = Window::default();
    let mut rounds = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        let direct = match (direct_first.take(), &direct_op) {
            (Some(first), _) => Some(first),
            (None, Some(op)) => {
                Some(drive_measured(args, &http, Arc::clone(op), &mut direct_processes).await?)
            }
            (None, None) => None,
        };
        // Read the coordinator's counters when the measured window opens and closes.
        let probe = tokio::spawn(probe_window(
            http.clone(),
            Some(base.clone()),
            run_processes.pids(),
            args.warmup,
            args.duration,
        ));
        let round = drive(args, Arc::clone(&op)).await;
        let (before, after) = probe
            .await
            .map_err(|e| Error::Other(format!("the probe failed: {e}")))?;
        window.add(&before, &after, round.latencies_us.len());
        run_processes.add(&before.processes, &after.processes);
        let rate = round.per_second();
        let direct_rate = direct.as_ref().map(Samples::per_second);
        rounds.push(RoundReport {
            sagas_per_s: rate,
            direct_sagas_per_s: direct_rate,
            ratio_to_direct: direct_rate.map(|d| rate / d.max(1e-9)),
        });
        samples.absorb(round);
        if let (Some(all), Some(direct)) = (direct_samples.as_mut(), direct) {
            all.absorb(direct);
        }
    }
    let mut report = base_report(args, &mut samples, "coordinator");
    report.fsync_p50_ms = fsync_ms.map(|(p50, _)| p50);
    report.fsync_p99_ms = fsync_ms.map(|(_, p99)| p99);
    report.cpu_s_per_saga = (!window.cpu_unread).then(|| window.cpu_s / window.sagas.max(1) as f64);
    if window.machine_rounds > 0 {
        report.machine_idle_pct = Some(window.idle_pct / window.machine_rounds as f64);
        report.machine_steal_pct = Some(window.steal_pct / window.machine_rounds as f64);
    }
    report.set_wake(wake_us);
    report.processes = run_processes.shares(window.sagas);
    report.rss_peak_mb = children::rss_peak_mb(coordinator.pid());
    report.journal_bytes_per_saga =
        Some(children::dir_bytes(&data_dir) as f64 / window.sagas_started.max(1.0));
    if window.commits > 0.0 {
        report.events_per_durable_write = Some(window.events / window.commits);
    }
    report.journal_write_ms_mean = window.journal_write.mean_ms();
    report.participant_call_ms_mean = window.participant_call.mean_ms();
    if let Some(mut direct) = direct_samples {
        let direct_rate = direct.per_second();
        report.direct_sagas_per_s = Some(direct_rate);
        report.ratio_to_direct = Some(report.sagas_per_s / direct_rate.max(1e-9));
        report.direct_p50_ms = Some(direct.quantile_ms(0.5));
        report.direct_p99_ms = Some(direct.quantile_ms(0.99));
        report.direct_processes = direct_processes.shares(direct.latencies_us.len());
    }
    if let (Some(run), Some(direct)) = (&report.processes, &report.direct_processes) {
        report.cpu_ratio_to_direct =
            Some(procs::total_cpu_s_per_saga(direct) / procs::total_cpu_s_per_saga(run).max(1e-12));
    }
    if args.rounds > 1 {
        report.rounds = Some(rounds);
    }
    coordinator.stop();
    if report.sagas == 0 {
        return Err(Error::Other(no_saga_finished(args, &report)));
    }
    Ok(report)
}

/// The coordinator's counters summed over the measured windows of every round.
#[derive(Default)]
struct Window {
    cpu_s: f64,
    /// A round could not read the coordinator's CPU time: no CPU figure then.
    cpu_unread: bool,
    sagas: usize,
    idle_pct: f64,
    steal_pct: f64,
    machine_rounds: usize,
    /// The latest reading: the journal's size is divided by every saga started so far.
    sagas_started: f64,
    commits: f64,
    events: f64,
    journal_write: Totals,
    participant_call: Totals,
}

impl Window {
    fn add(&mut self, before: &Counters, after: &Counters, sagas: usize) {
        match after.cpu_s.zip(before.cpu_s) {
            Some((after, before)) => self.cpu_s += after - before,
            None => self.cpu_unread = true,
        }
        self.sagas += sagas;
        if let Some((idle, steal)) = before
            .machine
            .zip(after.machine)
            .and_then(|(b, a)| super::host::shares(b, a))
        {
            self.idle_pct += idle;
            self.steal_pct += steal;
            self.machine_rounds += 1;
        }
        self.sagas_started = after.sagas_started;
        self.commits += after.journal_commits - before.journal_commits;
        self.events += after.journal_events - before.journal_events;
        self.journal_write
            .add(after.journal_write.since(before.journal_write));
        self.participant_call
            .add(after.participant_call.since(before.participant_call));
    }
}

/// Why a run measured nothing, as one line: a rate of zero is no figure to report.
fn no_saga_finished(args: &BenchArgs, report: &Report) -> String {
    let mut message = format!(
        "no saga finished in the {} s measured ({} errors",
        args.duration.as_secs_f64(),
        report.errors
    );
    if let Some(first) = &report.first_error {
        message.push_str(&format!(", the first: {first}"));
    }
    message.push(')');
    if args.store.starts_with("postgres") {
        message.push_str(
            "; on PostgreSQL, the shards may still be leased by a coordinator that was killed \
             less than a lease time ago: run again once it has lapsed",
        );
    }
    message
}

/// Drives a load with its processes' counters read when the measured window opens and closes.
async fn drive_measured(
    args: &BenchArgs,
    http: &reqwest::Client,
    op: Arc<Op>,
    processes: &mut Processes,
) -> Result<Samples, Error> {
    let probe = tokio::spawn(probe_window(
        http.clone(),
        None,
        processes.pids(),
        args.warmup,
        args.duration,
    ));
    let samples = drive(args, op).await;
    let (before, after) = probe
        .await
        .map_err(|e| Error::Other(format!("the probe failed: {e}")))?;
    processes.add(&before.processes, &after.processes);
    Ok(samples)
}

async fn drive(args: &BenchArgs, op: Arc<Op>) -> Samples {
    match args.rate {
        Some(rate) => load::open_loop(op, rate, args.warmup, args.duration).await,
        None => load::closed_loop(op, args.concurrency, args.warmup, args.duration).await,
    }
}

/// The coordinator of a run, started on the run's store, ready, with the workload registered.
pub(super) struct Coordinator {
    /// The data directory when none was given; removed when dropped.
    pub _temp: tempfile::TempDir,
    pub data_dir: std::path::PathBuf,
    pub coordinator: children::Process,
    pub base: String,
    /// One saga of the workload, as the load generator starts it.
    pub op: Arc<Op>,
    /// `(p50, p99)` ms of an fsync on the embedded journal's disk, timed before it started.
    pub fsync_ms: Option<(f64, f64)>,
}

impl Coordinator {
    pub(super) async fn start(
        args: &BenchArgs,
        http: &reqwest::Client,
        participant: &str,
    ) -> Result<Coordinator, Error> {
        let temp =
            tempfile::tempdir().map_err(|e| Error::Other(format!("a temporary dir: {e}")))?;
        let data_dir = args
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().to_owned());
        // Timed before the coordinator starts, so nothing else writes there meanwhile.
        let fsync_ms = (args.store == "embedded")
            .then(|| {
                std::fs::create_dir_all(&data_dir)
                    .and_then(|()| super::disk::fsync_ms(&data_dir))
                    .ok()
            })
            .flatten();
        let (mut coordinator, addr) = children::coordinator(&data_dir, &args.store)?;
        let base = format!("http://{addr}");
        children::wait_ready(http, &format!("{base}/readyz"), &mut coordinator).await?;
        let definition = args.workload.definition(participant);
        let response = http
            .post(format!("{base}/v1/definitions"))
            .json(&definition)
            .send()
            .await
            .map_err(|e| Error::Other(format!("registering the workload: {e}")))?;
        if !response.status().is_success() {
            return Err(Error::Other(format!(
                "registering the workload: HTTP {}",
                response.status()
            )));
        }
        let op = Arc::new(Op::saga(
            http.clone(),
            &base,
            definition["name"].as_str().unwrap_or_default(),
            args.workload.expected_status(),
        ));
        Ok(Coordinator {
            _temp: temp,
            data_dir,
            coordinator,
            base,
            op,
            fsync_ms,
        })
    }
}

fn base_report(args: &BenchArgs, samples: &mut Samples, mode: &str) -> Report {
    let sagas_per_s = samples.per_second();
    Report {
        workload: args.workload.name().into(),
        mode: match args.rate {
            Some(_) => format!("{mode}, open loop"),
            None => format!("{mode}, closed loop"),
        },
        concurrency: args.concurrency,
        rate: args.rate,
        store: args.store.clone(),
        duration_s: args.duration.as_secs_f64(),
        sagas: samples.latencies_us.len() as u64,
        sagas_per_s,
        steps_per_s: sagas_per_s * args.workload.calls_per_saga() as f64,
        p50_ms: samples.quantile_ms(0.5),
        p90_ms: samples.quantile_ms(0.9),
        p99_ms: samples.quantile_ms(0.99),
        p999_ms: samples.quantile_ms(0.999),
        max_ms: samples.quantile_ms(1.0),
        errors: samples.errors,
        first_error: samples.first_error.clone(),
        cpu_s_per_saga: None,
        rss_peak_mb: None,
        journal_bytes_per_saga: None,
        events_per_durable_write: None,
        journal_write_ms_mean: None,
        participant_call_ms_mean: None,
        direct_sagas_per_s: None,
        ratio_to_direct: None,
        direct_p50_ms: None,
        direct_p99_ms: None,
        fsync_p50_ms: None,
        fsync_p99_ms: None,
        machine_idle_pct: None,
        machine_steal_pct: None,
        wake_round_trip_us: None,
        wake_round_trip_cpu_us: None,
        processes: None,
        direct_processes: None,
        cpu_ratio_to_direct: None,
        rounds: None,
    }
}

#[derive(Default)]
struct Counters {
    cpu_s: Option<f64>,
    machine: Option<super::host::CpuTimes>,
    sagas_started: f64,
    journal_commits: f64,
    journal_events: f64,
    /// The coordinator's histograms of a journal write's time (queueing and group commit) and
    /// of a participant call's: their sums (seconds) and counts.
    journal_write: Totals,
    participant_call: Totals,
    /// The run's processes, in the order of the pids probed.
    processes: Vec<procs::ProcCounters>,
}

/// Reads the counters when the measured window opens and closes: the processes `pids` (the
/// first is the coordinator, when `base` names one) and the coordinator's metrics.
async fn probe_window(
    http: reqwest::Client,
    base: Option<String>,
    pids: Vec<u32>,
    warmup: Duration,
    duration: Duration,
) -> (Counters, Counters) {
    tokio::time::sleep(warmup).await;
    let before = counters(&http, base.as_deref(), &pids).await;
    tokio::time::sleep(duration).await;
    let after = counters(&http, base.as_deref(), &pids).await;
    (before, after)
}

async fn counters(http: &reqwest::Client, base: Option<&str>, pids: &[u32]) -> Counters {
    let processes = procs::read_all(pids);
    let machine = super::host::cpu_times();
    let Some(base) = base else {
        return Counters {
            machine,
            processes,
            ..Counters::default()
        };
    };
    let cpu_s = processes.first().and_then(procs::ProcCounters::cpu_s);
    let text = match http.get(format!("{base}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    Counters {
        cpu_s,
        machine,
        processes,
        sagas_started: metric(&text, "sagaflow_sagas_started_total"),
        journal_commits: metric(&text, "sagaflow_journal_commits_total"),
        journal_events: metric(&text, "sagaflow_journal_events_total"),
        journal_write: Totals::of(&text, "sagaflow_journal_write_duration_seconds"),
        participant_call: Totals::of(&text, "sagaflow_step_attempt_duration_seconds"),
    }
}

/// A histogram's sum and count, over all its label sets (a call's phases).
#[derive(Clone, Copy, Default)]
struct Totals {
    sum: f64,
    count: f64,
}

impl Totals {
    fn of(text: &str, histogram: &str) -> Totals {
        Totals {
            sum: metric(text, &format!("{histogram}_sum")),
            count: metric(text, &format!("{histogram}_count")),
        }
    }

    /// What was added between `before` and `self`.
    fn since(self, before: Totals) -> Totals {
        Totals {
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    fn add(&mut self, other: Totals) {
        self.sum += other.sum;
        self.count += other.count;
    }

    /// The mean in milliseconds, if anything was observed.
    fn mean_ms(self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count * 1e3)
    }
}

/// A metric's value in Prometheus text: the sum of its samples over all its label sets (an
/// unlabelled counter has one), each sample's value being the first field after its labels.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP sagaflow_step_attempt_duration_seconds Time from sending an attempt to its answer.
# TYPE sagaflow_step_attempt_duration_seconds histogram
sagaflow_step_attempt_duration_seconds_sum{phase=\"action\"} 1.5
sagaflow_step_attempt_duration_seconds_count{phase=\"action\"} 1000
sagaflow_step_attempt_duration_seconds_bucket{le=\"0.00025\",phase=\"action\"} 10
sagaflow_step_attempt_duration_seconds_sum{phase=\"compensation\"} 0.5
sagaflow_step_attempt_duration_seconds_count{phase=\"compensation\"} 1000
sagaflow_journal_write_duration_seconds_sum 3.0
sagaflow_journal_write_duration_seconds_count 4000
sagaflow_journal_write_duration_seconds_sum_of_something_else 99
sagaflow_journal_commits_total 7 # {trace_id=\"abc\"} 1.0
";

    #[test]
    fn a_histograms_totals_sum_its_label_sets_and_nothing_named_alike() {
        let calls = Totals::of(TEXT, "sagaflow_step_attempt_duration_seconds");
        assert_eq!((calls.sum, calls.count), (2.0, 2000.0));
        assert_eq!(calls.mean_ms(), Some(1.0));
        let writes = Totals::of(TEXT, "sagaflow_journal_write_duration_seconds");
        assert_eq!((writes.sum, writes.count), (3.0, 4000.0));
        assert_eq!(writes.mean_ms(), Some(0.75));
        // An unlabelled counter is its one sample, an exemplar after it left out.
        assert_eq!(metric(TEXT, "sagaflow_journal_commits_total"), 7.0);
        assert_eq!(metric(TEXT, "sagaflow_journal_events_total"), 0.0);
    }

    #[test]
    fn a_window_means_what_it_added_and_nothing_when_nothing_was_observed() {
        let before = Totals {
            sum: 1.0,
            count: 100.0,
        };
        let after = Totals {
            sum: 1.5,
            count: 600.0,
        };
        let mut window = Totals::default();
        assert_eq!(window.mean_ms(), None);
        window.add(after.since(before));
        window.add(after.since(before));
        assert_eq!(window.mean_ms(), Some(1.0));
        assert_eq!(
            Totals::of("", "sagaflow_journal_write_duration_seconds").mean_ms(),
            None
        );
    }
}
