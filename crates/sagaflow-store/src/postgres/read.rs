//! Queries, on the read pool. Each is one statement, so it sees one snapshot: a saga's record
//! and its journal are read together by a join, never by two queries that a commit could split.

use deadpool_postgres::Pool;
use sagaflow_core::{Event, SagaStatus};
use tokio_postgres::Row;

use super::connect::unavailable;
use crate::{DefinitionRecord, Error, ListFilter, LoadedSaga, SagaPage, SagaRecord};

/// The saga columns every query reads, in the order `saga_row` expects, of a row aliased `s`
/// (a literal, for the statements that `concat!` it in).
///
/// `updated_at`: an append that changed neither the status nor what its last event's time
/// tells leaves the row as it was (`APPEND_SQL` in `write.rs`); its events lie past the row's
/// `events_count`, and the last of them is then the saga's `updated_at`.
macro_rules! saga_columns {
    () => {
        "s.seq, s.id, s.definition, s.version, s.status, s.created_at_ms, \
         COALESCE((SELECT u.at_ms FROM sagaflow_events u \
         WHERE u.saga_id = s.id AND u.pos >= s.events_count ORDER BY u.pos DESC LIMIT 1), \
         s.updated_at_ms), s.idempotency_key, s.request_hash, s.shard"
    };
}
pub(crate) use saga_columns;

/// `saga_columns!`, as a constant.
pub(crate) const SAGA_COLUMNS: &str = saga_columns!();

/// Reads the `SAGA_COLUMNS` of a row, starting at column `at`; returns its `seq` too.
pub(crate) fn saga_row(row: &Row, at: usize) -> Result<(i64, SagaRecord), Error> {
    let status: String = row.try_get(at + 4)?;
    let status = SagaStatus::parse(&status)
        .ok_or_else(|| Error::Corrupt(format!("unknown saga status {status:?}")))?;
    Ok((
        row.try_get(at)?,
        SagaRecord {
            id: row.try_get(at + 1)?,
            definition: row.try_get(at + 2)?,
            version: to_u32(row.try_get(at + 3)?, "version")?,
            status,
            created_at_ms: to_u64(row.try_get(at + 5)?, "created_at_ms")?,
            updated_at_ms: to_u64(row.try_get(at + 6)?, "updated_at_ms")?,
            idempotency_key: row.try_get(at + 7)?,
            request_hash: row.try_get(at + 8)?,
            shard: to_u32(i64::from(row.try_get::<_, i32>(at + 9)?), "shard")?,
        },
    ))
}

pub(crate) fn definition_row(row: &Row) -> Result<DefinitionRecord, Error> {
    Ok(DefinitionRecord {
        name: row.try_get(0)?,
        version: to_u32(row.try_get(1)?, "definition version")?,
        body: row.try_get(2)?,
        created_at_ms: to_u64(row.try_get(3)?, "created_at_ms")?,
    })
}

pub(crate) fn to_u32(value: i64, what: &str) -> Result<u32, Error> {
    u32::try_from(value).map_err(|_| Error::Corrupt(format!("{what} {value} out of range")))
}

pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Corrupt(format!("{what} {value} out of range")))
}

/// A `u64` for a `BIGINT` column; values above `i64::MAX` are refused, not wrapped.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::Corrupt(format!("{what} {value} out of range")))
}

