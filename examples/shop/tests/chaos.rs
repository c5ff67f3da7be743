//! The fault injector: a failure does nothing, a lost answer commits and the retry is
//! deduped by the ledger, on both databases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Shop, order};
use sagaflow_shop::Service;
use sagaflow_shop::chaos::ChaosConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_failure_answers_503_and_changes_nothing() {
    let chaos = ChaosConfig {
        fail_rate: 1.0,
        ..ChaosConfig::default()
    };
    for shop in Shop::every_backend_with(Service::Payments, chaos).await {
        let b = shop.backend;
        let o = order("o1", "widget", 1, "alice", 1200, "2026-12-01");
        let (status, _, _) = shop
            .deliver("/charges", "s1", "charge-card", "action", &o)
            .await;
        assert_eq!(status, 503, "{b}");
        let snapshot = shop.snapshot().await;
        assert!(snapshot.charges.is_empty(), "{b}");
        assert_eq!(shop.get("/chaos").await.1["failures"], 1, "{b}");
        shop.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_committed_and_its_retry_is_deduped() {
    let chaos = ChaosConfig {
        lost_answer_rate: 1.0,
        ..ChaosConfig::default()
    };
    for shop in Shop::every_backend_with(Service::Payments, chaos).await {
        let b = shop.backend;
        let o = order("o1", "widget", 1, "alice", 1200, "2026-12-01");
        for _ in 0..3 {
            let (status, _, _) = shop
                .deliver("/charges", "s1", "charge-card", "action", &o)
                .await;
            assert_eq!(status, 503, "{b}");
        }
        let snapshot = shop.snapshot().await;
        assert_eq!(snapshot.charges.len(), 1, "{b}: applied once");
        assert_eq!(snapshot.duplicates, 2, "{b}: the two retries were replays");
        let alice = snapshot
            .accounts
            .iter()
            .find(|a| a.account == "alice")
            .unwrap();
        assert_eq!(alice.balance_cents, alice.initial_cents - 1200, "{b}");
        shop.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_state_are_never_faulted() {
    let chaos = ChaosConfig {
        fail_rate: 1.0,
        lost_answer_rate: 1.0,
        ..ChaosConfig::default()
    };
    let shop = Shop::sqlite(Service::Orders, chaos).await;
    assert_eq!(shop.get("/healthz").await.0, 200);
    assert_eq!(shop.get("/state").await.0, 200);
}
