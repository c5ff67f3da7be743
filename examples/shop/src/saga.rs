//! The `place-order` saga over the four services:
//! create-order → reserve-stock → charge-card → book-shipment → confirm-order.

use sagaflow::{DefinitionSpec, RetrySpec, Saga, Step};

/// The definition's name.
pub const PLACE_ORDER: &str = "place-order";

/// How long one order may take before Sagaflow gives up and unwinds it. Generous: a demo
/// with chaos kills the coordinator a few times, and the clock runs while it is down.
const SAGA_TIMEOUT_MS: i64 = 10 * 60 * 1000;
/// One attempt of a step. Well above a slow answer, so that timeouts are rare but possible.
const STEP_TIMEOUT_MS: i64 = 2_000;

/// Where each service listens: base URLs such as `http://127.0.0.1:8101`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The orders service.
    pub orders: String,
    /// The inventory service.
    pub inventory: String,
    /// The payments service.
    pub payments: String,
    /// The shipping service.
    pub shipping: String,
}

/// Actions: transient failures are frequent in the demo, so many quick attempts.
fn action_retry() -> RetrySpec {
    RetrySpec {
        max_attempts: Some(12),
        initial_backoff_ms: Some(20),
        max_backoff_ms: Some(1_000),
        multiplier: Some(2.0),
        jitter: Some("full".to_owned()),
    }
}

/// Compensations must get through: more attempts, and a longer cap.
fn compensation_retry() -> RetrySpec {
    RetrySpec {
        max_attempts: Some(40),
        initial_backoff_ms: Some(20),
        max_backoff_ms: Some(2_000),
        multiplier: Some(2.0),
        jitter: Some("full".to_owned()),
    }
}

fn step(name: &str, action: String, compensation: Option<String>) -> Step {
    let step = Step::new(name, action)
        .timeout_ms(STEP_TIMEOUT_MS)
        .retry(action_retry());
    match compensation {
        Some(url) => step
            .compensation(url)
            .compensation_retry(compensation_retry()),
        None => step,
    }
}

/// The `place-order` definition. `confirm-order` has no compensation: it is the last step,
/// and when it fails the compensation of `create-order` cancels the order whatever its status.
pub fn place_order(e: &Endpoints) -> DefinitionSpec {
    Saga::new(PLACE_ORDER)
        .timeout_ms(SAGA_TIMEOUT_MS)
        .step(step(
            "create-order",
            format!("{}/orders", e.orders),
            Some(format!("{}/orders/cancel", e.orders)),
        ))
        .step(step(
            "reserve-stock",
            format!("{}/reservations", e.inventory),
            Some(format!("{}/reservations/release", e.inventory)),
        ))
        .step(step(
            "charge-card",
            format!("{}/charges", e.payments),
            Some(format!("{}/refunds", e.payments)),
        ))
        .step(step(
            "book-shipment",
            format!("{}/shipments", e.shipping),
            Some(format!("{}/shipments/cancel", e.shipping)),
        ))
        .step(step(
            "confirm-order",
            format!("{}/orders/confirm", e.orders),
            None,
        ))
        .build()
}
