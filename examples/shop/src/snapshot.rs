//! Every table of the four services, as rows: what `GET /state` shows and what the invariant
//! check reads.

use serde::{Deserialize, Serialize};

use crate::inventory::{Reservation, Stock};
use crate::orders::Order;
use crate::payments::{Account, Charge};
use crate::shipping::{Day, Shipment};

/// The shop's data, or one service's part of it (the other tables left empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The orders service's orders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<Order>,
    /// The inventory's stock per SKU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stock: Vec<Stock>,
    /// The inventory's reservations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<Reservation>,
    /// The payments service's accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<Account>,
    /// The payments service's charges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charges: Vec<Charge>,
    /// The shipping service's days.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Day>,
    /// The shipping service's shipments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shipments: Vec<Shipment>,
    /// Duplicate deliveries the services' ledgers answered from their records instead of
    /// applying them again.
    #[serde(default)]
    pub duplicates: u64,
}

impl Snapshot {
    /// Adds another service's part.
    pub fn merge(&mut self, other: Snapshot) {
        self.orders.extend(other.orders);
        self.stock.extend(other.stock);
        self.reservations.extend(other.reservations);
        self.accounts.extend(other.accounts);
        self.charges.extend(other.charges);
        self.days.extend(other.days);
        self.shipments.extend(other.shipments);
        self.duplicates += other.duplicates;
    }
}
