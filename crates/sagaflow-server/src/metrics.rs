//! Prometheus metrics. Labels have bounded values only: never a saga id.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub phase: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric the coordinator exports.
pub struct Metrics {
    registry: Registry,
    pub sagas_started: Counter,
    pub sagas_finished: Family<StatusLabel, Counter>,
    pub sagas_live: Family<StatusLabel, Gauge>,
    pub step_attempts: Family<AttemptLabels, Counter>,
    pub step_duration: Family<PhaseLabel, Histogram>,
    pub rejected: Family<ReasonLabel, Counter>,
    pub journal_write_seconds: Histogram,
    pub calls_in_flight: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sagaflow");
        let sagas_started = Counter::default();
        registry.register(
            "sagas_started",
            "Sagas accepted (201) since this process started",
            sagas_started.clone(),
        );
        let sagas_finished = Family::<StatusLabel, Counter>::default();
        registry.register(
            "sagas_finished",
            "Sagas that reached a terminal status since this process started, by status",
            sagas_finished.clone(),
        );
        let sagas_live = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "sagas",
            "Sagas this process is driving now, by status (running, compensating)",
            sagas_live.clone(),
        );
        let step_attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "step_attempts",
            "Participant call attempts by phase and outcome",
            step_attempts.clone(),
        );
        let step_duration = Family::<PhaseLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 18))
        });
        registry.register(
            "step_attempt_duration_seconds",
            "Time from sending an attempt to its answer",
            step_duration.clone(),
        );
        let rejected = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "requests_rejected",
            "API requests refused for overload or limits, by reason",
            rejected.clone(),
        );
        let journal_write_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 18));
        registry.register(
            "journal_write_duration_seconds",
            "Time for a saga's events to become durable (queueing plus group commit)",
            journal_write_seconds.clone(),
        );
        let calls_in_flight = Gauge::default();
        registry.register(
            "participant_calls_in_flight",
            "Participant calls awaiting an answer",
            calls_in_flight.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "Sagaflow's version", build_info);
        for status in ["running", "compensating"] {
            sagas_live.get_or_create(&StatusLabel { status }).set(0);
        }
        Metrics {
            registry,
            sagas_started,
            sagas_finished,
            sagas_live,
            step_attempts,
            step_duration,
            rejected,
            journal_write_seconds,
            calls_in_flight,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}
