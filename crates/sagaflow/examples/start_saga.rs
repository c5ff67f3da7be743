//! Registers a definition and starts a saga with the SDK's client.
//!
//! Run a coordinator (`cargo run -p sagaflow-cli -- server`) and the example participant
//! (`cargo run -p sagaflow-cli --bin sagaflow-example-participant`), then:
//! `cargo run -p sagaflow --example start_saga`

use sagaflow::retry::Backoff;
use sagaflow::{Client, Saga, StartSaga, Step};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), sagaflow::Error> {
    // Retries what is safe to repeat (reads, and starts that carry an Idempotency-Key).
    let client = Client::new("http://127.0.0.1:7070")?.with_retry(Backoff::default());
    let definition = Saga::new("place-order")
        .timeout_ms(60_000)
        .step(
            Step::new("reserve-stock", "http://127.0.0.1:8101/reservations")
                .compensation("http://127.0.0.1:8101/reservations/cancel"),
        )
        .step(
            Step::new("charge-card", "http://127.0.0.1:8101/charges")
                .compensation("http://127.0.0.1:8101/refunds"),
        )
        .step(Step::new("ship", "http://127.0.0.1:8101/shipments"))
        .build();
    let (registered, created) = client.apply_definition(&definition).await?;
    println!(
        "{} v{} (new: {created})",
        registered.name, registered.version
    );

    let start = StartSaga {
        definition: "place-order".to_owned(),
        version: None,
        input: serde_json::json!({"order": 1, "sku": "A-1"}),
    };
    // The same key returns the same saga if this program runs twice.
    let saga = client
        .start_saga(&start, Some("order-1"), Some(5_000))
        .await?;
    println!("saga {} is {}", saga.id, saga.status);
    for step in &saga.steps {
        println!(
            "  {:<14} {:<12} attempts {}",
            step.name, step.status, step.attempts
        );
    }
    Ok(())
}
