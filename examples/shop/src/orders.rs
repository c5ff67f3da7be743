//! The orders service: creates the order (`pending`) as the saga's first step, marks it
//! `confirmed` as its last, and `cancelled` when the saga unwinds.

use sagaflow::participant::{Delivery, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Error;
use crate::catalogue::ORDER_QUANTITY_MAX;
use crate::input::OrderInput;
use crate::sql::{Row, Tx};

/// The service's tables.
pub const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS orders (
        order_id     TEXT   NOT NULL PRIMARY KEY,
        saga_id      TEXT   NOT NULL,
        sku          TEXT   NOT NULL,
        quantity     BIGINT NOT NULL,
        account      TEXT   NOT NULL,
        amount_cents BIGINT NOT NULL,
        ship_day     TEXT   NOT NULL,
        status       TEXT   NOT NULL
    )"];

/// An order's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Created; the saga is still running.
    Pending,
    /// The saga completed: stock reserved, card charged, shipment booked.
    Confirmed,
    /// The saga unwound.
    Cancelled,
}

impl OrderStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<OrderStatus, Error> {
        match s {
            "pending" => Ok(OrderStatus::Pending),
            "confirmed" => Ok(OrderStatus::Confirmed),
            "cancelled" => Ok(OrderStatus::Cancelled),
            other => Err(Error::Row(format!("unknown order status {other:?}"))),
        }
    }
}

/// A row of `orders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id.
    pub order_id: String,
    /// The saga that created it.
    pub saga_id: String,
    /// The product.
    pub sku: String,
    /// How many units.
    pub quantity: i64,
    /// The account charged.
    pub account: String,
    /// The price of the whole order.
    pub amount_cents: i64,
    /// The day it ships.
    pub ship_day: String,
    /// Where it stands.
    pub status: OrderStatus,
}

/// `create-order`: a new order, `pending`. Refused when the quantity is out of bounds or the
/// order id is already taken (by another saga).
pub(crate) async fn create<T: Tx>(tx: &T, d: &Delivery) -> Result<Outcome, Error> {
    let input = match OrderInput::from_delivery(d) {
        Ok(input) => input,
        Err(refusal) => return Ok(refusal),
    };
    if !(1..=ORDER_QUANTITY_MAX).contains(&input.quantity) {
        return Ok(Outcome::refused(
            422,
            "invalid quantity",
            format!(
                "an order is for 1 to {ORDER_QUANTITY_MAX} units, not {}",
                input.quantity
            ),
        ));
    }
    if input.amount_cents <= 0 {
        return Ok(Outcome::refused(
            422,
            "invalid amount",
            "an order costs more than nothing",
        ));
    }
    let taken = tx
        .query_opt(
            "SELECT saga_id FROM orders WHERE order_id = $1",
            &[(&input.order_id).into()],
        )
        .await?;
    if let Some(row) = taken {
        return Ok(Outcome::refused(
            409,
            "duplicate order",
            format!(
                "order {} was created by saga {}",
                input.order_id,
                row.text(0)?
            ),
        ));
    }
    tx.execute(
        "INSERT INTO orders (order_id, saga_id, sku, quantity, account, amount_cents, ship_day, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            (&input.order_id).into(),
            (&d.saga_id).into(),
            (&input.sku).into(),
            input.quantity.into(),
            (&input.account).into(),
            input.amount_cents.into(),
            (&input.ship_day).into(),
            OrderStatus::Pending.as_str().into(),
        ],
    )
    .await?;
    Ok(Outcome::done(
        json!({"order_id": input.order_id, "status": OrderStatus::Pending}),
    ))
}

/// Compensation of `create-order`: the saga's order is `cancelled`, whatever it was.
pub(crate) async fn cancel<T: Tx>(tx: &T, d: &Delivery) -> Result<Outcome, Error> {
    let changed = tx
        .execute(
            "UPDATE orders SET status = $1 WHERE saga_id = $2",
            &[OrderStatus::Cancelled.as_str().into(), (&d.saga_id).into()],
        )
        .await?;
    Ok(Outcome::done(json!({"cancelled": changed > 0})))
}

/// `confirm-order`: the saga's order becomes `confirmed`. Refused for a cancelled order (a
/// late delivery after the saga unwound) or an order this saga never created.
pub(crate) async fn confirm<T: Tx>(tx: &T, d: &Delivery) -> Result<Outcome, Error> {
    let row = tx
        .query_opt(
            "SELECT order_id, status FROM orders WHERE saga_id = $1",
            &[(&d.saga_id).into()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Outcome::refused(
            409,
            "no such order",
            format!("saga {} created no order", d.saga_id),
        ));
    };
    let order_id = row.text(0)?;
    match OrderStatus::parse(&row.text(1)?)? {
        OrderStatus::Cancelled => Ok(Outcome::refused(
            409,
            "order cancelled",
            format!("order {order_id} was cancelled"),
        )),
        OrderStatus::Confirmed => Ok(Outcome::done(
            json!({"order_id": order_id, "status": OrderStatus::Confirmed}),
        )),
        OrderStatus::Pending => {
            tx.execute(
                "UPDATE orders SET status = $1 WHERE saga_id = $2",
                &[OrderStatus::Confirmed.as_str().into(), (&d.saga_id).into()],
            )
            .await?;
            Ok(Outcome::done(
                json!({"order_id": order_id, "status": OrderStatus::Confirmed}),
            ))
        }
    }
}

/// Every order.
pub(crate) async fn load<T: Tx>(tx: &T) -> Result<Vec<Order>, Error> {
    let rows = tx
        .query(
            "SELECT order_id, saga_id, sku, quantity, account, amount_cents, ship_day, status \
             FROM orders ORDER BY order_id",
            &[],
        )
        .await?;
    rows.iter().map(order).collect()
}

fn order(row: &Row) -> Result<Order, Error> {
    Ok(Order {
        order_id: row.text(0)?,
        saga_id: row.text(1)?,
        sku: row.text(2)?,
        quantity: row.int(3)?,
        account: row.text(4)?,
        amount_cents: row.int(5)?,
        ship_day: row.text(6)?,
        status: OrderStatus::parse(&row.text(7)?)?,
    })
}
