//! The bench's command line.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// `sagaflow bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The saga to run: `saga-3` (3 steps succeed), `saga-3-fail` (step 3 refuses, two
    /// compensations), `saga-10` (10 steps).
    #[arg(long, value_enum, default_value_t = Workload::Saga3)]
    pub workload: Workload,

    /// Closed loop: this many clients, each starting a saga as soon as its last one ended.
    #[arg(short = 'c', long, default_value_t = 64)]
    pub concurrency: usize,

    /// Open loop instead: start this many sagas per second whatever happens, and measure
    /// latency from each one's intended start (a stall is not hidden).
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<u64>,

    /// How long to measure, e.g. `10s`, `500ms`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: std::time::Duration,

    /// How long to run before measuring.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub warmup: std::time::Duration,

    /// Where the coordinator keeps its journal: `embedded` (SQLite in a fresh temporary
    /// directory, fsync on every durable write) or a `postgres://` URL.
    #[arg(long, default_value = "embedded")]
    pub store: String,

    /// `direct`: run the same load with no coordinator and no durability (the floor).
    #[arg(long, value_enum)]
    pub baseline: Option<Baseline>,

    /// Also run the `direct` baseline in the same run and report the ratio.
    #[arg(long)]
    pub compare_direct: bool,

    /// With `--compare-direct`: alternate the `direct` and coordinator loads this many times
    /// (each its own warm-up and duration, one coordinator throughout), so that a host whose
    /// speed drifts between minutes moves both sides of the ratio alike. The figures are over
    /// all rounds; the JSON lists each round's too.
    #[arg(long, default_value_t = 1, requires = "compare_direct")]
    pub rounds: usize,

    /// Instead of a load: start this many sagas whose first step never answers (parked), report
    /// the coordinator's memory with them all in flight, then `kill -9` it and time the restart
    /// until `/readyz`.
    #[arg(long, value_name = "SAGAS")]
    pub parked: Option<usize>,

    /// Instead of a timed load: drive the workload (closed loop, `-c` clients) until this many
    /// sagas were started, reading the coordinator's resident memory (VmRSS) after every tenth of
    /// them; reports how much it moved after the first tenth.
    #[arg(long, value_name = "SAGAS", conflicts_with_all = ["parked", "rate", "baseline", "compare_direct"])]
    pub soak: Option<u64>,

    /// Instead of a load: write this many finished sagas into a fresh journal, park
    /// `--restart-unfinished` sagas through the coordinator, then `kill -9` it and time restarts
    /// until `/readyz` and until the parked calls are sent again.
    #[arg(long, value_name = "SAGAS", conflicts_with_all = ["parked", "soak", "rate", "baseline", "compare_direct"])]
    pub restart_finished: Option<u64>,

    /// With `--restart-finished`: the unfinished sagas in the journal at each restart.
    #[arg(
        long,
        value_name = "SAGAS",
        default_value_t = 10_000,
        requires = "restart_finished"
    )]
    pub restart_unfinished: usize,

    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Keep the coordinator's data directory here instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    #[value(name = "saga-3")]
    Saga3,
    #[value(name = "saga-3-fail")]
    Saga3Fail,
    #[value(name = "saga-10")]
    Saga10,
}

/// The baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Baseline {
    /// The load generator calls the participant itself.
    Direct,
}

/// `sagaflow bench-participant` (hidden): the minimal participant the bench starts.
#[derive(Debug, Args)]
pub struct BenchParticipantArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Stop when stdin reaches its end (the bench that started it is gone).
    #[arg(long)]
    pub stop_with_stdin: bool,
}

/// `10s`, `250ms`, `2m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
