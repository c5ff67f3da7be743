//! The demo's result: counts, retries, duplicates, speed, restarts and the invariant check,
//! as a table for people or one JSON object (`--json`).

use std::collections::BTreeMap;
use std::time::Duration;

use sagaflow_shop::Service;
use sagaflow_shop::chaos::Injected;
use sagaflow_shop::check::Violation;
use serde::Serialize;

use crate::table::render_fields;

/// What a demo run (or `--check`) found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Orders in the workload (with `--check`: orders the data directory's runs started).
    pub orders: usize,
    /// Orders whose saga completed (confirmed).
    pub completed: usize,
    /// Orders whose saga was compensated (refused somewhere, every effect undone).
    pub compensated: usize,
    /// Orders whose saga failed (a compensation gave up).
    pub failed: usize,
    /// Orders whose saga had not ended (or could not be started) when the run stopped.
    pub non_terminal: usize,
    /// Step attempts beyond the first, over every saga of the run.
    pub retries: Option<u64>,
    /// Duplicate deliveries the participants' ledgers answered without applying them again
    /// (their ledgers' count: over every run of a reused `--data-dir`).
    pub duplicates_deduped: u64,
    /// Times the coordinator was killed with SIGKILL and started again.
    pub coordinator_restarts: u32,
    /// Orders per second, from the first start to the last terminal answer.
    pub throughput_per_s: Option<f64>,
    /// Median latency from an order's first start request to its terminal answer.
    pub p50_ms: Option<u64>,
    /// 99th percentile of the same.
    pub p99_ms: Option<u64>,
    /// The workload's duration.
    pub elapsed_s: Option<f64>,
    /// Faults the services injected.
    pub injected: Option<Injected>,
    /// Where each service kept its data.
    pub stores: BTreeMap<Service, String>,
    /// The data directory (`None` when it was temporary and is gone).
    pub data_dir: Option<String>,
    /// The workload's seed.
    pub seed: Option<u64>,
    /// Every invariant that does not hold; empty when all hold.
    pub violations: Vec<Violation>,
}

impl Report {
    /// Whether the run proved what it should: every order terminal and no violation.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.non_terminal == 0
    }

    /// The table printed without `--json`.
    pub fn render(&self) -> String {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        let mut fields = vec![
            ("orders", self.orders.to_string()),
            ("completed", self.completed.to_string()),
            ("compensated", self.compensated.to_string()),
            ("failed", self.failed.to_string()),
            ("non-terminal", self.non_terminal.to_string()),
            (
                "retries",
                or_dash(
                    self.retries
                        .map(|r| format!("{r} (step attempts beyond the first)")),
                ),
            ),
            (
                "duplicates deduped",
                format!(
                    "{} (repeated deliveries the participants answered from their ledgers)",
                    self.duplicates_deduped
                ),
            ),
            (
                "throughput",
                or_dash(self.throughput_per_s.map(|t| format!("{t:.1} orders/s"))),
            ),
            (
                "latency p50 / p99",
                or_dash(
                    self.p50_ms
                        .zip(self.p99_ms)
                        .map(|(p50, p99)| format!("{p50} ms / {p99} ms")),
                ),
            ),
            (
                "coordinator restarts",
                self.coordinator_restarts.to_string(),
            ),
        ];
        if let Some(i) = &self.injected {
            fields.push((
                "injected faults",
                format!(
                    "{} failures, {} lost answers, {} slow answers",
                    i.failures, i.lost_answers, i.slow
                ),
            ));
        }
        for (service, store) in &self.stores {
            fields.push((service.name(), store.clone()));
        }
        let verdict = if self.violations.is_empty() {
            "hold: stock, money and slots conserved; every order all-or-nothing".to_owned()
        } else {
            format!("VIOLATED ({} violations)", self.violations.len())
        };
        fields.push(("invariants", verdict));
        let mut out = render_fields(&fields);
        for v in &self.violations {
            out.push_str(&format!(
                "violation  order {}: {}\n",
                v.order.as_deref().unwrap_or("-"),
                v.message
            ));
        }
        out
    }
}

/// The `p`th percentile (nearest rank) of `latencies`, in whole milliseconds.
pub fn percentile_ms(latencies: &[Duration], p: f64) -> Option<u64> {
    if latencies.is_empty() {
        return None;
    }
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[index].as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = ms(&[50, 10, 40, 20, 30]);
        assert_eq!(percentile_ms(&l, 50.0), Some(30));
        assert_eq!(percentile_ms(&l, 99.0), Some(50));
        assert_eq!(percentile_ms(&l, 0.0), Some(10));
        assert_eq!(percentile_ms(&[], 50.0), None);
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_ms(&ms(&hundred), 99.0), Some(99));
    }

    #[test]
    fn the_json_has_the_fields_scripts_rely_on() {
        let report = Report {
            orders: 3,
            violations: vec![Violation {
                order: Some("o-1".into()),
                message: "charged 2 times".into(),
            }],
            ..Report::default()
        };
        let json = serde_json::to_value(&report).expect("serializes");
        for field in [
            "orders",
            "completed",
            "compensated",
            "failed",
            "non_terminal",
            "duplicates_deduped",
            "coordinator_restarts",
            "violations",
            "retries",
            "throughput_per_s",
            "p50_ms",
            "p99_ms",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        assert_eq!(json["violations"][0]["order"], "o-1");
        assert!(!report.passed());
    }

    #[test]
    fn the_table_names_each_violation_with_its_order() {
        let report = Report {
            orders: 1,
            violations: vec![Violation {
                order: Some("o-7".into()),
                message: "holds 2 units".into(),
            }],
            ..Report::default()
        };
        let table = report.render();
        assert!(table.contains("VIOLATED (1 violations)"), "{table}");
        assert!(table.contains("order o-7: holds 2 units"), "{table}");
    }
}
