//! A reproducible mix of orders that takes every path of the saga: most succeed, and some are
//! refused at each step (a bad quantity, no stock, a declined card, a full shipping day).
//!
//! The mix is dealt from a deck, so that even a small workload has each path several times,
//! and shuffled with a seeded random number generator: the same seed gives the same orders.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::catalogue::{self, ORDER_QUANTITY_MAX};
use crate::input::OrderInput;

/// Which path an order is meant to take (what actually happens also depends on the orders
/// before it: the rare SKU and the poor account run out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// Plenty of everything: completes.
    Happy,
    /// Too many units: refused by orders at `create-order`.
    BadQuantity,
    /// A SKU never in stock: refused at `reserve-stock`.
    Discontinued,
    /// A SKU with a handful of units: refused at `reserve-stock` once they are gone.
    Rare,
    /// An account without the money: declined at `charge-card`.
    Poor,
    /// A charge over the card's limit: declined at `charge-card`.
    OverLimit,
    /// A day with few slots: refused at `book-shipment` once they are taken.
    BusyDay,
    /// A day with no slots: refused at `book-shipment`.
    ClosedDay,
}

/// One round of the mix: two in three orders are meant to succeed.
const DECK: [Path; 24] = [
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::Happy,
    Path::BadQuantity,
    Path::Discontinued,
    Path::Rare,
    Path::Rare,
    Path::Poor,
    Path::Poor,
    Path::OverLimit,
    Path::BusyDay,
    Path::ClosedDay,
];

const HAPPY_SKUS: [&str; 3] = ["widget", "gizmo", "doohickey"];
const HAPPY_ACCOUNTS: [&str; 3] = ["alice", "bob", "carol"];
const HAPPY_DAYS: [&str; 3] = ["2026-12-01", "2026-12-02", "2026-12-03"];

/// One order of the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedOrder {
    /// The saga's input.
    pub input: OrderInput,
    /// The path it is meant to take.
    pub path: Path,
}

/// `n` orders with ids `{prefix}-00000`, `{prefix}-00001`, …, from `seed`.
pub fn orders(seed: u64, n: usize, prefix: &str) -> Vec<PlannedOrder> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut paths: Vec<Path> = DECK.iter().copied().cycle().take(n).collect();
    paths.shuffle(&mut rng);
    paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| PlannedOrder {
            input: order(&mut rng, format!("{prefix}-{i:05}"), path),
            path,
        })
        .collect()
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn order(rng: &mut StdRng, order_id: String, path: Path) -> OrderInput {
    let mut sku = pick(rng, &HAPPY_SKUS);
    let mut quantity = rng.random_range(1..=3);
    let mut account = pick(rng, &HAPPY_ACCOUNTS);
    let mut ship_day = pick(rng, &HAPPY_DAYS);
    match path {
        Path::Happy => {}
        Path::BadQuantity => quantity = ORDER_QUANTITY_MAX + 1,
        Path::Discontinued => sku = "discontinued",
        Path::Rare => {
            sku = "rare-vinyl";
            quantity = rng.random_range(1..=2);
        }
        Path::Poor => {
            account = "poor";
            // Two gizmos at a time: at most two such orders fit the account's money.
            sku = "gizmo";
            quantity = 2;
        }
        Path::OverLimit => {
            account = "student";
            sku = "gizmo";
            quantity = rng.random_range(2..=3);
        }
        Path::BusyDay => ship_day = "2026-12-24",
        Path::ClosedDay => ship_day = "2026-12-25",
    }
    let price = catalogue::sku(sku).map_or(0, |s| s.price_cents);
    OrderInput {
        order_id,
        sku: sku.to_owned(),
        quantity,
        account: account.to_owned(),
        amount_cents: price * quantity.max(1),
        ship_day: ship_day.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_orders() {
        assert_eq!(orders(7, 50, "r"), orders(7, 50, "r"));
        assert_ne!(orders(7, 50, "r"), orders(8, 50, "r"));
    }

    #[test]
    fn a_small_workload_takes_every_path() {
        let orders = orders(1, DECK.len(), "r");
        for path in DECK {
            assert!(orders.iter().any(|o| o.path == path), "{path:?}");
        }
        assert_eq!(orders[3].input.order_id, "r-00003");
    }

    #[test]
    fn every_sku_of_the_mix_is_in_the_catalogue() {
        for planned in orders(3, 200, "r") {
            let sku = catalogue::sku(&planned.input.sku).expect("a catalogue SKU");
            assert_eq!(
                planned.input.amount_cents,
                sku.price_cents * planned.input.quantity
            );
        }
    }
}
