//! Placing the workload's orders: each one started with its order id as `Idempotency-Key`
//! and followed to a terminal status by repeating the same start with `?wait_ms` (a repeat
//! returns the saga already started and holds until it ends). Transient failures, including
//! a coordinator that is down, are retried with backoff until the deadline, so no order is
//! lost or doubled. At most `concurrency` orders are in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sagaflow::retry::{Backoff, RetryDecision, Retryable};
use sagaflow::{Client, StartSaga};
use sagaflow_shop::saga::PLACE_ORDER;
use sagaflow_shop::workload::PlannedOrder;
use tokio::sync::watch;

/// How long one start request holds for the saga to end before answering.
const WAIT_MS: u64 = 5_000;
/// Longest `Retry-After` honoured; a longer one is cut to this.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(5);

/// Retries of a start after a transient failure: quick first, never more than a second
/// apart, for as long as the deadline allows (a coordinator being restarted is down for a
/// second or two).
fn backoff() -> Backoff {
    Backoff::default()
        .with_initial(Duration::from_millis(25))
        .with_cap(Duration::from_secs(1))
}

/// How one order ended, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The order's id.
    pub order_id: String,
    /// Its saga, once the coordinator had answered.
    pub saga_id: Option<String>,
    /// The last status seen.
    pub status: Option<String>,
    /// From the first start request to the answer that showed it terminal.
    pub latency: Option<Duration>,
    /// Why it did not reach a terminal status, when it did not.
    pub error: Option<String>,
}

/// Whether a saga status is final.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "compensated" | "failed")
}

/// The progress bar and the running counts it shows.
pub struct Progress {
    bar: ProgressBar,
    completed: AtomicU64,
    compensated: AtomicU64,
    failed: AtomicU64,
    restarts: AtomicU64,
}

impl Progress {
    /// A bar over `orders`, drawn on stderr; hidden when `visible` is false.
    pub fn new(orders: usize, visible: bool) -> Progress {
        let bar = if visible {
            let bar = ProgressBar::new(orders as u64);
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:32}] {pos}/{len} orders  {msg}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            completed: AtomicU64::new(0),
            compensated: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
        }
    }

    fn finished(&self, status: &str) {
        match status {
            "completed" => &self.completed,
            "compensated" => &self.compensated,
            _ => &self.failed,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.bar.inc(1);
        self.show();
    }

    /// One more coordinator restart.
    pub fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        self.show();
    }

    fn show(&self) {
        self.bar.set_message(format!(
            "completed {}  compensated {}  failed {}  coordinator restarts {}",
            self.completed.load(Ordering::Relaxed),
            self.compensated.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.restarts.load(Ordering::Relaxed),
        ));
    }

    /// Removes the bar.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

/// Places every order, `concurrency` at a time, until each is terminal or `deadline`
/// passes. `started` counts the orders the coordinator has accepted.
pub async fn place_all(
    client: &Client,
    orders: &[PlannedOrder],
    concurrency: usize,
    deadline: Instant,
    progress: &Progress,
    started: watch::Sender<usize>,
) -> Vec<Placed> {
    futures::stream::iter(orders)
        .map(|order| place(client, order, deadline, progress, &started))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

async fn place(
    client: &Client,
    order: &PlannedOrder,
    deadline: Instant,
    progress: &Progress,
    started: &watch::Sender<usize>,
) -> Placed {
    let order_id = order.input.order_id.clone();
    let mut placed = Placed {
        order_id: order_id.clone(),
        saga_id: None,
        status: None,
        latency: None,
        error: None,
    };
    let start = match serde_json::to_value(&order.input) {
        Ok(input) => StartSaga {
            definition: PLACE_ORDER.to_owned(),
            version: None,
            input,
        },
        Err(e) => {
            placed.error = Some(format!("cannot encode the order: {e}"));
            return placed;
        }
    };
    let backoff = backoff();
    let begun = Instant::now();
    let mut failures = 0u32;
    loop {
        if Instant::now() >= deadline {
            placed.error = Some("the deadline passed before the saga ended".to_owned());
            return placed;
        }
        match client
            .start_saga(&start, Some(&order_id), Some(WAIT_MS))
            .await
        {
            Ok(saga) => {
                if placed.saga_id.is_none() {
                    started.send_modify(|n| *n += 1);
                }
                failures = 0;
                let terminal = is_terminal(&saga.status);
                if terminal {
                    placed.latency = Some(begun.elapsed());
                    progress.finished(&saga.status);
                }
                placed.saga_id = Some(saga.id);
                placed.status = Some(saga.status);
                if terminal {
                    return placed;
                }
            }
            Err(e) => {
                failures += 1;
                let delay = match retry_decision(&e) {
                    RetryDecision::DoNotRetry => {
                        tracing::warn!(order = %order_id, error = %e, "the order could not be placed");
                        placed.error = Some(e.to_string());
                        return placed;
                    }
                    RetryDecision::Retry => backoff.delay(failures, rand::random()),
                    RetryDecision::RetryAfter(after) => after.min(RETRY_AFTER_MAX),
                };
                tracing::debug!(order = %order_id, error = %e, ?delay, "retrying the start");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The SDK's classification, and also any 5xx: the start carries an `Idempotency-Key`, so
/// repeating it after an ambiguous failure cannot start a second saga.
fn retry_decision(error: &sagaflow::Error) -> RetryDecision {
    match error.retry_decision() {
        RetryDecision::DoNotRetry if error.status().is_some_and(|s| s >= 500) => {
            RetryDecision::Retry
        }
        decision => decision,
    }
}
