//! Queries, on a pool of read connections beside the writer.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, params};
use sagaflow_core::{Event, SagaStatus};

use super::schema;
use crate::{DefinitionRecord, Error, ListFilter, LoadedSaga, SagaPage, SagaRecord};

/// A few connections, reused; a query borrows one on a blocking thread.
pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    idle_max: usize,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf, idle_max: usize) -> ReadPool {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            idle_max,
        }
    }

    /// Runs `query` on a read connection, off the async threads.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, query: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = match pool.idle.lock().ok().and_then(|mut idle| idle.pop()) {
                Some(conn) => conn,
                None => schema::open(&pool.path)?,
            };
            let result = query(&conn);
            if let Ok(mut idle) = pool.idle.lock()
                && idle.len() < pool.idle_max
            {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| Error::Corrupt(format!("a read task panicked: {e}")))?
    }
}

/// A saga's `updated_at` is its last journal row's `at_ms`, if that row has one (the append
/// that wrote it kept the status and left the saga's row alone, see `write::append`), and
/// otherwise its row's.
pub(crate) const SAGA_COLUMNS: &str = "seq, id, definition, version, status, created_at_ms, \
     COALESCE((SELECT j.at_ms FROM journal j WHERE j.saga_seq = sagas.seq \
     ORDER BY j.seq DESC LIMIT 1), updated_at_ms), idempotency_key, request_hash";

/// Reads a row selected with `SAGA_COLUMNS`; returns its `seq` too.
pub(crate) fn saga_row(row: &Row<'_>) -> rusqlite::Result<(i64, SagaRecord)> {
    let status: String = row.get(4)?;
    let status = SagaStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("unknown saga status {status:?}").into(),
        )
    })?;
    Ok((
        row.get(0)?,
        SagaRecord {
            id: row.get(1)?,
            definition: row.get(2)?,
            version: row.get(3)?,
            status,
            created_at_ms: row.get::<_, i64>(5)? as u64,
            updated_at_ms: row.get::<_, i64>(6)? as u64,
            idempotency_key: row.get(7)?,
            request_hash: row.get(8)?,
            // One process owns the embedded journal: it has no shards.
            shard: 0,
        },
    ))
}

pub(crate) fn definition_row(row: &Row<'_>) -> rusqlite::Result<DefinitionRecord> {
    Ok(DefinitionRecord {
        name: row.get(0)?,
        version: row.get(1)?,
        body: row.get(2)?,
        created_at_ms: row.get::<_, i64>(3)? as u64,
    })
}

pub(crate) fn get_definition(
    conn: &Connection,
    name: &str,
    version: Option<u32>,
) -> Result<Option<DefinitionRecord>, Error> {
    let found = match version {
        Some(version) => conn
            .prepare_cached(
                "SELECT name, version, body, created_at_ms FROM definitions \
                 WHERE name = ?1 AND version = ?2",
            )?
            .query_row(params![name, version], definition_row)
            .optional()?,
        None => conn
            .prepare_cached(
                "SELECT name, version, body, created_at_ms FROM definitions \
                 WHERE name = ?1 ORDER BY version DESC LIMIT 1",
            )?
            .query_row(params![name], definition_row)
            .optional()?,
    };
    Ok(found)
}

pub(crate) fn list_definitions(conn: &Connection) -> Result<Vec<DefinitionRecord>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.name, d.version, d.body, d.created_at_ms FROM definitions d \
         JOIN (SELECT name, MAX(version) AS version FROM definitions GROUP BY name) latest \
         ON d.name = latest.name AND d.version = latest.version ORDER BY d.name",
    )?;
    let rows = stmt.query_map([], definition_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The events of the saga whose `seq` is `saga_seq`, oldest first.
pub(crate) fn events_of(conn: &Connection, saga_seq: i64) -> Result<Vec<Event>, Error> {
    let mut stmt =
        conn.prepare_cached("SELECT body FROM journal WHERE saga_seq = ?1 ORDER BY seq")?;
    let mut rows = stmt.query(params![saga_seq])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        // One row per journal write: its events, as a JSON array.
        let body: String = row.get(0)?;
        events.extend(serde_json::from_str::<Vec<Event>>(&body)?);
    }
    Ok(events)
}

pub(crate) fn get_saga(conn: &Connection, id: &str) -> Result<Option<LoadedSaga>, Error> {
    // One read transaction: the record and the journal are of the same moment (WAL snapshot).
    let tx = conn.unchecked_transaction()?;
    let record = tx
        .prepare_cached(&format!("SELECT {SAGA_COLUMNS} FROM sagas WHERE id = ?1"))?
        .query_row(params![id], saga_row)
        .optional()?;
    let Some((seq, record)) = record else {
        return Ok(None);
    };
    let events = events_of(&tx, seq)?;
    Ok(Some(LoadedSaga { record, events }))
}

pub(crate) fn find_idempotency_key(
    conn: &Connection,
    key: &str,
) -> Result<Option<SagaRecord>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SAGA_COLUMNS} FROM sagas WHERE idempotency_key = ?1"
        ))?
        .query_row(params![key], saga_row)
        .optional()?
        .map(|(_, record)| record))
}

pub(crate) fn list_sagas(conn: &Connection, filter: &ListFilter) -> Result<SagaPage, Error> {
    let limit = filter.limit.max(1);
    let mut sql = format!("SELECT {SAGA_COLUMNS} FROM sagas WHERE seq < ?1");
    if filter.status.is_some() {
        sql.push_str(" AND status = ?2");
    }
    if filter.definition.is_some() {
        sql.push_str(" AND definition = ?3");
    }
    sql.push_str(" ORDER BY seq DESC LIMIT ?4");
    let mut stmt = conn.prepare_cached(&sql)?;
    let before = filter.cursor.unwrap_or(i64::MAX);
    let status = filter.status.map(|s| s.as_str());
    // One row more than the page tells whether there is a next page.
    let fetch = (limit + 1) as i64;
    let mut rows = Vec::with_capacity(limit + 1);
    let bind = |stmt: &mut rusqlite::CachedStatement<'_>| -> Result<(), Error> {
        stmt.raw_bind_parameter(1, before)?;
        if let Some(status) = status {
            stmt.raw_bind_parameter(2, status)?;
        }
        if let Some(definition) = &filter.definition {
            stmt.raw_bind_parameter(3, definition)?;
        }
        stmt.raw_bind_parameter(4, fetch)?;
        Ok(())
    };
    bind(&mut stmt)?;
    let mut query = stmt.raw_query();
    while let Some(row) = query.next()? {
        rows.push(saga_row(row)?);
    }
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(seq, _)| *seq)
    } else {
        None
    };
    Ok(SagaPage {
        items: rows.into_iter().map(|(_, record)| record).collect(),
        next_cursor,
    })
}

pub(crate) fn load_unfinished(conn: &Connection) -> Result<Vec<LoadedSaga>, Error> {
    // One read transaction, as in `get_saga`.
    let tx = conn.unchecked_transaction()?;
    let conn = &*tx;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SAGA_COLUMNS} FROM sagas WHERE status IN ('running', 'compensating') ORDER BY seq"
    ))?;
    let records = stmt
        .query_map([], saga_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut loaded = Vec::with_capacity(records.len());
    for (seq, record) in records {
        let events = events_of(conn, seq)?;
        loaded.push(LoadedSaga { record, events });
    }
    Ok(loaded)
}

pub(crate) fn count_by_status(conn: &Connection) -> Result<Vec<(String, u64)>, Error> {
    let mut stmt =
        conn.prepare_cached("SELECT status, COUNT(*) FROM sagas GROUP BY status ORDER BY status")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
