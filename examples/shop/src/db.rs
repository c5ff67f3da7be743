//! A service's database: a SQLite file or a PostgreSQL schema, behind the SDK's participant
//! ledger, so that every delivery's business change and the record of its answer commit in
//! one local transaction. Also a read-only reader of the same tables for the invariant check,
//! which goes to the database itself, not through the service.

use std::path::PathBuf;
use std::sync::Arc;

use sagaflow::participant::{self, Answer, Delivery, PgLedger, SqliteLedger};
use tokio_postgres::IsolationLevel;

use crate::sql::{PgTx, SqliteTx};
use crate::{Error, Op, Service, Snapshot};

/// Longest PostgreSQL identifier.
const PG_IDENTIFIER_CHARS_MAX: usize = 63;

/// Where a service keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database, in its own schema when one is given (created when missing).
    Postgres {
        /// `postgres://user[:password]@host[:port]/database`.
        url: String,
        /// The schema the service's tables live in (`search_path`); the server's default
        /// schema when `None`.
        schema: Option<String>,
    },
}

impl Target {
    /// `--db`: a `postgres://` (or `postgresql://`) URL, or else a SQLite file's path.
    /// `schema` only applies to PostgreSQL: lowercase letters, digits and `_`.
    pub fn parse(db: &str, schema: Option<&str>) -> Result<Target, Error> {
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            if let Some(schema) = schema {
                check_schema_name(schema)?;
            }
            Ok(Target::Postgres {
                url: db.to_owned(),
                schema: schema.map(str::to_owned),
            })
        } else if db.is_empty() {
            Err(Error::Config("--db must not be empty".into()))
        } else {
            Ok(Target::Sqlite(PathBuf::from(db)))
        }
    }

    /// For logs and reports: never the password.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("SQLite {}", path.display()),
            Target::Postgres { url, schema } => {
                let shown = url
                    .parse::<tokio_postgres::Config>()
                    .map(|c| {
                        let hosts: Vec<String> = c
                            .get_hosts()
                            .iter()
                            .map(|h| match h {
                                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                                tokio_postgres::config::Host::Unix(path) => {
                                    path.display().to_string()
                                }
                            })
                            .collect();
                        let port = c.get_ports().first().copied().unwrap_or(5432);
                        format!(
                            "PostgreSQL {}@{}:{port}/{}",
                            c.get_user().unwrap_or("-"),
                            hosts.join(","),
                            c.get_dbname().unwrap_or("-")
                        )
                    })
                    .unwrap_or_else(|_| "PostgreSQL (unparsable URL)".to_owned());
                match schema {
                    Some(schema) => format!("{shown} schema {schema}"),
                    None => shown,
                }
            }
        }
    }

    /// The connection settings, with `search_path` set to the schema.
    fn pg_config(url: &str, schema: Option<&str>) -> Result<tokio_postgres::Config, Error> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::Config(format!("bad PostgreSQL URL: {e}")))?;
        if let Some(schema) = schema {
            config.options(format!("-c search_path={schema}"));
        }
        Ok(config)
    }
}

fn check_schema_name(schema: &str) -> Result<(), Error> {
    let fits = !schema.is_empty()
        && schema.len() <= PG_IDENTIFIER_CHARS_MAX
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if fits {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "schema {schema:?}: use 1 to {PG_IDENTIFIER_CHARS_MAX} lowercase letters, digits or _"
        )))
    }
}

/// Connects one plain client (its connection driven by a task of its own).
async fn pg_connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Creates `schema` unless it exists.
pub async fn create_pg_schema(url: &str, schema: &str) -> Result<(), Error> {
    check_schema_name(schema)?;
    let client = pg_connect(&Target::pg_config(url, None)?).await?;
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await?;
    Ok(())
}

/// Drops `schema` and everything in it.
pub async fn drop_pg_schema(url: &str, schema: &str) -> Result<(), Error> {
    check_schema_name(schema)?;
    let client = pg_connect(&Target::pg_config(url, None)?).await?;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await?;
    Ok(())
}

/// A service's open database, with its delivery ledger.
#[derive(Clone)]
pub enum Db {
    /// One SQLite file; one writer connection.
    Sqlite(Arc<SqliteLedger>),
    /// A pool of PostgreSQL connections.
    Postgres(PgLedger),
}

impl Db {
    /// Opens `target` for `service`: the ledger's table, the service's tables, and its seed
    /// data when they are empty. `pool_size` bounds PostgreSQL connections.
    pub async fn open(service: Service, target: &Target, pool_size: usize) -> Result<Db, Error> {
        let db = match target {
            Target::Sqlite(path) => Db::Sqlite(Arc::new(SqliteLedger::open(path)?)),
            Target::Postgres { url, schema } => {
                if let Some(schema) = schema {
                    create_pg_schema(url, schema).await?;
                }
                let config = Target::pg_config(url, schema.as_deref())?;
                let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
                let pool = deadpool_postgres::Pool::builder(manager)
                    .max_size(pool_size.max(1))
                    .build()
                    .map_err(|e| Error::Config(format!("PostgreSQL pool: {e}")))?;
                Db::Postgres(PgLedger::new(pool).await?)
            }
        };
        db.setup(service).await?;
        Ok(db)
    }

