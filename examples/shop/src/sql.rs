//! One small SQL interface over a SQLite or a PostgreSQL transaction, so that each service's
//! business rules and queries are written once and behave the same on both databases.
//!
//! Queries are written in PostgreSQL's placeholder style (`$1`, `$2`, …) and use only
//! `BIGINT` and `TEXT` columns; for SQLite the placeholders become `?1`, `?2`, ….

use rusqlite::types::{ToSqlOutput, ValueRef};
use tokio_postgres::types::{ToSql, Type};

use crate::Error;

/// A parameter or a column value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A `BIGINT` (SQLite `INTEGER`).
    Int(i64),
    /// A `TEXT`.
    Text(String),
    /// SQL `NULL` (read only: parameters are never null).
    Null,
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

/// One row of a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64, Error> {
        match self.0.get(i) {
            Some(Value::Int(v)) => Ok(*v),
            other => Err(Error::Row(format!(
                "column {i} is {other:?}, not an integer"
            ))),
        }
    }

    /// Column `i` as text.
    pub fn text(&self, i: usize) -> Result<String, Error> {
        match self.0.get(i) {
            Some(Value::Text(v)) => Ok(v.clone()),
            other => Err(Error::Row(format!("column {i} is {other:?}, not text"))),
        }
    }
}

/// A transaction (or a read-only snapshot) on either database. Private to the crate: the
/// futures' `Send`-ness is left to each implementation (PostgreSQL's are `Send`, SQLite's run
/// on a blocking thread and need not be).
pub(crate) trait Tx {
    /// Runs a query, returning every row.
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, Error>;

    /// Runs a statement, returning how many rows it changed.
    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, Error>;

    /// The first row of a query, if any.
    async fn query_opt(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, Error> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }
}

/// A SQLite connection, inside the caller's transaction.
pub(crate) struct SqliteTx<'a>(pub &'a rusqlite::Connection);

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

impl Tx for SqliteTx<'_> {
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, Error> {
        let mut statement = self.0.prepare_cached(&sqlite_placeholders(sql))?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
                    other => {
                        return Err(Error::Row(format!(
                            "column {i} has SQLite type {:?}",
                            other.data_type()
                        )));
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        let mut statement = self.0.prepare_cached(&sqlite_placeholders(sql))?;
        Ok(statement.execute(rusqlite::params_from_iter(params))? as u64)
    }
}

/// `$1` → `?1`: SQLite's numbered placeholders. The shop's SQL has no `$` in literals.
fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// A PostgreSQL transaction.
pub(crate) struct PgTx<'a>(pub &'a tokio_postgres::Transaction<'a>);

fn pg_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    // Nulls are never parameters; an `Option` stands in so the types line up.
    const NULL: Option<i64> = None;
    params
        .iter()
        .map(|v| match v {
            Value::Int(v) => v as &(dyn ToSql + Sync),
            Value::Text(v) => v as &(dyn ToSql + Sync),
            Value::Null => &NULL as &(dyn ToSql + Sync),
        })
        .collect()
}

fn pg_row(row: &tokio_postgres::Row) -> Result<Row, Error> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(i64::from(v)))
        } else if *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::NAME {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        } else {
            return Err(Error::Row(format!("column {i} has PostgreSQL type {ty}")));
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

impl Tx for PgTx<'_> {
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, Error> {
        let rows = self.0.query(sql, &pg_params(params)).await?;
        rows.iter().map(pg_row).collect()
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        Ok(self.0.execute(sql, &pg_params(params)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_placeholders_become_sqlite_ones() {
        assert_eq!(
            sqlite_placeholders("UPDATE t SET a = a - $1 WHERE k = $2 AND $12 > 0"),
            "UPDATE t SET a = a - ?1 WHERE k = ?2 AND ?12 > 0"
        );
        assert_eq!(sqlite_placeholders("SELECT '$'"), "SELECT '$'");
    }

    #[tokio::test]
    async fn sqlite_rows_come_back_typed() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT, n BIGINT, z TEXT)")
            .unwrap();
        let tx = SqliteTx(&conn);
        let changed = tx
            .execute(
                "INSERT INTO t (k, n) VALUES ($1, $2)",
                &["a".into(), 7.into()],
            )
            .await
            .unwrap();
        assert_eq!(changed, 1);
        let row = tx
            .query_opt("SELECT k, n, z FROM t WHERE n = $1", &[7.into()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.text(0).unwrap(), row.int(1).unwrap()), ("a".into(), 7));
        assert_eq!(row.0[2], Value::Null);
        assert!(row.int(0).is_err());
    }
}
