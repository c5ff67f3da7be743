//! The invariant check: from the rows of the four services' own databases and the sagas the
//! coordinator knows, prove that every order's effects are all there or all undone. A pure
//! function, so hand-made violating data shows that it catches each kind of violation.
//!
//! Per order (by order id, across every table):
//! - exactly one saga, and it is terminal and not `failed`; a completed saga's order is
//!   `confirmed`, a compensated saga's order is `cancelled` or was never created;
//! - a confirmed order holds exactly its units of its SKU, has been charged exactly its amount
//!   on its account (charged = captured, nothing refunded) and has exactly one live shipment
//!   on its day;
//! - any other order holds no units, has been charged nothing net (charged = refunded) and
//!   has no live shipment;
//! - it was charged at most once, reserved at most once, booked at most once.
//!
//! Per SKU, account and day:
//! - stock is conserved: initial = available + units held by live reservations;
//! - money is conserved: balance = initial − net charges, never below zero, no charge above
//!   the card's limit;
//! - slots are conserved: used = live shipments, never above capacity.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Snapshot;
use crate::inventory::Reservation;
use crate::orders::{Order, OrderStatus};
use crate::payments::Charge;
use crate::shipping::Shipment;

/// A saga as the coordinator (or its journal) reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaRow {
    /// The saga's id.
    pub saga_id: String,
    /// The order it is for (its input's `order_id`, also its `Idempotency-Key`).
    pub order_id: Option<String>,
    /// `running`, `compensating`, `completed`, `compensated` or `failed`.
    pub status: String,
}

/// One invariant that does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The order concerned; `None` for a SKU's, an account's or a day's totals.
    pub order: Option<String>,
    /// What is wrong, for people.
    pub message: String,
}

/// Everything known about one order.
#[derive(Default)]
struct Facts<'a> {
    orders: Vec<&'a Order>,
    reservations: Vec<&'a Reservation>,
    charges: Vec<&'a Charge>,
    shipments: Vec<&'a Shipment>,
    sagas: Vec<&'a SagaRow>,
}

/// Checks every invariant; empty when all hold. `expected_orders` are orders that must have
/// been started (each needs a saga), e.g. the demo's workload; it may be empty.
pub fn check(snapshot: &Snapshot, sagas: &[SagaRow], expected_orders: &[String]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut facts: BTreeMap<&str, Facts<'_>> = BTreeMap::new();
    for o in &snapshot.orders {
        facts.entry(&o.order_id).or_default().orders.push(o);
    }
    for r in &snapshot.reservations {
        facts.entry(&r.order_id).or_default().reservations.push(r);
    }
    for c in &snapshot.charges {
        facts.entry(&c.order_id).or_default().charges.push(c);
    }
    for s in &snapshot.shipments {
        facts.entry(&s.order_id).or_default().shipments.push(s);
    }
    for saga in sagas {
        match &saga.order_id {
            Some(order) => facts.entry(order).or_default().sagas.push(saga),
            None => violations.push(Violation {
                order: None,
                message: format!(
                    "saga {} is for no order (its input has no order_id)",
                    saga.saga_id
                ),
            }),
        }
    }
    // An expected order that left no trace anywhere is still checked: it has no saga.
    for order in expected_orders {
        facts.entry(order).or_default();
    }
    for (order, facts) in &facts {
        check_order(facts, &mut |message| {
            violations.push(Violation {
                order: Some((*order).to_owned()),
                message,
            });
        });
    }
    check_totals(snapshot, &mut |message| {
        violations.push(Violation {
            order: None,
            message,
        });
    });
    violations
}

