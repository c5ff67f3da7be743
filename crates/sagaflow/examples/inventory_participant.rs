//! A participant whose handlers are exactly-once in its own SQLite database.
//!
//! `cargo run -p sagaflow --example inventory_participant` listens on 127.0.0.1:8201; point a
//! step's action at `/reservations` and its compensation at `/reservations/cancel`. Deliver the
//! same request twice and the stock moves once; a compensation for a reservation that never
//! arrived is answered 200 and changes nothing.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use sagaflow::participant::{Answer, Delivery, Error, Outcome, SqliteLedger};
use serde_json::json;

async fn reserve(
    State(ledger): State<Arc<SqliteLedger>>,
    delivery: Delivery,
) -> Result<Answer, Error> {
    ledger
        .handle(delivery, |tx, d| {
            let sku = d.input["sku"].as_str().unwrap_or("A-1").to_owned();
            let taken = tx.execute(
                "UPDATE stock SET available = available - 1 WHERE sku = ?1 AND available > 0",
                [&sku],
            )?;
            if taken == 0 {
                return Ok::<_, rusqlite::Error>(Outcome::refused(
                    422,
                    "out of stock",
                    format!("no {sku} left"),
                ));
            }
            Ok(Outcome::done(json!({"reserved": sku})))
        })
        .await
}

async fn release(
    State(ledger): State<Arc<SqliteLedger>>,
    delivery: Delivery,
) -> Result<Answer, Error> {
    // Runs only when the reservation took effect (the ledger knows); otherwise it is recorded
    // and answered 200 without coming here.
    ledger
        .handle(delivery, |tx, d| {
            let sku = d.input["sku"].as_str().unwrap_or("A-1").to_owned();
            tx.execute(
                "UPDATE stock SET available = available + 1 WHERE sku = ?1",
                [&sku],
            )?;
            Ok::<_, rusqlite::Error>(Outcome::done(json!({"released": sku})))
        })
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ledger = SqliteLedger::open("inventory.db")?;
    ledger
        .with_connection(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL);
                 INSERT OR IGNORE INTO stock VALUES ('A-1', 10);",
            )?;
            Ok(())
        })
        .await?;
    let app = Router::new()
        .route("/reservations", post(reserve))
        .route("/reservations/cancel", post(release))
        .with_state(Arc::new(ledger));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8201").await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
