//! The invariant check catches each kind of violation: a consistent shop passes, and each
//! hand-made break of it is reported, with its order id.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sagaflow_shop::Snapshot;
use sagaflow_shop::check::{SagaRow, Violation, check};
use sagaflow_shop::inventory::{Reservation, Stock};
use sagaflow_shop::orders::{Order, OrderStatus};
use sagaflow_shop::payments::{Account, Charge};
use sagaflow_shop::shipping::{Day, Shipment};

/// A consistent shop: order A confirmed; B refused at book-shipment and unwound; C refused
/// at create-order, so only its saga exists.
fn consistent() -> (Snapshot, Vec<SagaRow>, Vec<String>) {
    let order = |id: &str, saga: &str, sku: &str, qty, account: &str, amount, status| Order {
        order_id: id.into(),
        saga_id: saga.into(),
        sku: sku.into(),
        quantity: qty,
        account: account.into(),
        amount_cents: amount,
        ship_day: "d1".into(),
        status,
    };
    let snapshot = Snapshot {
        orders: vec![
            order(
                "A",
                "sA",
                "widget",
                2,
                "alice",
                2400,
                OrderStatus::Confirmed,
            ),
            order("B", "sB", "gizmo", 1, "bob", 2500, OrderStatus::Cancelled),
        ],
        stock: vec![
            Stock {
                sku: "widget".into(),
                initial: 100,
                available: 98,
            },
            Stock {
                sku: "gizmo".into(),
                initial: 10,
                available: 10,
            },
        ],
        reservations: vec![
            Reservation {
                saga_id: "sA".into(),
                order_id: "A".into(),
                sku: "widget".into(),
                quantity: 2,
                released: false,
            },
            Reservation {
                saga_id: "sB".into(),
                order_id: "B".into(),
                sku: "gizmo".into(),
                quantity: 1,
                released: true,
            },
        ],
        accounts: vec![
            Account {
                account: "alice".into(),
                initial_cents: 10_000,
                balance_cents: 7_600,
                limit_cents: 5_000,
            },
            Account {
                account: "bob".into(),
                initial_cents: 5_000,
                balance_cents: 5_000,
                limit_cents: 5_000,
            },
        ],
        charges: vec![
            Charge {
                saga_id: "sA".into(),
                order_id: "A".into(),
                account: "alice".into(),
                amount_cents: 2_400,
                refunded_cents: 0,
            },
            Charge {
                saga_id: "sB".into(),
                order_id: "B".into(),
                account: "bob".into(),
                amount_cents: 2_500,
                refunded_cents: 2_500,
            },
        ],
        days: vec![Day {
            day: "d1".into(),
            capacity: 10,
            used: 1,
        }],
        shipments: vec![Shipment {
            saga_id: "sA".into(),
            order_id: "A".into(),
            day: "d1".into(),
            cancelled: false,
        }],
        duplicates: 3,
    };
    let saga = |id: &str, order: &str, status: &str| SagaRow {
        saga_id: id.into(),
        order_id: Some(order.into()),
        status: status.into(),
    };
    let sagas = vec![
        saga("sA", "A", "completed"),
        saga("sB", "B", "compensated"),
        saga("sC", "C", "compensated"),
    ];
    (snapshot, sagas, vec!["A".into(), "B".into(), "C".into()])
}

type Mutation = fn(&mut Snapshot, &mut Vec<SagaRow>, &mut Vec<String>);

/// Breaks the consistent shop with `mutate`; the check must report `needle` for `order`.
fn assert_caught(name: &str, mutate: Mutation, order: Option<&str>, needle: &str) {
    let (mut snapshot, mut sagas, mut expected) = consistent();
    mutate(&mut snapshot, &mut sagas, &mut expected);
    let violations = check(&snapshot, &sagas, &expected);
    assert!(
        violations
            .iter()
            .any(|v| v.order.as_deref() == order && v.message.contains(needle)),
        "{name}: expected a violation for {order:?} containing {needle:?}, got {violations:#?}"
    );
}

#[test]
fn a_consistent_shop_passes() {
    let (snapshot, sagas, expected) = consistent();
    assert_eq!(check(&snapshot, &sagas, &expected), Vec::<Violation>::new());
}

