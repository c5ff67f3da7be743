//! The payments service: accounts with a balance and a per-charge limit. `charge-card`
//! debits the order's amount (declined `402` over the card's limit or above the balance); its
//! compensation refunds what that charge took.

use sagaflow::participant::{Delivery, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Error;
use crate::catalogue::ACCOUNTS;
use crate::input::OrderInput;
use crate::sql::Tx;

/// The service's tables.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS accounts (
        account       TEXT   NOT NULL PRIMARY KEY,
        initial_cents BIGINT NOT NULL,
        balance_cents BIGINT NOT NULL,
        limit_cents   BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS charges (
        saga_id        TEXT   NOT NULL PRIMARY KEY,
        order_id       TEXT   NOT NULL,
        account        TEXT   NOT NULL,
        amount_cents   BIGINT NOT NULL,
        refunded_cents BIGINT NOT NULL
    )",
];

/// A row of `accounts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its name.
    pub account: String,
    /// Money when seeded.
    pub initial_cents: i64,
    /// Money now.
    pub balance_cents: i64,
    /// Largest single charge.
    pub limit_cents: i64,
}

/// A row of `charges`: what one saga took from an account, and gave back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// The saga that charged.
    pub saga_id: String,
    /// Its order.
    pub order_id: String,
    /// The account debited.
    pub account: String,
    /// How much was taken.
    pub amount_cents: i64,
    /// How much of it was refunded.
    pub refunded_cents: i64,
}

/// Seeds every catalogue account when the table is empty.
pub(crate) async fn seed<T: Tx>(tx: &T) -> Result<(), Error> {
    let count = tx
        .query_opt("SELECT COUNT(*) FROM accounts", &[])
        .await?
        .map_or(Ok(0), |row| row.int(0))?;
    if count > 0 {
        return Ok(());
    }
    for account in ACCOUNTS {
        tx.execute(
            "INSERT INTO accounts (account, initial_cents, balance_cents, limit_cents) \
             VALUES ($1, $2, $2, $3) ON CONFLICT (account) DO NOTHING",
            &[
                account.account.into(),
                account.balance_cents.into(),
                account.limit_cents.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

fn declined(detail: String) -> Outcome {
    Outcome::refused(402, "card declined", detail)
}

/// `charge-card`: debits the order's amount from its account.
pub(crate) async fn charge<T: Tx>(tx: &T, d: &Delivery) -> Result<Outcome, Error> {
    let input = match OrderInput::from_delivery(d) {
        Ok(input) => input,
        Err(refusal) => return Ok(refusal),
    };
    if input.amount_cents <= 0 {
        return Ok(Outcome::refused(
            422,
            "invalid amount",
            format!("cannot charge {} cents", input.amount_cents),
        ));
    }
    let row = tx
        .query_opt(
            "SELECT balance_cents, limit_cents FROM accounts WHERE account = $1",
            &[(&input.account).into()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Outcome::refused(
            422,
            "unknown account",
            format!("no account {:?}", input.account),
        ));
    };
    let (balance, limit) = (row.int(0)?, row.int(1)?);
    if input.amount_cents > limit {
        return Ok(declined(format!(
            "{} cents is over the card's limit of {limit}",
            input.amount_cents
        )));
    }
    if input.amount_cents > balance {
        return Ok(declined(format!(
            "insufficient funds: {} cents wanted, {balance} available",
            input.amount_cents
        )));
    }
    tx.execute(
        "UPDATE accounts SET balance_cents = balance_cents - $1 WHERE account = $2",
        &[input.amount_cents.into(), (&input.account).into()],
    )
    .await?;
    tx.execute(
        "INSERT INTO charges (saga_id, order_id, account, amount_cents, refunded_cents) \
         VALUES ($1, $2, $3, $4, 0)",
        &[
            (&d.saga_id).into(),
            (&input.order_id).into(),
            (&input.account).into(),
            input.amount_cents.into(),
        ],
    )
    .await?;
    Ok(Outcome::done(
        json!({"account": input.account, "charged_cents": input.amount_cents}),
    ))
}

/// Compensation of `charge-card`: credits back what the saga's charge took and has not been
/// refunded yet.
pub(crate) async fn refund<T: Tx>(tx: &T, d: &Delivery) -> Result<Outcome, Error> {
    let row = tx
        .query_opt(
            "SELECT account, amount_cents - refunded_cents FROM charges WHERE saga_id = $1",
            &[(&d.saga_id).into()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Outcome::done(json!({"refunded_cents": 0})));
    };
    let (account, remaining) = (row.text(0)?, row.int(1)?);
    if remaining > 0 {
        tx.execute(
            "UPDATE charges SET refunded_cents = amount_cents WHERE saga_id = $1",
            &[(&d.saga_id).into()],
        )
        .await?;
        tx.execute(
            "UPDATE accounts SET balance_cents = balance_cents + $1 WHERE account = $2",
            &[remaining.into(), (&account).into()],
        )
        .await?;
    }
    Ok(Outcome::done(
        json!({"account": account, "refunded_cents": remaining}),
    ))
}

/// Every account.
pub(crate) async fn load_accounts<T: Tx>(tx: &T) -> Result<Vec<Account>, Error> {
    let rows = tx
        .query(
            "SELECT account, initial_cents, balance_cents, limit_cents FROM accounts ORDER BY account",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Account {
                account: row.text(0)?,
                initial_cents: row.int(1)?,
                balance_cents: row.int(2)?,
                limit_cents: row.int(3)?,
            })
        })
        .collect()
}

/// Every charge.
pub(crate) async fn load_charges<T: Tx>(tx: &T) -> Result<Vec<Charge>, Error> {
    let rows = tx
        .query(
            "SELECT saga_id, order_id, account, amount_cents, refunded_cents FROM charges \
             ORDER BY order_id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Charge {
                saga_id: row.text(0)?,
                order_id: row.text(1)?,
                account: row.text(2)?,
                amount_cents: row.int(3)?,
                refunded_cents: row.int(4)?,
            })
        })
        .collect()
}
