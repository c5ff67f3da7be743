//! The shipping service: a number of slots per day. `book-shipment` takes one slot of the
//! order's day (refused when the day is full); its compensation frees it.

use sagaflow::participant::{Delivery, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Error;
use crate::catalogue::DAYS;
use crate::input::OrderInput;
use crate::sql::Tx;

/// The service's tables.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS days (
        day      TEXT   NOT NULL PRIMARY KEY,
        capacity BIGINT NOT NULL,
        used     BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS shipments (
        saga_id   TEXT   NOT NULL PRIMARY KEY,
        order_id  TEXT   NOT NULL,
        day       TEXT   NOT NULL,
        cancelled BIGINT NOT NULL
    )",
];

/// A row of `days`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Day {
    /// The day.
    pub day: String,
    /// Slots in all.
    pub capacity: i64,
    /// Slots booked.
    pub used: i64,
}

/// A row of `shipments`: the slot one saga booked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// The saga that booked it.
    pub saga_id: String,
    /// Its order.
    pub order_id: String,
    /// The day.
    pub day: String,
    /// Whether the compensation freed the slot.
    pub cancelled: bool,
}

/// Seeds every catalogue day when the table is empty.
pub(crate) async fn seed<T: Tx>(tx: &T) -> Result<(), Error> {
    let count = tx
        .query_opt("SELECT COUNT(*) FROM days", &[])
        .await?
        .map_or(Ok(0), |row| row.int(0))?;
    if count > 0 {
        return Ok(());
    }
    for day in DAYS {
        tx.execute(
            "INSERT INTO days (day, capacity, used) VALUES ($1, $2, 0) \
             ON CONFLICT (day) DO NOTHING",
            &[day.day.into(), day.capacity.into()],
        )
        .await?;
    }
    Ok(())
}

/// `book-shipment`: one slot of the order's day.
pub(crate) async fn book<T: Tx>(tx: &T, d: &Delivery) -> Result<Outcome, Error> {
    let input = match OrderInput::from_delivery(d) {
        Ok(input) => input,
        Err(refusal) => return Ok(refusal),
    };
    let row = tx
        .query_opt(
            "SELECT capacity, used FROM days WHERE day = $1",
            &[(&input.ship_day).into()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Outcome::refused(
            422,
            "unknown day",
            format!("no shipping on {:?}", input.ship_day),
        ));
    };
    let (capacity, used) = (row.int(0)?, row.int(1)?);
    if used >= capacity {
        return Ok(Outcome::refused(
            422,
            "no capacity",
            format!(
                "{} is full ({used} of {capacity} slots booked)",
                input.ship_day
            ),
        ));
    }
    tx.execute(
        "UPDATE days SET used = used + 1 WHERE day = $1",
        &[(&input.ship_day).into()],
    )
    .await?;
    tx.execute(
        "INSERT INTO shipments (saga_id, order_id, day, cancelled) VALUES ($1, $2, $3, 0)",
        &[
            (&d.saga_id).into(),
            (&input.order_id).into(),
            (&input.ship_day).into(),
        ],
    )
    .await?;
    Ok(Outcome::done(json!({"day": input.ship_day})))
}

/// Compensation of `book-shipment`: the saga's slot is freed.
pub(crate) async fn cancel<T: Tx>(tx: &T, d: &Delivery) -> Result<Outcome, Error> {
    let row = tx
        .query_opt(
            "SELECT day FROM shipments WHERE saga_id = $1 AND cancelled = 0",
            &[(&d.saga_id).into()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Outcome::done(json!({"cancelled": false})));
    };
    let day = row.text(0)?;
    tx.execute(
        "UPDATE shipments SET cancelled = 1 WHERE saga_id = $1",
        &[(&d.saga_id).into()],
    )
    .await?;
    tx.execute(
        "UPDATE days SET used = used - 1 WHERE day = $1",
        &[(&day).into()],
    )
    .await?;
    Ok(Outcome::done(json!({"cancelled": true, "day": day})))
}

/// Every day.
pub(crate) async fn load_days<T: Tx>(tx: &T) -> Result<Vec<Day>, Error> {
    let rows = tx
        .query("SELECT day, capacity, used FROM days ORDER BY day", &[])
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Day {
                day: row.text(0)?,
                capacity: row.int(1)?,
                used: row.int(2)?,
            })
        })
        .collect()
}

/// Every shipment.
pub(crate) async fn load_shipments<T: Tx>(tx: &T) -> Result<Vec<Shipment>, Error> {
    let rows = tx
        .query(
            "SELECT saga_id, order_id, day, cancelled FROM shipments ORDER BY order_id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Shipment {
                saga_id: row.text(0)?,
                order_id: row.text(1)?,
                day: row.text(2)?,
                cancelled: row.int(3)? != 0,
            })
        })
        .collect()
}