#[test]
fn every_kind_of_violation_is_caught_with_its_order() {
    let cases: Vec<(&str, Mutation, Option<&str>, &str)> = vec![
        (
            "an order charged twice",
            |s, _, _| {
                let mut again = s.charges[0].clone();
                again.saga_id = "sA2".into();
                s.charges.push(again);
            },
            Some("A"),
            "charged 2 times",
        ),
        (
            "a cancelled order's charge not refunded",
            |s, _, _| {
                s.charges[1].refunded_cents = 0;
                s.accounts[1].balance_cents = 2_500;
            },
            Some("B"),
            "cancelled but charged 2500 cents and refunded 0",
        ),
        (
            "a confirmed order refunded",
            |s, _, _| {
                s.charges[0].refunded_cents = 2_400;
                s.accounts[0].balance_cents = 10_000;
            },
            Some("A"),
            "confirmed for 2400 cents but charged 2400, refunded 2400",
        ),
        (
            "a refund larger than its charge",
            |s, _, _| s.charges[1].refunded_cents = 3_000,
            Some("B"),
            "refunded 3000 cents",
        ),
        (
            "a cancelled order still holding stock",
            |s, _, _| {
                s.reservations[1].released = false;
                s.stock[1].available = 9;
            },
            Some("B"),
            "cancelled but holds 1 units",
        ),
        (
            "a confirmed order holding the wrong units",
            |s, _, _| {
                s.reservations[0].quantity = 1;
                s.stock[0].available = 99;
            },
            Some("A"),
            "confirmed for 2 × widget but holds 1 × widget",
        ),
        (
            "stock that leaked",
            |s, _, _| s.stock[0].available = 97,
            None,
            "stock of widget: initial 100 ≠ available 97 + held 2",
        ),
        (
            "a confirmed order without a shipment",
            |s, _, _| {
                s.shipments.clear();
                s.days[0].used = 0;
            },
            Some("A"),
            "confirmed with 0 live shipments",
        ),
        (
            "a cancelled order still booked",
            |s, _, _| {
                s.shipments.push(Shipment {
                    saga_id: "sB".into(),
                    order_id: "B".into(),
                    day: "d1".into(),
                    cancelled: false,
                });
                s.days[0].used = 2;
            },
            Some("B"),
            "cancelled but has 1 live shipments",
        ),
        (
            "slots that do not add up",
            |s, _, _| s.days[0].used = 2,
            None,
            "d1: 2 slots used ≠ 1 live shipments",
        ),
        (
            "a day over capacity",
            |s, _, _| s.days[0].capacity = 0,
            None,
            "d1: 1 slots used of 0",
        ),
        (
            "a balance that does not add up",
            |s, _, _| s.accounts[0].balance_cents = 7_000,
            None,
            "account alice: balance 7000 ≠ initial 10000 − net charges 2400",
        ),
        (
            "a charge over the card's limit",
            |s, _, _| s.accounts[0].limit_cents = 1_000,
            None,
            "over account alice's limit",
        ),
        (
            "a saga still running",
            |_, sagas, _| sagas[0].status = "running".into(),
            Some("A"),
            "saga sA is not terminal: running",
        ),
        (
            "a saga that failed",
            |_, sagas, _| sagas[1].status = "failed".into(),
            Some("B"),
            "saga sB failed",
        ),
        (
            "a compensated saga whose order is confirmed",
            |_, sagas, _| sagas[0].status = "compensated".into(),
            Some("A"),
            "saga sA was compensated but the order is confirmed",
        ),
        (
            "a completed saga whose order was never created",
            |_, sagas, _| sagas[2].status = "completed".into(),
            Some("C"),
            "saga sC completed but the order is absent",
        ),
        (
            "an order left pending",
            |s, sagas, _| {
                s.orders[0].status = OrderStatus::Pending;
                sagas[0].status = "compensated".into();
            },
            Some("A"),
            "left pending",
        ),
        (
            "an order started twice",
            |_, sagas, _| {
                sagas.push(SagaRow {
                    saga_id: "sB2".into(),
                    order_id: Some("B".into()),
                    status: "compensated".into(),
                })
            },
            Some("B"),
            "2 sagas for one order (sB, sB2)",
        ),
        (
            "an order never started",
            |_, _, expected| expected.push("D".into()),
            Some("D"),
            "no saga was started",
        ),
        (
            "a saga for no order",
            |_, sagas, _| {
                sagas.push(SagaRow {
                    saga_id: "sX".into(),
                    order_id: None,
                    status: "completed".into(),
                })
            },
            None,
            "saga sX is for no order",
        ),
    ];
    for (name, mutate, order, needle) in cases {
        assert_caught(name, mutate, order, needle);
    }
}

#[test]
fn violations_serialize_as_order_and_message() {
    let v = Violation {
        order: Some("A".into()),
        message: "charged 2 times".into(),
    };
    assert_eq!(
        serde_json::to_value(&v).unwrap(),
        serde_json::json!({"order": "A", "message": "charged 2 times"})
    );
}
