//! Shards, leases and inboxes on PostgreSQL (see [`crate::leases`]). Every call is one
//! statement on the read pool, so one short transaction; times are the database's `now()`.

use std::time::Duration;

use deadpool_postgres::Pool;

use super::read::{SAGA_COLUMNS, group_journals, query, to_u32};
use crate::{Error, Fence, InboxItem, InboxKind, LoadedSaga};

/// Creates the cluster row (unless there is one) and a lease row per shard, free at epoch 0.
/// One row: the shard count the cluster has.
const INIT_SQL: &str = "\
WITH created AS (
    INSERT INTO sagaflow_cluster (id, shards) VALUES (1, $1::INT)
    ON CONFLICT (id) DO NOTHING
    RETURNING shards
)
SELECT shards FROM created UNION ALL SELECT shards FROM sagaflow_cluster WHERE id = 1";

const LEASE_ROWS_SQL: &str = "\
INSERT INTO sagaflow_leases (shard, owner, epoch, expires_at)
SELECT g, NULL, 0, now() FROM generate_series(0, $1::INT - 1) AS g
ON CONFLICT (shard) DO NOTHING";

/// Upserts the replica's row and forgets replicas dead for long. One row: the other replicas
/// alive (the statement's snapshot does not see its own upsert).
const HEARTBEAT_SQL: &str = "\
WITH me AS (
    INSERT INTO sagaflow_replicas (id, started_at, expires_at)
    VALUES ($1::TEXT, now(), now() + $2::BIGINT * INTERVAL '1 millisecond')
    ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at
    RETURNING 1
), gone AS (
    DELETE FROM sagaflow_replicas WHERE expires_at < now() - INTERVAL '10 minutes'
    RETURNING 1
)
SELECT COUNT(*) FROM sagaflow_replicas WHERE expires_at > now() AND id <> $1::TEXT";

/// Rows are locked in shard order first, as journal batches lock them (see `write.rs`), so the
/// two never deadlock.
const RENEW_SQL: &str = "\
WITH mine AS (
    SELECT l.shard FROM sagaflow_leases l
    JOIN unnest($2::INT[], $3::BIGINT[]) AS held (shard, epoch)
        ON l.shard = held.shard AND l.epoch = held.epoch
    WHERE l.owner = $1::TEXT
    ORDER BY l.shard
    FOR UPDATE OF l
)
UPDATE sagaflow_leases l
SET expires_at = now() + $4::BIGINT * INTERVAL '1 millisecond'
FROM mine
WHERE l.shard = mine.shard
RETURNING l.shard, l.epoch";

/// Free shards first, then expired ones; shards another replica is taking right now are
/// skipped rather than waited for.
const ACQUIRE_SQL: &str = "\
WITH candidates AS (
    SELECT shard FROM sagaflow_leases
    WHERE owner IS NULL OR expires_at < now()
    ORDER BY owner IS NOT NULL, shard
    LIMIT $2::BIGINT
    FOR UPDATE SKIP LOCKED
)
UPDATE sagaflow_leases l
SET owner = $1::TEXT, epoch = l.epoch + 1,
    expires_at = now() + $3::BIGINT * INTERVAL '1 millisecond'
FROM candidates c
WHERE l.shard = c.shard
RETURNING l.shard, l.epoch";

/// The epoch moves on when a shard is given back, so nothing written under the old lease can
/// land once another replica may have loaded the shard.
const RELEASE_SQL: &str = "\
WITH mine AS (
    SELECT l.shard FROM sagaflow_leases l
    JOIN unnest($2::INT[], $3::BIGINT[]) AS held (shard, epoch)
        ON l.shard = held.shard AND l.epoch = held.epoch
    WHERE l.owner = $1::TEXT
    ORDER BY l.shard
    FOR UPDATE OF l
)
UPDATE sagaflow_leases l
SET owner = NULL, epoch = l.epoch + 1, expires_at = now()
FROM mine
WHERE l.shard = mine.shard";

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn shard_i32(shard: u32) -> Result<i32, Error> {
    i32::try_from(shard).map_err(|_| Error::Config(format!("shard {shard} out of range")))
}

fn columns(fences: &[Fence]) -> Result<(Vec<i32>, Vec<i64>), Error> {
    let mut shards = Vec::with_capacity(fences.len());
    let mut epochs = Vec::with_capacity(fences.len());
    for fence in fences {
        shards.push(shard_i32(fence.shard)?);
        epochs.push(
            i64::try_from(fence.epoch)
                .map_err(|_| Error::Corrupt(format!("epoch {} out of range", fence.epoch)))?,
        );
    }
    Ok((shards, epochs))
}

fn fences(rows: &[tokio_postgres::Row]) -> Result<Vec<Fence>, Error> {
    rows.iter()
        .map(|row| {
            let shard: i32 = row.try_get(0)?;
            let epoch: i64 = row.try_get(1)?;
            Ok(Fence {
                shard: to_u32(i64::from(shard), "shard")?,
                epoch: super::read::to_u64(epoch, "epoch")?,
            })
        })
        .collect()
}