fn check_order(f: &Facts<'_>, report: &mut dyn FnMut(String)) {
    // Its saga.
    match f.sagas.as_slice() {
        [] => report("no saga was started for this order".to_owned()),
        [_] => {}
        many => report(format!(
            "{} sagas for one order ({}): it was started more than once",
            many.len(),
            many.iter()
                .map(|s| s.saga_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    for saga in &f.sagas {
        match saga.status.as_str() {
            "completed" | "compensated" => {}
            "failed" => report(format!(
                "saga {} failed: a compensation gave up, and the order needs a person",
                saga.saga_id
            )),
            other => report(format!("saga {} is not terminal: {other}", saga.saga_id)),
        }
    }
    if f.orders.len() > 1 {
        report(format!("{} order rows", f.orders.len()));
    }
    let order = f.orders.first().copied();
    let status = order.map(|o| o.status);
    if let [saga] = f.sagas.as_slice() {
        match (saga.status.as_str(), status) {
            ("completed", Some(OrderStatus::Confirmed)) => {}
            ("completed", other) => report(format!(
                "saga {} completed but the order is {}",
                saga.saga_id,
                shown(other)
            )),
            ("compensated", None | Some(OrderStatus::Cancelled)) => {}
            ("compensated", other) => report(format!(
                "saga {} was compensated but the order is {}",
                saga.saga_id,
                shown(other)
            )),
            _ => {}
        }
    }
    if status == Some(OrderStatus::Pending) && f.sagas.iter().all(|s| is_terminal(&s.status)) {
        report("the order was left pending".to_owned());
    }

    // At most once each.
    if f.reservations.len() > 1 {
        report(format!("reserved {} times", f.reservations.len()));
    }
    if f.charges.len() > 1 {
        report(format!("charged {} times", f.charges.len()));
    }
    if f.shipments.len() > 1 {
        report(format!("booked {} shipments", f.shipments.len()));
    }
    for c in &f.charges {
        if c.refunded_cents < 0 || c.refunded_cents > c.amount_cents {
            report(format!(
                "charge of {} cents refunded {} cents",
                c.amount_cents, c.refunded_cents
            ));
        }
    }

    // Its effects: all there when confirmed, all undone otherwise.
    let held: Vec<&&Reservation> = f.reservations.iter().filter(|r| !r.released).collect();
    let held_units: i64 = held.iter().map(|r| r.quantity).sum();
    let charged: i64 = f.charges.iter().map(|c| c.amount_cents).sum();
    let refunded: i64 = f.charges.iter().map(|c| c.refunded_cents).sum();
    let live: Vec<&&Shipment> = f.shipments.iter().filter(|s| !s.cancelled).collect();
    match order {
        Some(o) if o.status == OrderStatus::Confirmed => {
            let right_stock = held.len() == 1 && held[0].sku == o.sku && held_units == o.quantity;
            if !right_stock {
                let holds: Vec<String> = held
                    .iter()
                    .map(|r| format!("{} × {}", r.quantity, r.sku))
                    .collect();
                report(format!(
                    "confirmed for {} × {} but holds {}",
                    o.quantity,
                    o.sku,
                    if holds.is_empty() {
                        "nothing".to_owned()
                    } else {
                        holds.join(" + ")
                    }
                ));
            }
            let captured = charged - refunded;
            if captured != o.amount_cents || refunded != 0 {
                report(format!(
                    "confirmed for {} cents but charged {charged}, refunded {refunded}",
                    o.amount_cents
                ));
            }
            if f.charges.iter().any(|c| c.account != o.account) {
                report(format!("charged another account than {}", o.account));
            }
            match live.as_slice() {
                [s] if s.day == o.ship_day => {}
                [s] => report(format!(
                    "ships on {} but the order says {}",
                    s.day, o.ship_day
                )),
                _ => report(format!(
                    "confirmed with {} live shipments, not one",
                    live.len()
                )),
            }
        }
        _ => {
            let what = shown(status);
            if held_units != 0 {
                report(format!("the order is {what} but holds {held_units} units"));
            }
            if charged != refunded {
                report(format!(
                    "the order is {what} but charged {charged} cents and refunded {refunded}"
                ));
            }
            if !live.is_empty() {
                report(format!(
                    "the order is {what} but has {} live shipments",
                    live.len()
                ));
            }
        }
    }
}

fn check_totals(s: &Snapshot, report: &mut dyn FnMut(String)) {
    for stock in &s.stock {
        let held: i64 = s
            .reservations
            .iter()
            .filter(|r| r.sku == stock.sku && !r.released)
            .map(|r| r.quantity)
            .sum();
        if stock.initial != stock.available + held {
            report(format!(
                "stock of {}: initial {} ≠ available {} + held {held}",
                stock.sku, stock.initial, stock.available
            ));
        }
        if stock.available < 0 {
            report(format!(
                "stock of {} is negative: {}",
                stock.sku, stock.available
            ));
        }
    }
    for r in &s.reservations {
        if !s.stock.iter().any(|stock| stock.sku == r.sku) {
            report(format!("saga {} reserved unknown SKU {}", r.saga_id, r.sku));
        }
    }
    for account in &s.accounts {
        let charges = s.charges.iter().filter(|c| c.account == account.account);
        let net: i64 = charges
            .clone()
            .map(|c| c.amount_cents - c.refunded_cents)
            .sum();
        if account.balance_cents != account.initial_cents - net {
            report(format!(
                "account {}: balance {} ≠ initial {} − net charges {net}",
                account.account, account.balance_cents, account.initial_cents
            ));
        }
        if account.balance_cents < 0 {
            report(format!(
                "account {} is overdrawn: {}",
                account.account, account.balance_cents
            ));
        }
        for c in charges.filter(|c| c.amount_cents > account.limit_cents) {
            report(format!(
                "saga {} charged {} cents, over account {}'s limit of {}",
                c.saga_id, c.amount_cents, account.account, account.limit_cents
            ));
        }
    }
    for c in &s.charges {
        if !s.accounts.iter().any(|a| a.account == c.account) {
            report(format!(
                "saga {} charged unknown account {}",
                c.saga_id, c.account
            ));
        }
    }
    for day in &s.days {
        let live = s
            .shipments
            .iter()
            .filter(|sh| sh.day == day.day && !sh.cancelled)
            .count() as i64;
        if day.used != live {
            report(format!(
                "{}: {} slots used ≠ {live} live shipments",
                day.day, day.used
            ));
        }
        if day.used > day.capacity {
            report(format!(
                "{}: {} slots used of {}",
                day.day, day.used, day.capacity
            ));
        }
    }
    for sh in &s.shipments {
        if !s.days.iter().any(|d| d.day == sh.day) {
            report(format!("saga {} booked unknown day {}", sh.saga_id, sh.day));
        }
    }
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "compensated" | "failed")
}

fn shown(status: Option<OrderStatus>) -> &'static str {
    status.map_or("absent", OrderStatus::as_str)
}
