//! What the shop sells, who buys, and when it ships: the data each service seeds into its
//! own database the first time it starts (a table that already has rows is left alone).
//!
//! Some entries exist to make the business say no: a discontinued SKU with no stock, a rare
//! one with little, an account with little money, one with a low per-charge limit, a shipping
//! day with few slots and one with none.

/// Largest quantity of one order; more is refused by the orders service.
pub const ORDER_QUANTITY_MAX: i64 = 5;

/// A product and its stock at the start.
#[derive(Clone, Copy, Debug)]
pub struct SkuSeed {
    /// Its code.
    pub sku: &'static str,
    /// Price of one unit.
    pub price_cents: i64,
    /// Units in stock when the inventory is seeded.
    pub stock: i64,
}

/// A payment account at the start.
#[derive(Clone, Copy, Debug)]
pub struct AccountSeed {
    /// Its name.
    pub account: &'static str,
    /// Money available when payments is seeded.
    pub balance_cents: i64,
    /// Largest single charge the card accepts.
    pub limit_cents: i64,
}

/// A shipping day and how many shipments it can take.
#[derive(Clone, Copy, Debug)]
pub struct DaySeed {
    /// The day (`YYYY-MM-DD`).
    pub day: &'static str,
    /// Slots when shipping is seeded.
    pub capacity: i64,
}

/// Plenty: a few hundred thousand orders never exhaust these.
const PLENTY: i64 = 1_000_000;
/// Rich accounts hold ten million (in cents: a hundred thousand units of money).
const RICH_CENTS: i64 = 10_000_000;

/// Everything for sale.
pub const SKUS: &[SkuSeed] = &[
    SkuSeed {
        sku: "widget",
        price_cents: 1_200,
        stock: PLENTY,
    },
    SkuSeed {
        sku: "gizmo",
        price_cents: 2_500,
        stock: PLENTY,
    },
    SkuSeed {
        sku: "doohickey",
        price_cents: 800,
        stock: PLENTY,
    },
    // Sells out after a handful of orders.
    SkuSeed {
        sku: "rare-vinyl",
        price_cents: 4_500,
        stock: 6,
    },
    // Never in stock: every order of it is refused at reserve-stock.
    SkuSeed {
        sku: "discontinued",
        price_cents: 999,
        stock: 0,
    },
];

/// Every account.
pub const ACCOUNTS: &[AccountSeed] = &[
    AccountSeed {
        account: "alice",
        balance_cents: RICH_CENTS,
        limit_cents: 100_000,
    },
    AccountSeed {
        account: "bob",
        balance_cents: RICH_CENTS,
        limit_cents: 100_000,
    },
    AccountSeed {
        account: "carol",
        balance_cents: RICH_CENTS,
        limit_cents: 100_000,
    },
    // Little money: small charges pass until it runs out, large ones are declined.
    AccountSeed {
        account: "poor",
        balance_cents: 5_000,
        limit_cents: 100_000,
    },
    // Money enough, but no single charge above 30.00.
    AccountSeed {
        account: "student",
        balance_cents: RICH_CENTS,
        limit_cents: 3_000,
    },
];

/// Every shipping day.
pub const DAYS: &[DaySeed] = &[
    DaySeed {
        day: "2026-12-01",
        capacity: PLENTY,
    },
    DaySeed {
        day: "2026-12-02",
        capacity: PLENTY,
    },
    DaySeed {
        day: "2026-12-03",
        capacity: PLENTY,
    },
    // Christmas Eve: a few slots, soon full.
    DaySeed {
        day: "2026-12-24",
        capacity: 4,
    },
    // Christmas: closed.
    DaySeed {
        day: "2026-12-25",
        capacity: 0,
    },
];

/// The SKU named `sku`.
pub fn sku(sku: &str) -> Option<&'static SkuSeed> {
    SKUS.iter().find(|s| s.sku == sku)
}
