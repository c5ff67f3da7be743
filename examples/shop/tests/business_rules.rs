//! Each service's business rules, through its router with `oneshot`, on SQLite and (when it
//! answers) PostgreSQL: the same rules, the same answers, on both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Shop, order};
use sagaflow_shop::Service;
use sagaflow_shop::orders::OrderStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_created_pending_then_confirmed_or_cancelled() {
    for shop in Shop::every_backend(Service::Orders).await {
        let b = shop.backend;
        let o1 = order("o1", "widget", 2, "alice", 2400, "2026-12-01");
        let (status, body, _) = shop
            .deliver("/orders", "s1", "create-order", "action", &o1)
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("pending")),
            "{b}"
        );
        let (status, _, _) = shop
            .deliver("/orders/confirm", "s1", "confirm-order", "action", &o1)
            .await;
        assert_eq!(status, 200, "{b}");

        let o2 = order("o2", "widget", 1, "alice", 1200, "2026-12-01");
        shop.deliver("/orders", "s2", "create-order", "action", &o2)
            .await;
        let (status, body, _) = shop
            .deliver("/orders/cancel", "s2", "create-order", "compensation", &o2)
            .await;
        assert_eq!((status, &body["cancelled"]), (200, &true.into()), "{b}");
        // A late confirm of a cancelled order is refused and changes nothing.
        let (status, body, _) = shop
            .deliver("/orders/confirm", "s2", "confirm-order", "action", &o2)
            .await;
        assert_eq!(
            (status, body["title"].as_str()),
            (409, Some("order cancelled")),
            "{b}"
        );

        let statuses: Vec<(String, OrderStatus)> = shop
            .snapshot()
            .await
            .orders
            .into_iter()
            .map(|o| (o.order_id, o.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("o1".to_owned(), OrderStatus::Confirmed),
                ("o2".to_owned(), OrderStatus::Cancelled)
            ],
            "{b}"
        );
        shop.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_refuse_bad_quantities_and_a_second_saga_for_the_same_order() {
    for shop in Shop::every_backend(Service::Orders).await {
        let b = shop.backend;
        let too_many = order("o1", "widget", 6, "alice", 7200, "2026-12-01");
        let (status, body, _) = shop
            .deliver("/orders", "s1", "create-order", "action", &too_many)
            .await;
        assert_eq!(
            (status, body["title"].as_str()),
            (422, Some("invalid quantity")),
            "{b}"
        );

        let o2 = order("o2", "widget", 1, "alice", 1200, "2026-12-01");
        shop.deliver("/orders", "s2", "create-order", "action", &o2)
            .await;
        let (status, body, _) = shop
            .deliver("/orders", "s3", "create-order", "action", &o2)
            .await;
        assert_eq!(
            (status, body["title"].as_str()),
            (409, Some("duplicate order")),
            "{b}"
        );

        let (status, body, _) = shop
            .deliver(
                "/orders",
                "s4",
                "create-order",
                "action",
                &serde_json::json!({"x": 1}),
            )
            .await;
        assert_eq!(
            (status, body["title"].as_str()),
            (422, Some("invalid order")),
            "{b}"
        );
        assert_eq!(shop.snapshot().await.orders.len(), 1, "{b}");
        shop.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_reserves_until_out_of_stock_and_releases() {
    for shop in Shop::every_backend(Service::Inventory).await {
        let b = shop.backend;
        // rare-vinyl starts with 6 units.
        for (i, want) in [(1, 200), (2, 200), (3, 200), (4, 422)] {
            let o = order(
                &format!("o{i}"),
                "rare-vinyl",
                2,
                "alice",
                9000,
                "2026-12-01",
            );
            let (status, body, _) = shop
                .deliver(
                    "/reservations",
                    &format!("s{i}"),
                    "reserve-stock",
                    "action",
                    &o,
                )
                .await;
            assert_eq!(status, want, "{b} order {i}: {body}");
            if want == 422 {
                assert_eq!(body["title"], "out of stock", "{b}");
            }
        }
        let stock = |snapshot: &sagaflow_shop::Snapshot| {
            snapshot
                .stock
                .iter()
                .find(|s| s.sku == "rare-vinyl")
                .map(|s| s.available)
        };
        assert_eq!(stock(&shop.snapshot().await), Some(0), "{b}");

        let o1 = order("o1", "rare-vinyl", 2, "alice", 9000, "2026-12-01");
        let (status, _, _) = shop
            .deliver(
                "/reservations/release",
                "s1",
                "reserve-stock",
                "compensation",
                &o1,
            )
            .await;
        assert_eq!(status, 200, "{b}");
        assert_eq!(stock(&shop.snapshot().await), Some(2), "{b}");

        let gone = order("o9", "discontinued", 1, "alice", 999, "2026-12-01");
        let (status, body, _) = shop
            .deliver("/reservations", "s9", "reserve-stock", "action", &gone)
            .await;
        assert_eq!(
            (status, body["title"].as_str()),
            (422, Some("out of stock")),
            "{b}"
        );
        let unknown = order("o8", "unicorn", 1, "alice", 1, "2026-12-01");
        let (status, _, _) = shop
            .deliver("/reservations", "s8", "reserve-stock", "action", &unknown)
            .await;
        assert_eq!(status, 422, "{b}");
        shop.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_before_its_action_wins_and_the_late_action_changes_nothing() {
    for shop in Shop::every_backend(Service::Inventory).await {
        let b = shop.backend;
        let o = order("o1", "widget", 3, "alice", 3600, "2026-12-01");
        let (status, body, _) = shop
            .deliver(
                "/reservations/release",
                "s1",
                "reserve-stock",
                "compensation",
                &o,
            )
            .await;
        assert_eq!((status, &body["compensated"]), (200, &false.into()), "{b}");
        let (status, _, _) = shop
            .deliver("/reservations", "s1", "reserve-stock", "action", &o)
            .await;
        assert_eq!(status, 409, "{b}");
        let snapshot = shop.snapshot().await;
        assert!(snapshot.reservations.is_empty(), "{b}");
        let widget = snapshot.stock.iter().find(|s| s.sku == "widget").unwrap();
        assert_eq!(widget.available, widget.initial, "{b}");
        shop.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_decline_over_the_limit_and_without_funds_and_refund_exactly_once() {
    for shop in Shop::every_backend(Service::Payments).await {
        let b = shop.backend;
        let over = order("o1", "gizmo", 2, "student", 5000, "2026-12-01");
        let (status, body, _) = shop
            .deliver("/charges", "s1", "charge-card", "action", &over)
            .await;
        assert_eq!(
            (status, body["title"].as_str()),
            (402, Some("card declined")),
            "{b}"
        );

        // poor has 5000: one charge of 5000 passes, the next is declined.
        let first = order("o2", "gizmo", 2, "poor", 5000, "2026-12-01");
        let (status, _, _) = shop
            .deliver("/charges", "s2", "charge-card", "action", &first)
            .await;
        assert_eq!(status, 200, "{b}");
        let second = order("o3", "widget", 1, "poor", 1200, "2026-12-01");
        let (status, body, _) = shop
            .deliver("/charges", "s3", "charge-card", "action", &second)
            .await;
        assert_eq!(status, 402, "{b}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("insufficient funds"),
            "{b}"
        );

        // The refund, delivered twice, credits once.
        for replay in [false, true] {
            let (status, _, replayed) = shop
                .deliver("/refunds", "s2", "charge-card", "compensation", &first)
                .await;
            assert_eq!((status, replayed), (200, replay), "{b}");
        }
        let snapshot = shop.snapshot().await;
        let poor = snapshot
            .accounts
            .iter()
            .find(|a| a.account == "poor")
            .unwrap();
        assert_eq!(poor.balance_cents, poor.initial_cents, "{b}");
        assert_eq!(snapshot.charges.len(), 1, "{b}");
        assert_eq!(snapshot.charges[0].refunded_cents, 5000, "{b}");
        assert_eq!(snapshot.duplicates, 1, "{b}");
        shop.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_fills_a_day_refuses_a_closed_one_and_frees_a_cancelled_slot() {
    for shop in Shop::every_backend(Service::Shipping).await {
        let b = shop.backend;
        // 2026-12-24 has 4 slots.
        for i in 1..=5 {
            let o = order(&format!("o{i}"), "widget", 1, "alice", 1200, "2026-12-24");
            let (status, body, _) = shop
                .deliver(
                    "/shipments",
                    &format!("s{i}"),
                    "book-shipment",
                    "action",
                    &o,
                )
                .await;
            let want = if i <= 4 { 200 } else { 422 };
            assert_eq!(status, want, "{b} order {i}: {body}");
        }
        let o1 = order("o1", "widget", 1, "alice", 1200, "2026-12-24");
        let (status, _, _) = shop
            .deliver(
                "/shipments/cancel",
                "s1",
                "book-shipment",
                "compensation",
                &o1,
            )
            .await;
        assert_eq!(status, 200, "{b}");
        let o6 = order("o6", "widget", 1, "alice", 1200, "2026-12-24");
        let (status, _, _) = shop
            .deliver("/shipments", "s6", "book-shipment", "action", &o6)
            .await;
        assert_eq!(status, 200, "{b}: the freed slot is taken again");

        let closed = order("o7", "widget", 1, "alice", 1200, "2026-12-25");
        let (status, body, _) = shop
            .deliver("/shipments", "s7", "book-shipment", "action", &closed)
            .await;
        assert_eq!(
            (status, body["title"].as_str()),
            (422, Some("no capacity")),
            "{b}"
        );
        let day = shop
            .snapshot()
            .await
            .days
            .into_iter()
            .find(|d| d.day == "2026-12-24")
            .unwrap();
        assert_eq!((day.used, day.capacity), (4, 4), "{b}");
        shop.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_route_shows_the_tables_and_healthz_answers() {
    for shop in Shop::every_backend(Service::Payments).await {
        let b = shop.backend;
        assert_eq!(shop.get("/healthz").await.0, 200, "{b}");
        let (status, state) = shop.get("/state").await;
        assert_eq!(status, 200, "{b}");
        assert_eq!(state["accounts"].as_array().map(Vec::len), Some(5), "{b}");
        let (status, chaos) = shop.get("/chaos").await;
        assert_eq!((status, &chaos["failures"]), (200, &0.into()), "{b}");
        shop.drop_schema().await;
    }
}
