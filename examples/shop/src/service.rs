//! The four services, what each one's routes do, and its tables.

use sagaflow::participant::{Delivery, Outcome};
use serde::{Deserialize, Serialize};

use crate::sql::Tx;
use crate::{Error, Snapshot, inventory, orders, payments, shipping};

/// One of the shop's services.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Creates, confirms and cancels orders.
    Orders,
    /// Reserves and releases stock.
    Inventory,
    /// Charges and refunds cards.
    Payments,
    /// Books and cancels shipments.
    Shipping,
}

/// What a delivery route does: a step's action or its compensation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `create-order`.
    CreateOrder,
    /// Compensation of `create-order`.
    CancelOrder,
    /// `confirm-order`.
    ConfirmOrder,
    /// `reserve-stock`.
    Reserve,
    /// Compensation of `reserve-stock`.
    Release,
    /// `charge-card`.
    Charge,
    /// Compensation of `charge-card`.
    Refund,
    /// `book-shipment`.
    Book,
    /// Compensation of `book-shipment`.
    CancelShipment,
}

impl Op {
    /// Runs the business change in the ledger's transaction.
    pub(crate) async fn run<T: Tx>(self, tx: &T, d: &Delivery) -> Result<Outcome, Error> {
        match self {
            Op::CreateOrder => orders::create(tx, d).await,
            Op::CancelOrder => orders::cancel(tx, d).await,
            Op::ConfirmOrder => orders::confirm(tx, d).await,
            Op::Reserve => inventory::reserve(tx, d).await,
            Op::Release => inventory::release(tx, d).await,
            Op::Charge => payments::charge(tx, d).await,
            Op::Refund => payments::refund(tx, d).await,
            Op::Book => shipping::book(tx, d).await,
            Op::CancelShipment => shipping::cancel(tx, d).await,
        }
    }
}

impl Service {
    /// All four, in the saga's order.
    pub const ALL: [Service; 4] = [
        Service::Orders,
        Service::Inventory,
        Service::Payments,
        Service::Shipping,
    ];

    /// Its name (`orders`, …).
    pub fn name(self) -> &'static str {
        match self {
            Service::Orders => "orders",
            Service::Inventory => "inventory",
            Service::Payments => "payments",
            Service::Shipping => "shipping",
        }
    }

    /// Its standalone binary (`shop-orders`, …).
    pub fn binary(self) -> &'static str {
        match self {
            Service::Orders => "shop-orders",
            Service::Inventory => "shop-inventory",
            Service::Payments => "shop-payments",
            Service::Shipping => "shop-shipping",
        }
    }

    /// Where it listens unless told otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Service::Orders => 8101,
            Service::Inventory => 8102,
            Service::Payments => 8103,
            Service::Shipping => 8104,
        }
    }

    /// Its delivery routes (all `POST`) and what each does.
    pub fn routes(self) -> &'static [(&'static str, Op)] {
        match self {
            Service::Orders => &[
                ("/orders", Op::CreateOrder),
                ("/orders/cancel", Op::CancelOrder),
                ("/orders/confirm", Op::ConfirmOrder),
            ],
            Service::Inventory => &[
                ("/reservations", Op::Reserve),
                ("/reservations/release", Op::Release),
            ],
            Service::Payments => &[("/charges", Op::Charge), ("/refunds", Op::Refund)],
            Service::Shipping => &[
                ("/shipments", Op::Book),
                ("/shipments/cancel", Op::CancelShipment),
            ],
        }
    }

    /// Its tables' DDL (idempotent).
    pub fn schema(self) -> &'static [&'static str] {
        match self {
            Service::Orders => orders::SCHEMA,
            Service::Inventory => inventory::SCHEMA,
            Service::Payments => payments::SCHEMA,
            Service::Shipping => shipping::SCHEMA,
        }
    }

    /// Creates its tables and seeds them when empty.
    pub(crate) async fn setup<T: Tx>(self, tx: &T) -> Result<(), Error> {
        for statement in self.schema() {
            tx.execute(statement, &[]).await?;
        }
        match self {
            Service::Orders => Ok(()),
            Service::Inventory => inventory::seed(tx).await,
            Service::Payments => payments::seed(tx).await,
            Service::Shipping => shipping::seed(tx).await,
        }
    }

    /// Reads its tables, and its ledger's duplicate count.
    pub(crate) async fn load<T: Tx>(self, tx: &T) -> Result<Snapshot, Error> {
        let mut snapshot = Snapshot::default();
        match self {
            Service::Orders => snapshot.orders = orders::load(tx).await?,
            Service::Inventory => {
                snapshot.stock = inventory::load_stock(tx).await?;
                snapshot.reservations = inventory::load_reservations(tx).await?;
            }
            Service::Payments => {
                snapshot.accounts = payments::load_accounts(tx).await?;
                snapshot.charges = payments::load_charges(tx).await?;
            }
            Service::Shipping => {
                snapshot.days = shipping::load_days(tx).await?;
                snapshot.shipments = shipping::load_shipments(tx).await?;
            }
        }
        let duplicates = tx
            .query_opt(
                "SELECT CAST(COALESCE(SUM(replays), 0) AS BIGINT) FROM sagaflow_deliveries",
                &[],
            )
            .await?
            .map_or(Ok(0), |row| row.int(0))?;
        snapshot.duplicates = u64::try_from(duplicates)
            .map_err(|_| Error::Row(format!("{duplicates} duplicates")))?;
        Ok(snapshot)
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
