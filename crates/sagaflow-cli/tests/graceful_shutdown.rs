//! SIGTERM: the coordinator stops taking work, ends long polls, lets in-flight calls answer,
//! flushes the journal and exits 0; a restart finishes whatever was left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod process;

use std::time::{Duration, Instant};

use process::{Participant, Server};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_and_a_restart_finishes_the_rest() {
    let data = tempfile::tempdir().unwrap();
    let participant_process = Participant::start().await;
    let participant = participant_process.base.clone();
    let mut server = Server::start(data.path()).await;
    let base = server.base.clone();

    let http = reqwest::Client::new();
    let step = |name: &str| json!({"name": name, "action": {"url": format!("{participant}/{name}?delay_ms=200")}});
    let definition = json!({"name": "slow", "steps": [step("one"), step("two"), step("three")]});
    http.post(format!("{base}/v1/definitions"))
        .json(&definition)
        .send()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let saga: Value = http
            .post(format!("{base}/v1/sagas"))
            .json(&json!({"definition": "slow", "input": i}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(saga["id"].as_str().unwrap().to_owned());
    }
    // A long poll in progress must not hold the shutdown up.
    let poll = tokio::spawn({
        let http = http.clone();
        let url = format!("{base}/v1/sagas/{}?wait_ms=30000", ids[0]);
        async move { http.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopped = Instant::now();
    let status = server.terminate().expect("the server exits");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "took {:?}",
        stopped.elapsed()
    );
    let _ = poll.await;

    server.restart().await;
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let saga: Value = http
                .get(format!("{base}/v1/sagas/{id}?wait_ms=2000"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if saga["status"] == "completed" {
                break;
            }
            assert!(Instant::now() < deadline, "{saga:#}");
        }
    }
    assert!(server.terminate().unwrap().success());
}
