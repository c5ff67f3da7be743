//! The inventory service: stock per SKU. `reserve-stock` takes units out of the available
//! stock (refused when there are not enough); its compensation puts them back.

use sagaflow::participant::{Delivery, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Error;
use crate::catalogue::SKUS;
use crate::input::OrderInput;
use crate::sql::{Row, Tx};

/// The service's tables.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS stock (
        sku       TEXT   NOT NULL PRIMARY KEY,
        initial   BIGINT NOT NULL,
        available BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS reservations (
        saga_id  TEXT   NOT NULL PRIMARY KEY,
        order_id TEXT   NOT NULL,
        sku      TEXT   NOT NULL,
        quantity BIGINT NOT NULL,
        released BIGINT NOT NULL
    )",
];

/// A row of `stock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    /// The product.
    pub sku: String,
    /// Units when seeded.
    pub initial: i64,
    /// Units not reserved.
    pub available: i64,
}

/// A row of `reservations`: the units one saga took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The saga that reserved them.
    pub saga_id: String,
    /// Its order.
    pub order_id: String,
    /// The product.
    pub sku: String,
    /// How many units.
    pub quantity: i64,
    /// Whether the compensation gave them back.
    pub released: bool,
}

/// Seeds the stock of every catalogue SKU when the table is empty.
pub(crate) async fn seed<T: Tx>(tx: &T) -> Result<(), Error> {
    let count = tx
        .query_opt("SELECT COUNT(*) FROM stock", &[])
        .await?
        .map_or(Ok(0), |row| row.int(0))?;
    if count > 0 {
        return Ok(());
    }
    for sku in SKUS {
        tx.execute(
            "INSERT INTO stock (sku, initial, available) VALUES ($1, $2, $2) \
             ON CONFLICT (sku) DO NOTHING",
            &[sku.sku.into(), sku.stock.into()],
        )
        .await?;
    }
    Ok(())
}

/// `reserve-stock`: takes the order's units out of the available stock.
pub(crate) async fn reserve<T: Tx>(tx: &T, d: &Delivery) -> Result<Outcome, Error> {
    let input = match OrderInput::from_delivery(d) {
        Ok(input) => input,
        Err(refusal) => return Ok(refusal),
    };
    if input.quantity <= 0 {
        return Ok(Outcome::refused(
            422,
            "invalid quantity",
            format!("cannot reserve {} units", input.quantity),
        ));
    }
    let row = tx
        .query_opt(
            "SELECT available FROM stock WHERE sku = $1",
            &[(&input.sku).into()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Outcome::refused(
            422,
            "unknown product",
            format!("no SKU {:?}", input.sku),
        ));
    };
    let available = row.int(0)?;
    if available < input.quantity {
        return Ok(Outcome::refused(
            422,
            "out of stock",
            format!(
                "{} units of {} wanted, {available} available",
                input.quantity, input.sku
            ),
        ));
    }
    tx.execute(
        "UPDATE stock SET available = available - $1 WHERE sku = $2",
        &[input.quantity.into(), (&input.sku).into()],
    )
    .await?;
    tx.execute(
        "INSERT INTO reservations (saga_id, order_id, sku, quantity, released) \
         VALUES ($1, $2, $3, $4, 0)",
        &[
            (&d.saga_id).into(),
            (&input.order_id).into(),
            (&input.sku).into(),
            input.quantity.into(),
        ],
    )
    .await?;
    Ok(Outcome::done(
        json!({"sku": input.sku, "reserved": input.quantity}),
    ))
}

/// Compensation of `reserve-stock`: the saga's units go back into the available stock.
pub(crate) async fn release<T: Tx>(tx: &T, d: &Delivery) -> Result<Outcome, Error> {
    let row = tx
        .query_opt(
            "SELECT sku, quantity FROM reservations WHERE saga_id = $1 AND released = 0",
            &[(&d.saga_id).into()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Outcome::done(json!({"released": 0})));
    };
    let (sku, quantity) = (row.text(0)?, row.int(1)?);
    tx.execute(
        "UPDATE reservations SET released = 1 WHERE saga_id = $1",
        &[(&d.saga_id).into()],
    )
    .await?;
    tx.execute(
        "UPDATE stock SET available = available + $1 WHERE sku = $2",
        &[quantity.into(), (&sku).into()],
    )
    .await?;
    Ok(Outcome::done(json!({"sku": sku, "released": quantity})))
}

/// Every SKU's stock.
pub(crate) async fn load_stock<T: Tx>(tx: &T) -> Result<Vec<Stock>, Error> {
    let rows = tx
        .query(
            "SELECT sku, initial, available FROM stock ORDER BY sku",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Stock {
                sku: row.text(0)?,
                initial: row.int(1)?,
                available: row.int(2)?,
            })
        })
        .collect()
}

/// Every reservation.
pub(crate) async fn load_reservations<T: Tx>(tx: &T) -> Result<Vec<Reservation>, Error> {
    let rows = tx
        .query(
            "SELECT saga_id, order_id, sku, quantity, released FROM reservations ORDER BY order_id",
            &[],
        )
        .await?;
    rows.iter().map(reservation).collect()
}

fn reservation(row: &Row) -> Result<Reservation, Error> {
    Ok(Reservation {
        saga_id: row.text(0)?,
        order_id: row.text(1)?,
        sku: row.text(2)?,
        quantity: row.int(3)?,
        released: row.int(4)? != 0,
    })
}