/// Runs one statement on a pooled connection (prepared once per connection).
pub(crate) async fn query(
    pool: &Pool,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, Error> {
    let client = pool.get().await.map_err(unavailable)?;
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

pub(crate) async fn get_definition(
    pool: &Pool,
    name: &str,
    version: Option<u32>,
) -> Result<Option<DefinitionRecord>, Error> {
    let rows = match version {
        Some(version) => {
            query(
                pool,
                "SELECT name, version, body, created_at_ms FROM sagaflow_definitions \
                 WHERE name = $1 AND version = $2",
                &[&name, &i64::from(version)],
            )
            .await?
        }
        None => {
            query(
                pool,
                "SELECT name, version, body, created_at_ms FROM sagaflow_definitions \
                 WHERE name = $1 ORDER BY version DESC LIMIT 1",
                &[&name],
            )
            .await?
        }
    };
    rows.first().map(definition_row).transpose()
}

pub(crate) async fn list_definitions(pool: &Pool) -> Result<Vec<DefinitionRecord>, Error> {
    let rows = query(
        pool,
        "SELECT d.name, d.version, d.body, d.created_at_ms FROM sagaflow_definitions d \
         JOIN (SELECT name, MAX(version) AS version FROM sagaflow_definitions GROUP BY name) latest \
         ON d.name = latest.name AND d.version = latest.version ORDER BY d.name",
        &[],
    )
    .await?;
    rows.iter().map(definition_row).collect()
}

/// Sagas with their journals, from rows of `SAGA_COLUMNS` + the event body (NULL for a saga
/// without events), ordered by saga, then position.
pub(crate) fn group_journals(rows: &[Row]) -> Result<Vec<LoadedSaga>, Error> {
    const BODY: usize = 10;
    let mut loaded: Vec<LoadedSaga> = Vec::new();
    for row in rows {
        let id: &str = row.try_get(1)?;
        if loaded.last().is_none_or(|last| last.record.id != id) {
            let (_, record) = saga_row(row, 0)?;
            loaded.push(LoadedSaga {
                record,
                events: Vec::new(),
            });
        }
        let body: Option<&str> = row.try_get(BODY)?;
        if let (Some(body), Some(saga)) = (body, loaded.last_mut()) {
            let event: Event = serde_json::from_str(body)?;
            saga.events.push(event);
        }
    }
    Ok(loaded)
}

pub(crate) async fn get_saga(pool: &Pool, id: &str) -> Result<Option<LoadedSaga>, Error> {
    let sql = format!(
        "SELECT {SAGA_COLUMNS}, e.body FROM sagaflow_sagas s \
         LEFT JOIN sagaflow_events e ON e.saga_id = s.id \
         WHERE s.id = $1 ORDER BY e.pos"
    );
    let rows = query(pool, &sql, &[&id]).await?;
    Ok(group_journals(&rows)?.into_iter().next())
}

pub(crate) async fn find_idempotency_key(
    pool: &Pool,
    key: &str,
) -> Result<Option<SagaRecord>, Error> {
    let sql = format!("SELECT {SAGA_COLUMNS} FROM sagaflow_sagas s WHERE s.idempotency_key = $1");
    let rows = query(pool, &sql, &[&key]).await?;
    rows.first()
        .map(|row| saga_row(row, 0).map(|(_, record)| record))
        .transpose()
}

pub(crate) async fn list_sagas(pool: &Pool, filter: &ListFilter) -> Result<SagaPage, Error> {
    let limit = filter.limit.max(1);
    let before = filter.cursor.unwrap_or(i64::MAX);
    // One row more than the page tells whether there is a next page.
    let fetch = limit as i64 + 1;
    let status = filter.status.map(|s| s.as_str());
    let mut sql = format!("SELECT {SAGA_COLUMNS} FROM sagaflow_sagas s WHERE s.seq < $1");
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&before];
    if let Some(status) = &status {
        params.push(status);
        sql.push_str(&format!(" AND s.status = ${}", params.len()));
    }
    if let Some(definition) = &filter.definition {
        params.push(definition);
        sql.push_str(&format!(" AND s.definition = ${}", params.len()));
    }
    params.push(&fetch);
    sql.push_str(&format!(" ORDER BY s.seq DESC LIMIT ${}", params.len()));
    let rows = query(pool, &sql, &params).await?;
    let mut items = rows
        .iter()
        .map(|row| saga_row(row, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|(seq, _)| *seq)
    } else {
        None
    };
    Ok(SagaPage {
        items: items.into_iter().map(|(_, record)| record).collect(),
        next_cursor,
    })
}

pub(crate) async fn load_unfinished(pool: &Pool) -> Result<Vec<LoadedSaga>, Error> {
    let sql = format!(
        "SELECT {SAGA_COLUMNS}, e.body FROM sagaflow_sagas s \
         LEFT JOIN sagaflow_events e ON e.saga_id = s.id \
         WHERE s.status IN ('running', 'compensating') ORDER BY s.seq, e.pos"
    );
    let rows = query(pool, &sql, &[]).await?;
    group_journals(&rows)
}

pub(crate) async fn count_by_status(pool: &Pool) -> Result<Vec<(String, u64)>, Error> {
    let rows = query(
        pool,
        "SELECT status, COUNT(*) FROM sagaflow_sagas GROUP BY status ORDER BY status",
        &[],
    )
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, to_u64(row.try_get(1)?, "count")?)))
        .collect()
}

pub(crate) async fn ping(pool: &Pool) -> Result<(), Error> {
    query(pool, "SELECT 1", &[]).await?;
    Ok(())
}
