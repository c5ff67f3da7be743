//! The saga's input: one order, as the `place-order` saga carries it to every service.

use sagaflow::participant::{Delivery, Outcome};
use serde::{Deserialize, Serialize};

/// An order: what, how many, paid from which account, shipped on which day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderInput {
    /// The order's id, chosen by the client (also its saga's `Idempotency-Key`).
    pub order_id: String,
    /// The product.
    pub sku: String,
    /// How many units.
    pub quantity: i64,
    /// The account charged.
    pub account: String,
    /// The price of the whole order.
    pub amount_cents: i64,
    /// The day it ships (`YYYY-MM-DD`).
    pub ship_day: String,
}

impl OrderInput {
    /// The delivery's input as an order, or the `422` refusal to answer when it is not one
    /// (a malformed order is a permanent no, not worth a retry).
    pub fn from_delivery(delivery: &Delivery) -> Result<OrderInput, Outcome> {
        serde_json::from_value(delivery.input.clone())
            .map_err(|e| Outcome::refused(422, "invalid order", format!("the saga's input: {e}")))
    }
}
