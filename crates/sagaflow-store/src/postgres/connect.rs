//! Connections: pools from a URL, and telling a lost connection from a refused statement.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::Error;

/// Parses a `postgres://` URL (or a `key=value` string), with a connect timeout unless it has
/// one. `extra_options` are appended to the URL's `options` (server settings, `-c name=value`).
pub(crate) fn parse(
    url: &str,
    connect_timeout: Duration,
    extra_options: Option<&str>,
) -> Result<tokio_postgres::Config, Error> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| Error::Config(format!("{}: {}", redact_url(url), describe(&e))))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(connect_timeout);
    }
    if let Some(extra) = extra_options {
        let options = match config.get_options() {
            Some(options) if !options.is_empty() => format!("{options} {extra}"),
            _ => extra.to_owned(),
        };
        config.options(options);
    }
    if config.get_application_name().is_none() {
        config.application_name("sagaflow");
    }
    Ok(config)
}

/// A pool of at most `size_max` connections; every wait is bounded by `timeout`.
pub(crate) fn pool(
    config: tokio_postgres::Config,
    size_max: usize,
    timeout: Duration,
) -> Result<Pool, Error> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // A closed connection is dropped at checkout; a broken one fails its next statement
            // and is then discarded by the writer, so no test query per checkout.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size_max.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|e| Error::Config(format!("building the connection pool: {e}")))
}

/// A pool's failure to give a connection: the database is down, unreachable or saturated.
pub(crate) fn unavailable(e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => Error::Unavailable(format!("connecting: {}", describe(&e))),
        PoolError::Timeout(_) => Error::Unavailable("timed out waiting for a connection".into()),
        other => Error::Unavailable(other.to_string()),
    }
}

/// The error with what the server said (tokio-postgres's `Display` leaves it out).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{db} (SQLSTATE {})", db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// A transaction conflict that running the transaction again can resolve.
pub(crate) fn is_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The connection (not the statement) failed: closed, I/O, or the server going away.
pub(crate) fn is_connection_failure(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        // Not the server's answer to a statement: the socket, the protocol, a closed client.
        None => true,
        Some(code) => {
            let code = code.code();
            // Class 08: connection exception; 57P0x: the server is shutting down or restarting.
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
    }
}

/// The URL without its password, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // A key=value string: drop any password=… pair.
        return url
            .split_whitespace()
            .map(|pair| {
                if pair.starts_with("password=") {
                    "password=***"
                } else {
                    pair
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(
            redact_url("postgres://app:s3cr:et@db.example:5432/sagaflow?sslmode=require"),
            "postgres://app:***@db.example:5432/sagaflow?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://postgres@127.0.0.1/test?options=-c%20search_path%3Dt"),
            "postgresql://postgres@127.0.0.1/test?options=-c%20search_path%3Dt"
        );
        assert_eq!(
            redact_url("host=db user=app password=hunter2 dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
    }
}
