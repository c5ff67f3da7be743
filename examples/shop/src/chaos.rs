//! Fault injection on a service's delivery routes, from a seeded random number generator:
//!
//! - a *failure* answers `503` before doing anything (a transient error: Sagaflow retries);
//! - a *lost answer* lets the delivery apply and commit, then answers `503` as if the answer
//!   had been lost on the way back: Sagaflow retries, and the ledger must dedupe the retry;
//! - a *slow* delivery sleeps before it is handled.
//!
//! Every delivery draws the same three numbers, so a given seed gives the same sequence of
//! faults to the same sequence of deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// How often each fault is injected (each a probability in `0.0 ..= 1.0`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChaosConfig {
    /// Answer `503` without doing anything.
    pub fail_rate: f64,
    /// Apply and commit, then answer `503`.
    pub lost_answer_rate: f64,
    /// Sleep `slow_ms` first.
    pub slow_rate: f64,
    /// How long a slow delivery sleeps.
    pub slow_ms: u64,
    /// The random number generator's seed.
    pub seed: u64,
}

/// Faults injected so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injected {
    /// `503` before doing anything.
    pub failures: u64,
    /// `503` after committing.
    pub lost_answers: u64,
    /// Slept before handling.
    pub slow: u64,
}

/// A service's fault injector.
#[derive(Debug)]
pub struct Chaos {
    config: ChaosConfig,
    rng: Mutex<StdRng>,
    failures: AtomicU64,
    lost_answers: AtomicU64,
    slow: AtomicU64,
}

/// What to do to one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Draw {
    slow: bool,
    fail: bool,
    lose_answer: bool,
}

impl Chaos {
    /// An injector with these rates.
    pub fn new(config: ChaosConfig) -> Chaos {
        Chaos {
            config,
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            failures: AtomicU64::new(0),
            lost_answers: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    /// No faults at all.
    pub fn none() -> Chaos {
        Chaos::new(ChaosConfig::default())
    }

    /// The faults injected so far.
    pub fn injected(&self) -> Injected {
        Injected {
            failures: self.failures.load(Ordering::Relaxed),
            lost_answers: self.lost_answers.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
        }
    }

    fn draw(&self) -> Draw {
        let mut rng = self.rng.lock();
        let (slow, fail, lose) = (
            rng.random::<f64>(),
            rng.random::<f64>(),
            rng.random::<f64>(),
        );
        Draw {
            slow: slow < self.config.slow_rate,
            fail: fail < self.config.fail_rate,
            lose_answer: lose < self.config.lost_answer_rate,
        }
    }
}

fn unavailable(detail: &'static str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": detail,
    });
    (
        http::StatusCode::SERVICE_UNAVAILABLE,
        [(http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The middleware: wraps the delivery routes.
pub(crate) async fn inject(
    State(chaos): State<Arc<Chaos>>,
    request: Request,
    next: Next,
) -> Response {
    let draw = chaos.draw();
    if draw.slow {
        chaos.slow.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(chaos.config.slow_ms)).await;
    }
    if draw.fail {
        chaos.failures.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("injected failure");
        return unavailable("injected failure: nothing was done");
    }
    let response = next.run(request).await;
    if draw.lose_answer && !response.status().is_server_error() {
        chaos.lost_answers.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(status = %response.status(), "injected lost answer");
        return unavailable("injected lost answer: the change was committed");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let config = ChaosConfig {
            fail_rate: 0.3,
            lost_answer_rate: 0.3,
            slow_rate: 0.3,
            slow_ms: 1,
            seed: 42,
        };
        let (a, b) = (Chaos::new(config), Chaos::new(config));
        let draws_a: Vec<Draw> = (0..50).map(|_| a.draw()).collect();
        let draws_b: Vec<Draw> = (0..50).map(|_| b.draw()).collect();
        assert_eq!(draws_a, draws_b);
        assert!(draws_a.iter().any(|d| d.fail) && draws_a.iter().any(|d| !d.fail));
    }

    #[test]
    fn zero_rates_inject_nothing() {
        let chaos = Chaos::none();
        assert!((0..100).all(|_| chaos.draw()
            == Draw {
                slow: false,
                fail: false,
                lose_answer: false
            }));
    }
}
