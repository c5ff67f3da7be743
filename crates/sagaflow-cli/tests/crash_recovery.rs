//! End to end: the real `sagaflow server` binary and the real example participant as child
//! processes over HTTP. The coordinator is `kill -9`'d mid-run and restarted on the same data
//! directory; every saga must finish, and no completed saga may have been compensated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod process;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use process::{Participant, Server};
use serde_json::{Value, json};

const SAGAS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_saga_finishes_after_kill_9_and_no_completed_saga_is_compensated() {
    let data = tempfile::tempdir().unwrap();
    let participant_process = Participant::start().await;
    let participant = participant_process.base.clone();
    let mut server = Server::start(data.path()).await;
    let base = server.base.clone();

    let http = reqwest::Client::new();
    // Slow steps so that many sagas are mid-flight when the coordinator dies.
    let step = |name: &str| {
        json!({
            "name": name,
            "action": {"url": format!("{participant}/{name}?delay_ms=150"), "timeout_ms": 5000},
            "compensation": {"url": format!("{participant}/{name}/undo")},
            "retry": {"max_attempts": 5, "initial_backoff_ms": 20, "max_backoff_ms": 200},
        })
    };
    let definition =
        json!({"name": "place-order", "steps": [step("reserve"), step("charge"), step("ship")]});
    let response = http
        .post(format!("{base}/v1/definitions"))
        .json(&definition)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // A quarter of the orders are refused at the last step and must be compensated.
    let mut expected = HashMap::new();
    for i in 0..SAGAS {
        let refuse = i % 4 == 0;
        let input = if refuse {
            json!({"order": i, "refuse": "ship"})
        } else {
            json!({"order": i})
        };
        let response = http
            .post(format!("{base}/v1/sagas"))
            .header("idempotency-key", format!("order-{i}"))
            .json(&json!({"definition": "place-order", "input": input}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let saga: Value = response.json().await.unwrap();
        let want = if refuse { "compensated" } else { "completed" };
        expected.insert(saga["id"].as_str().unwrap().to_owned(), want);
    }

    // Let the run get going, then kill -9 in the middle of it.
    tokio::time::sleep(Duration::from_millis(250)).await;
    server.kill_9();
    server.restart().await;

    let deadline = Instant::now() + Duration::from_secs(60);
    for (id, want) in &expected {
        loop {
            let saga: Value = http
                .get(format!("{base}/v1/sagas/{id}?wait_ms=2000"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let status = saga["status"].as_str().unwrap();
            if status == *want {
                break;
            }
            assert!(
                matches!(status, "running" | "compensating") && Instant::now() < deadline,
                "saga {id} is {status}, expected {want}: {saga:#}"
            );
        }
    }

    // The kill landed mid-run: some calls were in flight and were sent again after the restart.
    let mut resent = 0;
    for id in expected.keys() {
        let history: Value = http
            .get(format!("{base}/v1/sagas/{id}/history"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        resent += history["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "attempt_resent")
            .count();
    }
    assert!(
        resent > 0,
        "no call was in flight when the coordinator was killed"
    );

    let deliveries: Value = http
        .get(format!("{participant}/deliveries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let deliveries = deliveries.as_array().expect("deliveries are a list");
    for (id, want) in &expected {
        let compensations = deliveries
            .iter()
            .filter(|d| d["saga_id"] == id.as_str() && d["kind"] == "compensation")
            .count();
        if *want == "completed" {
            assert_eq!(compensations, 0, "completed saga {id} saw a compensation");
        } else {
            assert!(compensations >= 2, "refused saga {id} was not compensated");
        }
        // Every step's action that the saga needed reached the participant.
        let actions = deliveries
            .iter()
            .filter(|d| d["saga_id"] == id.as_str() && d["kind"] == "action")
            .count();
        assert!(actions >= 3, "saga {id} shows {actions} action deliveries");
    }
    server.terminate();
}
