//! What the bench reports, as a table or one JSON object.

use std::collections::BTreeMap;

use serde::Serialize;

use super::procs::ProcessShare;

/// One run's figures.
#[derive(Debug, Serialize)]
pub struct Report {
    pub workload: String,
    pub mode: String,
    pub concurrency: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    pub store: String,
    pub duration_s: f64,
    pub sagas: u64,
    pub sagas_per_s: f64,
    pub steps_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Coordinator CPU (user + system) over the measured window, per saga.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_s_per_saga: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_peak_mb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_bytes_per_saga: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_durable_write: Option<f64>,
    /// Where a saga's time goes, from the coordinator's own histograms over the measured
    /// window: a journal write's mean time (queueing and group commit, its sync included;
    /// `saga-3` makes four), and a participant call's, from sending it to its answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_write_ms_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant_call_ms_mean: Option<f64>,
    /// The `direct` baseline of the same run, when it was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_sagas_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_direct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_p99_ms: Option<f64>,
    /// One 4 KiB write and `fdatasync` on the embedded journal's disk, timed before the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsync_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsync_p99_ms: Option<f64>,
    /// The whole machine over the measured window: idle (or waiting for the disk), and taken
    /// by the hypervisor for other guests (`steal`), in % of all its CPUs' time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_idle_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_steal_pct: Option<f64>,
    /// Two threads waking each other in turn, timed before the run: wall and CPU time of one
    /// round trip (two wake-ups), in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake_round_trip_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake_round_trip_cpu_us: Option<f64>,
    /// Each process of the run (`coordinator`, `participant`, `load_generator`): its CPU and
    /// context switches per saga over the measured windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<BTreeMap<String, ProcessShare>>,
    /// The same for the `direct` baseline's processes (`participant`, `load_generator`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_processes: Option<BTreeMap<String, ProcessShare>>,
    /// The CPU per saga of all of `direct`'s processes over all of the run's: on a machine
    /// that the load keeps busy, `ratio_to_direct` follows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ratio_to_direct: Option<f64>,
    /// With `--rounds` above 1: each round's rates; the figures above are over all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds: Option<Vec<RoundReport>>,
}

/// One round of `--compare-direct --rounds N`: its `direct` load, then the coordinator's.
#[derive(Debug, Serialize)]
pub struct RoundReport {
    pub sagas_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_sagas_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_direct: Option<f64>,
}

impl Report {
    pub fn set_wake(&mut self, wake_us: Option<(f64, f64)>) {
        self.wake_round_trip_us = wake_us.map(|(wall, _)| wall);
        self.wake_round_trip_cpu_us = wake_us.map(|(_, cpu)| cpu);
    }

    /// The report as aligned lines.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("workload".into(), self.workload.clone()),
            ("mode".into(), self.mode.clone()),
            ("store".into(), self.store.clone()),
            (
                "measured".into(),
                match &self.rounds {
                    Some(rounds) => format!("{} rounds of {:.1} s", rounds.len(), self.duration_s),
                    None => format!("{:.1} s", self.duration_s),
                },
            ),
            ("sagas".into(), self.sagas.to_string()),
            ("sagas/s".into(), format!("{:.0}", self.sagas_per_s)),
            ("steps/s".into(), format!("{:.0}", self.steps_per_s)),
            (
                "latency ms".into(),
                format!(
                    "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                    self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
                ),
            ),
            ("errors".into(), self.errors.to_string()),
        ];
        let mut optional = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                rows.push((name.into(), value));
            }
        };
        optional("first error", self.first_error.clone());
        optional(
            "cpu s/saga",
            self.cpu_s_per_saga.map(|v| format!("{:.6}", v)),
        );
        optional("rss peak MB", self.rss_peak_mb.map(|v| format!("{v:.1}")));
        optional(
            "journal B/saga",
            self.journal_bytes_per_saga.map(|v| format!("{v:.0}")),
        );
        optional(
            "events/durable write",
            self.events_per_durable_write.map(|v| format!("{v:.1}")),
        );
        optional(
            "mean ms",
            self.journal_write_ms_mean
                .zip(self.participant_call_ms_mean)
                .map(|(write, call)| {
                    format!("journal write {write:.3}  participant call {call:.3}")
                }),
        );
        optional(
            "direct sagas/s",
            self.direct_sagas_per_s.map(|v| format!("{v:.0}")),
        );
        optional(
            "ratio to direct",
            self.ratio_to_direct.map(|v| format!("{v:.2}")),
        );
        optional(
            "direct latency ms",
            self.direct_p50_ms
                .zip(self.direct_p99_ms)
                .map(|(p50, p99)| format!("p50 {p50:.2}  p99 {p99:.2}")),
        );
        optional(
            "disk fsync ms",
            self.fsync_p50_ms
                .zip(self.fsync_p99_ms)
                .map(|(p50, p99)| format!("p50 {p50:.3}  p99 {p99:.3}  (4 KiB, before the run)")),
        );
        optional(
            "machine cpu",
            self.machine_idle_pct
                .zip(self.machine_steal_pct)
                .map(|(idle, steal)| format!("idle {idle:.1} %  steal {steal:.1} %")),
        );
        optional(
            "thread wake-up",
            self.wake_round_trip_us
                .zip(self.wake_round_trip_cpu_us)
                .map(|(wall, cpu)| {
                    format!("round trip {wall:.1} us, {cpu:.1} us of CPU  (before the run)")
                }),
        );
        let per_process = |shares: &Option<BTreeMap<String, ProcessShare>>| {
            shares.as_ref().map(|shares| {
                shares
                    .iter()
                    .map(|(name, share)| {
                        format!(
                            "{name} {:.0} us {:.2} sw",
                            share.cpu_s_per_saga * 1e6,
                            share.switches_per_saga
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
            })
        };
        optional("cpu, switches/saga", per_process(&self.processes));
        for (name, share) in self.processes.iter().flatten() {
            let threads = share
                .threads_cpu_s_per_saga
                .iter()
                .map(|(thread, cpu_s)| format!("{thread} {:.1} us", cpu_s * 1e6))
                .collect::<Vec<_>>();
            if threads.len() > 1 {
                optional(&format!("{name} threads/saga"), Some(threads.join("  ")));
            }
        }
        optional(
            "direct cpu, switches/saga",
            per_process(&self.direct_processes),
        );
        optional(
            "cpu ratio to direct",
            self.cpu_ratio_to_direct.map(|v| format!("{v:.2}")),
        );
        for (i, round) in self.rounds.iter().flatten().enumerate() {
            let mut line = format!("{:.0} sagas/s", round.sagas_per_s);
            if let (Some(direct), Some(ratio)) = (round.direct_sagas_per_s, round.ratio_to_direct) {
                line.push_str(&format!("  direct {direct:.0}  ratio {ratio:.2}"));
            }
            rows.push((format!("round {}", i + 1), line));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}