pub(crate) async fn init_cluster(pool: &Pool, shards: u32) -> Result<u32, Error> {
    if shards == 0 {
        return Err(Error::Config("a cluster needs at least one shard".into()));
    }
    let rows = query(pool, INIT_SQL, &[&shard_i32(shards)?]).await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::Corrupt("the cluster row is missing".into()))?;
    let have: i32 = row.try_get(0)?;
    query(pool, LEASE_ROWS_SQL, &[&have]).await?;
    to_u32(i64::from(have), "shard count")
}

pub(crate) async fn heartbeat(pool: &Pool, replica: &str, ttl: Duration) -> Result<u32, Error> {
    let rows = query(pool, HEARTBEAT_SQL, &[&replica, &millis(ttl)]).await?;
    let others: i64 = rows
        .first()
        .ok_or_else(|| Error::Corrupt("heartbeat answered no row".into()))?
        .try_get(0)?;
    Ok(to_u32(others, "replicas")?.saturating_add(1))
}

pub(crate) async fn renew(
    pool: &Pool,
    replica: &str,
    held: &[Fence],
    ttl: Duration,
) -> Result<Vec<Fence>, Error> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let (shards, epochs) = columns(held)?;
    let rows = query(pool, RENEW_SQL, &[&replica, &shards, &epochs, &millis(ttl)]).await?;
    fences(&rows)
}

pub(crate) async fn acquire(
    pool: &Pool,
    replica: &str,
    count_max: u32,
    ttl: Duration,
) -> Result<Vec<Fence>, Error> {
    if count_max == 0 {
        return Ok(Vec::new());
    }
    let rows = query(
        pool,
        ACQUIRE_SQL,
        &[&replica, &i64::from(count_max), &millis(ttl)],
    )
    .await?;
    fences(&rows)
}

pub(crate) async fn release(pool: &Pool, replica: &str, leases: &[Fence]) -> Result<(), Error> {
    if leases.is_empty() {
        return Ok(());
    }
    let (shards, epochs) = columns(leases)?;
    query(pool, RELEASE_SQL, &[&replica, &shards, &epochs]).await?;
    Ok(())
}

pub(crate) async fn leave(pool: &Pool, replica: &str) -> Result<(), Error> {
    query(
        pool,
        "DELETE FROM sagaflow_replicas WHERE id = $1::TEXT",
        &[&replica],
    )
    .await?;
    Ok(())
}

pub(crate) async fn load_unfinished_in(
    pool: &Pool,
    shards: &[u32],
) -> Result<Vec<LoadedSaga>, Error> {
    if shards.is_empty() {
        return Ok(Vec::new());
    }
    let shards = shards
        .iter()
        .map(|s| shard_i32(*s))
        .collect::<Result<Vec<_>, _>>()?;
    let sql = format!(
        "SELECT {SAGA_COLUMNS}, e.body FROM sagaflow_sagas s \
         LEFT JOIN sagaflow_events e ON e.saga_id = s.id \
         WHERE s.status IN ('running', 'compensating') AND s.shard = ANY($1::INT[]) \
         ORDER BY s.seq, e.pos"
    );
    let rows = query(pool, &sql, &[&shards]).await?;
    group_journals(&rows)
}

pub(crate) async fn post(
    pool: &Pool,
    shard: u32,
    saga_id: &str,
    kind: InboxKind,
    at_ms: u64,
) -> Result<(), Error> {
    query(
        pool,
        "INSERT INTO sagaflow_inbox (shard, saga_id, kind, at_ms) \
         VALUES ($1::INT, $2::TEXT, $3::TEXT, $4::BIGINT)",
        &[
            &shard_i32(shard)?,
            &saga_id,
            &kind.as_str(),
            &super::read::to_i64(at_ms, "at_ms")?,
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn inbox(
    pool: &Pool,
    shards: &[u32],
    limit: usize,
) -> Result<Vec<InboxItem>, Error> {
    if shards.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let shards = shards
        .iter()
        .map(|s| shard_i32(*s))
        .collect::<Result<Vec<_>, _>>()?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = query(
        pool,
        "SELECT id, shard, saga_id, kind FROM sagaflow_inbox \
         WHERE shard = ANY($1::INT[]) ORDER BY id LIMIT $2::BIGINT",
        &[&shards, &limit],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get(3)?;
            Ok(InboxItem {
                id: row.try_get(0)?,
                shard: to_u32(i64::from(row.try_get::<_, i32>(1)?), "shard")?,
                saga_id: row.try_get(2)?,
                kind: InboxKind::parse(&kind)
                    .ok_or_else(|| Error::Corrupt(format!("unknown inbox message {kind:?}")))?,
            })
        })
        .collect()
}

pub(crate) async fn ack(pool: &Pool, ids: &[i64]) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    query(
        pool,
        "DELETE FROM sagaflow_inbox WHERE id = ANY($1::BIGINT[])",
        &[&ids],
    )
    .await?;
    Ok(())
}