    async fn setup(&self, service: Service) -> Result<(), Error> {
        match self {
            Db::Sqlite(ledger) => {
                ledger
                    .with_connection(move |conn| {
                        Ok((|| {
                            let tx = conn.transaction()?;
                            futures::executor::block_on(service.setup(&SqliteTx(&tx)))?;
                            tx.commit()?;
                            Ok::<_, Error>(())
                        })())
                    })
                    .await?
            }
            Db::Postgres(ledger) => {
                let mut client = ledger
                    .pool()
                    .get()
                    .await
                    .map_err(participant::Error::from)?;
                let tx = client.transaction().await?;
                service.setup(&PgTx(&tx)).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Handles one delivery exactly once: `op`'s change and the ledger's record of its answer
    /// in one transaction; a duplicate gets the recorded answer.
    pub async fn deliver(&self, op: Op, delivery: Delivery) -> Result<Answer, participant::Error> {
        match self {
            Db::Sqlite(ledger) => {
                ledger
                    .handle(delivery, move |tx, d| {
                        futures::executor::block_on(op.run(&SqliteTx(tx), d))
                    })
                    .await
            }
            Db::Postgres(ledger) => deliver_pg(ledger, op, &delivery).await,
        }
    }

    /// The service's tables as they stand (one consistent read).
    pub async fn snapshot(&self, service: Service) -> Result<Snapshot, Error> {
        match self {
            Db::Sqlite(ledger) => {
                ledger
                    .with_connection(move |conn| Ok(load_sqlite(conn, service)))
                    .await?
            }
            Db::Postgres(ledger) => {
                let mut client = ledger
                    .pool()
                    .get()
                    .await
                    .map_err(participant::Error::from)?;
                load_pg(&mut client, service).await
            }
        }
    }
}

/// One delivery on PostgreSQL. A serialization conflict in the handler's own statements (a hot
/// account row charged by many sagas at once) reaches the ledger through the error's source and
/// the ledger re-runs the whole delivery.
async fn deliver_pg(
    ledger: &PgLedger,
    op: Op,
    delivery: &Delivery,
) -> Result<Answer, participant::Error> {
    ledger
        .handle(delivery, move |tx, d| {
            Box::pin(async move { op.run(&PgTx(tx), d).await })
        })
        .await
}

fn load_sqlite(conn: &mut rusqlite::Connection, service: Service) -> Result<Snapshot, Error> {
    // A deferred transaction: every table read from the same snapshot.
    let tx = conn.transaction()?;
    let snapshot = futures::executor::block_on(service.load(&SqliteTx(&tx)))?;
    tx.commit()?;
    Ok(snapshot)
}

async fn load_pg(client: &mut tokio_postgres::Client, service: Service) -> Result<Snapshot, Error> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let snapshot = service.load(&PgTx(&tx)).await?;
    tx.commit().await?;
    Ok(snapshot)
}

/// Reads `service`'s tables straight from its database, read-only, without going through the
/// service (which may be stopped, or lying).
pub async fn read_snapshot(service: Service, target: &Target) -> Result<Snapshot, Error> {
    match target {
        Target::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let mut conn = rusqlite::Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )?;
                load_sqlite(&mut conn, service)
            })
            .await
            .map_err(|e| Error::Config(format!("the read task failed: {e}")))?
        }
        Target::Postgres { url, schema } => {
            let config = Target::pg_config(url, schema.as_deref())?;
            let mut client = pg_connect(&config).await?;
            load_pg(&mut client, service).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_postgres_and_anything_else_a_file() {
        assert_eq!(
            Target::parse("shop.db", None).unwrap(),
            Target::Sqlite("shop.db".into())
        );
        let pg = Target::parse("postgres://u@h/db", Some("demo_1")).unwrap();
        assert!(
            matches!(pg, Target::Postgres { ref schema, .. } if schema.as_deref() == Some("demo_1"))
        );
        assert!(Target::parse("", None).is_err());
    }

    #[test]
    fn a_schema_name_cannot_smuggle_sql() {
        for bad in ["", "x; DROP TABLE t", "Upper", "1abc", &"a".repeat(64)] {
            assert!(
                Target::parse("postgres://u@h/db", Some(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_description_hides_the_password() {
        let target = Target::parse("postgres://me:secret@h:5432/db", Some("s")).unwrap();
        let shown = target.describe();
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("schema s"), "{shown}");
    }
}
