//! The writer task: group commit of every write request into one transaction.
//!
//! A batch is run as pipelined rounds on one connection. The first round sends `BEGIN`, the
//! writer's marker upsert, then every request's one statement, all before reading any answer.
//! Should a request's statement fail, the transaction is rolled back and the batch runs again
//! with `SAVEPOINT` / the statement / `RELEASE` for every request; when a request fails then,
//! the transaction is aborted from there on: its savepoint is rolled back and the requests
//! after it are sent again in the next round. `COMMIT` is sent alone once every request has an
//! answer, and the answers go out only after it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use sagaflow_core::Event;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::PgConfig;
use super::connect::{describe, is_conflict, is_connection_failure, unavailable};
use super::read::{saga_columns, saga_row, to_i64};
use super::store::{StatsCells, random_u64};
use crate::{AppendBatch, DefinitionRecord, Error, NewSaga, StartOutcome};

/// A write waiting for the writer, with where to send its answer.
pub(crate) struct Request {
    pub(crate) op: Op,
    pub(crate) reply: ReplyTx,
}

pub(crate) enum Op {
    PutDefinition {
        name: String,
        body: String,
        now_ms: u64,
    },
    Start(NewSaga),
    Append(AppendBatch),
    Purge {
        before_ms: u64,
        limit: usize,
    },
}

pub(crate) enum ReplyTx {
    Definition(oneshot::Sender<Result<(DefinitionRecord, bool), Error>>),
    Start(oneshot::Sender<Result<StartOutcome, Error>>),
    Append(oneshot::Sender<Result<(), Error>>),
    Purge(oneshot::Sender<Result<u64, Error>>),
}

/// What a request did, once its batch committed.
enum Outcome {
    Definition(DefinitionRecord, bool),
    Start(StartOutcome),
    Append,
    Purged(u64),
}

impl ReplyTx {
    fn send(self, result: Result<Outcome, Error>) {
        let mismatch = || Error::Corrupt("internal: a request got another kind's answer".into());
        // A caller that stopped waiting is no one's concern here.
        match self {
            ReplyTx::Definition(tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Outcome::Definition(record, created) => Ok((record, created)),
                    _ => Err(mismatch()),
                }));
            }
            ReplyTx::Start(tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Outcome::Start(outcome) => Ok(outcome),
                    _ => Err(mismatch()),
                }));
            }
            ReplyTx::Append(tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Outcome::Append => Ok(()),
                    _ => Err(mismatch()),
                }));
            }
            ReplyTx::Purge(tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Outcome::Purged(count) => Ok(count),
                    _ => Err(mismatch()),
                }));
            }
        }
    }
}

// ---- the statements ---------------------------------------------------------------------------

/// Records the batch's number in the writer's row, in the batch's transaction: the proof that
/// the batch committed, should the answer to `COMMIT` be lost.
const MARK_SQL: &str = "INSERT INTO sagaflow_writers (id, batch, at_ms) VALUES ($1, $2, $3) \
     ON CONFLICT (id) DO UPDATE SET batch = excluded.batch, at_ms = excluded.at_ms";

/// The next version of a definition, unless its latest body is the same. One row: (version,
/// created_at_ms, created). No row: another process took the version in between (retry).
const PUT_DEFINITION_SQL: &str = "\
WITH latest AS (
    SELECT version, body, created_at_ms FROM sagaflow_definitions
    WHERE name = $1::TEXT ORDER BY version DESC LIMIT 1
), inserted AS (
    INSERT INTO sagaflow_definitions (name, version, body, created_at_ms)
    SELECT $1::TEXT, COALESCE((SELECT version FROM latest), 0) + 1, $2::TEXT, $3::BIGINT
    WHERE NOT EXISTS (SELECT 1 FROM latest WHERE body = $2::TEXT)
    ON CONFLICT (name, version) DO NOTHING
    RETURNING version, created_at_ms
)
SELECT version, created_at_ms, true FROM inserted
UNION ALL
SELECT version, created_at_ms, false FROM latest WHERE body = $2::TEXT";

/// A saga's row and first events, unless its idempotency key is taken or the writer's lease of
/// the saga's shard moved on. One row: (inserted count, the key's holder or NULLs, whether the
/// fence held). Neither inserted nor a visible holder with the fence held: the holder committed
/// after this statement's snapshot (retry). A taken id fails the statement.
///
/// The fence: `FOR SHARE` on the shard's lease row at the epoch the writer holds. A replica
/// taking the shard over updates that row, so it waits for this transaction to end, and this
/// statement sees its new epoch if it committed first: a write and a takeover never interleave.
/// A start by a replica that does not hold the shard is unfenced (the saga is new: no one can
/// be driving it) and leaves a `start` message for the shard's owner in the same transaction.
const START_SQL: &str = concat!(
    "\
WITH lease AS (
    SELECT epoch FROM sagaflow_leases WHERE shard = $12::INT AND epoch = $13::BIGINT FOR SHARE
), fence AS (
    SELECT $13::BIGINT IS NULL OR EXISTS (SELECT 1 FROM lease) AS ok
), saga AS (
    INSERT INTO sagaflow_sagas (id, definition, version, status, created_at_ms, updated_at_ms,
                                idempotency_key, request_hash, events_count, shard)
    SELECT $1::TEXT, $2::TEXT, $3::BIGINT, $4::TEXT, $5::BIGINT, $6::BIGINT,
           $7::TEXT, $8::TEXT, $9::BIGINT, $12::INT
    FROM fence WHERE fence.ok
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id
), journal AS (
    INSERT INTO sagaflow_events (saga_id, pos, at_ms, body)
    SELECT saga.id, e.ord - 1, e.at_ms, e.body
    FROM saga, unnest($10::BIGINT[], $11::TEXT[]) WITH ORDINALITY AS e (at_ms, body, ord)
    RETURNING 1
), handoff AS (
    INSERT INTO sagaflow_inbox (shard, saga_id, kind, at_ms)
    SELECT $12::INT, saga.id, 'start', $5::BIGINT FROM saga WHERE $14::BOOL
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM saga), ",
    saga_columns!(),
    ", (SELECT ok FROM fence)
FROM (VALUES (1)) AS one (x)
LEFT JOIN sagaflow_sagas s
    ON s.idempotency_key = $7::TEXT AND NOT EXISTS (SELECT 1 FROM saga)"
);

/// Every start of a batch in one statement: what `START_SQL` does for one, for each row of the
/// arrays (`$1`–`$12`, a row per start, numbered from 1 in order) and their events (`$13`–`$16`:
/// the start's number, the event's place, its time, its body). One row per start, in order:
/// its number, then `START_SQL`'s row. The sagas are inserted in the batch's order, so their
/// `seq`s are too. A batch never holds two starts of one id or one idempotency key here; one
/// that would is run a statement per start.
const START_MANY_SQL: &str = concat!(
    "\
WITH input AS (
    SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[],
                         $6::BIGINT[], $7::TEXT[], $8::TEXT[], $9::BIGINT[], $10::INT[],
                         $11::BIGINT[], $12::BOOL[])
        WITH ORDINALITY AS r (id, definition, version, status, created_at_ms, updated_at_ms,
                              idempotency_key, request_hash, n_events, shard, epoch, handoff,
                              ord)
), lease AS (
    SELECT l.shard, l.epoch FROM sagaflow_leases l
    WHERE (l.shard, l.epoch) IN (SELECT i.shard, i.epoch FROM input i WHERE i.epoch IS NOT NULL)
    FOR SHARE
), fenced AS (
    SELECT i.*, (i.epoch IS NULL OR EXISTS (
        SELECT 1 FROM lease WHERE lease.shard = i.shard AND lease.epoch = i.epoch)) AS ok
    FROM input i
), saga AS (
    INSERT INTO sagaflow_sagas (id, definition, version, status, created_at_ms, updated_at_ms,
                                idempotency_key, request_hash, events_count, shard)
    SELECT f.id, f.definition, f.version, f.status, f.created_at_ms, f.updated_at_ms,
           f.idempotency_key, f.request_hash, f.n_events, f.shard
    FROM fenced f WHERE f.ok ORDER BY f.ord
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id
), journal AS (
    INSERT INTO sagaflow_events (saga_id, pos, at_ms, body)
    SELECT i.id, e.k, e.at_ms, e.body
    FROM unnest($13::BIGINT[], $14::BIGINT[], $15::BIGINT[], $16::TEXT[]) AS e (ord, k, at_ms, body)
    JOIN input i ON i.ord = e.ord
    WHERE i.id IN (SELECT id FROM saga)
    RETURNING 1
), handoff AS (
    INSERT INTO sagaflow_inbox (shard, saga_id, kind, at_ms)
    SELECT i.shard, i.id, 'start', i.created_at_ms FROM input i
    WHERE i.handoff AND i.id IN (SELECT id FROM saga)
    ORDER BY i.ord
    RETURNING 1
)
SELECT f.ord, (CASE WHEN f.id IN (SELECT id FROM saga) THEN 1 ELSE 0 END)::BIGINT, ",
    saga_columns!(),
    ", f.ok
FROM fenced f
LEFT JOIN sagaflow_sagas s
    ON s.idempotency_key = f.idempotency_key AND f.id NOT IN (SELECT id FROM saga)
ORDER BY f.ord"
);

/// A saga's new status and next events, at the positions after its journal's end, unless the
/// writer's lease of the saga's shard moved on (the fence, as for a start; no fence when `$7`
/// is NULL). One row: (whether the fence held, the first position written or NULL when
/// nothing was: no such saga in that shard, or the fence failed).
///
/// The saga's row is updated only when the append changes what the journal cannot tell: its
/// status, or an `updated_at` other than its last event's time (`$9` false). A step's answer
/// with the next step's attempt leaves both as they were, and then only its events are
/// inserted: an `UPDATE` here is a new row version and an entry in each of the table's seven
/// indexes, the largest part of what a saga costs the database. The journal's end comes from
/// its last position, and the row's `events_count` is where it ended at the row's last update:
/// events past it are younger than the row's `updated_at` (`SAGA_COLUMNS` reads it so).
const APPEND_SQL: &str = "\
WITH lease AS (
    SELECT epoch FROM sagaflow_leases WHERE shard = $7::INT AND epoch = $8::BIGINT FOR SHARE
), fence AS (
    SELECT $7::INT IS NULL OR EXISTS (SELECT 1 FROM lease) AS ok
), target AS (
    SELECT s.id, s.status AS was, COALESCE((SELECT e.pos + 1 FROM sagaflow_events e
        WHERE e.saga_id = s.id ORDER BY e.pos DESC LIMIT 1), 0) AS first_pos
    FROM sagaflow_sagas s
    WHERE s.id = $1::TEXT AND ($7::INT IS NULL OR s.shard = $7::INT) AND (SELECT ok FROM fence)
), saga AS (
    UPDATE sagaflow_sagas s
    SET status = $2::TEXT, updated_at_ms = $3::BIGINT, events_count = t.first_pos + $4::BIGINT
    FROM target t
    WHERE s.id = $1::TEXT AND NOT ($9::BOOL AND t.was = $2::TEXT)
    RETURNING 1
), journal AS (
    INSERT INTO sagaflow_events (saga_id, pos, at_ms, body)
    SELECT $1::TEXT, t.first_pos + e.ord - 1, e.at_ms, e.body
    FROM target t, unnest($5::BIGINT[], $6::TEXT[]) WITH ORDINALITY AS e (at_ms, body, ord)
    RETURNING 1
)
SELECT (SELECT ok FROM fence), (SELECT first_pos FROM target)";

/// Every append of a batch in one statement: what `APPEND_SQL` does for one, for each row of the
/// arrays (`$1`–`$6` and `$11`, a row per append, numbered from 1 in order) and their events
/// (`$7`–`$10`: the append's number, the event's place among its events, its time, its body).
/// One row per append, in order: (its number, whether its fence held, its first position
/// written or NULL).
/// A batch never holds two appends of one saga (a saga's task waits for each write); one
/// that would is run a statement per append. `s.id = ANY($1)` gives the planner the primary
/// key to look the sagas up by (and the writer's connections have sequential scans off: see
/// `PgStore::open`).
const APPEND_MANY_SQL: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::INT[],
                         $6::BIGINT[], $11::BOOL[])
        WITH ORDINALITY AS r (saga_id, status, updated_at_ms, n_events, shard, epoch, derived,
                              ord)
), lease AS (
    SELECT l.shard, l.epoch FROM sagaflow_leases l
    WHERE (l.shard, l.epoch) IN (SELECT i.shard, i.epoch FROM input i WHERE i.shard IS NOT NULL)
    FOR SHARE
), fenced AS (
    SELECT i.*, (i.shard IS NULL OR EXISTS (
        SELECT 1 FROM lease WHERE lease.shard = i.shard AND lease.epoch = i.epoch)) AS ok
    FROM input i
), target AS (
    SELECT f.ord, s.id, s.status AS was, f.status, f.updated_at_ms, f.n_events, f.derived,
        COALESCE((SELECT e.pos + 1 FROM sagaflow_events e
            WHERE e.saga_id = s.id ORDER BY e.pos DESC LIMIT 1), 0) AS first_pos
    FROM fenced f JOIN sagaflow_sagas s ON s.id = f.saga_id
    WHERE s.id = ANY($1::TEXT[]) AND (f.shard IS NULL OR s.shard = f.shard) AND f.ok
), saga AS (
    UPDATE sagaflow_sagas s
    SET status = t.status, updated_at_ms = t.updated_at_ms,
        events_count = t.first_pos + t.n_events
    FROM target t
    WHERE s.id = ANY($1::TEXT[]) AND s.id = t.id AND NOT (t.derived AND t.was = t.status)
    RETURNING 1
), journal AS (
    INSERT INTO sagaflow_events (saga_id, pos, at_ms, body)
    SELECT t.id, t.first_pos + e.k, e.at_ms, e.body
    FROM unnest($7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::TEXT[]) AS e (ord, k, at_ms, body)
    JOIN target t ON t.ord = e.ord
    RETURNING 1
)
SELECT f.ord, f.ok, t.first_pos FROM fenced f LEFT JOIN target t ON t.ord = f.ord
ORDER BY f.ord";

/// Retention: up to `$2` sagas that ended well before `$1`, with their journals. One row: how
/// many sagas went.
const PURGE_SQL: &str = "\
WITH doomed AS (
    SELECT id FROM sagaflow_sagas
    WHERE status IN ('completed', 'compensated') AND updated_at_ms < $1::BIGINT
    ORDER BY updated_at_ms LIMIT $2::BIGINT
), journal AS (
    DELETE FROM sagaflow_events WHERE saga_id IN (SELECT id FROM doomed)
    RETURNING 1
), sagas AS (
    DELETE FROM sagaflow_sagas WHERE id IN (SELECT id FROM doomed)
    RETURNING 1
)
SELECT COUNT(*) FROM sagas";

/// The share locks of the fenced writes of a batch, taken first and in shard order. Each
/// request's statement takes its own again (a no-op then); taken one request at a time, in
/// arrival order, they could deadlock with a lease renewal locking the same rows in another
/// order (PostgreSQL breaks a deadlock after `deadlock_timeout`, a second by default: the
/// batch would run again a second late). Renewals lock in shard order too.
const LOCK_SHARDS_SQL: &str = "\
SELECT shard FROM sagaflow_leases WHERE shard = ANY($1::INT[]) ORDER BY shard FOR SHARE";

/// Waits for the row lock of a transaction that may still be committing, then reads.
const RESOLVE_SQL: &str = "SELECT batch FROM sagaflow_writers WHERE id = $1 FOR UPDATE";

struct Statements {
    savepoint: Statement,
    release: Statement,
    mark: Statement,
    lock_shards: Statement,
    put_definition: Statement,
    start: Statement,
    start_many: Statement,
    append: Statement,
    append_many: Statement,
    purge: Statement,
}

impl Statements {
    /// Prepared once per connection (deadpool keeps them in the connection's cache).
    async fn prepare(client: &Object) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            // Prepared too: a simple query would be parsed again for every request.
            savepoint: client.prepare_cached("SAVEPOINT request").await?,
            release: client.prepare_cached("RELEASE SAVEPOINT request").await?,
            mark: client.prepare_cached(MARK_SQL).await?,
            lock_shards: client.prepare_cached(LOCK_SHARDS_SQL).await?,
            put_definition: client.prepare_cached(PUT_DEFINITION_SQL).await?,
            start: client.prepare_cached(START_SQL).await?,
            start_many: client.prepare_cached(START_MANY_SQL).await?,
            append: client.prepare_cached(APPEND_SQL).await?,
            append_many: client.prepare_cached(APPEND_MANY_SQL).await?,
            purge: client.prepare_cached(PURGE_SQL).await?,
        })
    }
}

/// A request's parameters, encoded once per batch (a batch may run several times).
enum Encoded {
    Definition {
        name: String,
        body: String,
        now_ms: i64,
    },
    Start {
        id: String,
        definition: String,
        version: i64,
        status: &'static str,
        created_at_ms: i64,
        updated_at_ms: i64,
        idempotency_key: Option<String>,
        request_hash: Option<String>,
        events: Journal,
        shard: i32,
        epoch: Option<i64>,
        handoff: bool,
    },
    Append {
        id: String,
        status: &'static str,
        updated_at_ms: i64,
        events: Journal,
        /// `Journal::tells` its `updated_at`.
        told: bool,
        shard: Option<i32>,
        epoch: Option<i64>,
    },
    Purge {
        before_ms: i64,
        limit: i64,
    },
}

/// Events as the columns `unnest` takes.
struct Journal {
    count: i64,
    at_ms: Vec<i64>,
    bodies: Vec<String>,
}

impl Journal {
    /// Whether a saga's `updated_at` after these events is the last one's time, so that the
    /// journal tells it and the saga's row need not (`APPEND_SQL`).
    fn tells(&self, updated_at_ms: i64) -> bool {
        self.at_ms.last() == Some(&updated_at_ms)
    }
}

impl Journal {
    fn encode(events: &[Event]) -> Result<Journal, Error> {
        let mut at_ms = Vec::with_capacity(events.len());
        let mut bodies = Vec::with_capacity(events.len());
        for event in events {
            at_ms.push(to_i64(event.at_ms, "event at_ms")?);
            bodies.push(serde_json::to_string(event)?);
        }
        Ok(Journal {
            count: events.len() as i64,
            at_ms,
            bodies,
        })
    }
}

fn encode(op: &Op) -> Result<Encoded, Error> {
    Ok(match op {
        Op::PutDefinition { name, body, now_ms } => Encoded::Definition {
            name: name.clone(),
            body: body.clone(),
            now_ms: to_i64(*now_ms, "created_at_ms")?,
        },
        Op::Start(saga) => {
            let r = &saga.record;
            Encoded::Start {
                id: r.id.clone(),
                definition: r.definition.clone(),
                version: i64::from(r.version),
                status: r.status.as_str(),
                created_at_ms: to_i64(r.created_at_ms, "created_at_ms")?,
                updated_at_ms: to_i64(r.updated_at_ms, "updated_at_ms")?,
                idempotency_key: r.idempotency_key.clone(),
                request_hash: r.request_hash.clone(),
                events: Journal::encode(&saga.events)?,
                shard: shard_i32(r.shard)?,
                epoch: saga.fence.map(|f| to_i64(f.epoch, "epoch")).transpose()?,
                handoff: saga.handoff,
            }
        }
        Op::Append(batch) => {
            let updated_at_ms = to_i64(batch.updated_at_ms, "updated_at_ms")?;
            let events = Journal::encode(&batch.events)?;
            Encoded::Append {
                id: batch.saga_id.clone(),
                status: batch.status.as_str(),
                updated_at_ms,
                told: events.tells(updated_at_ms),
                events,
                shard: batch.fence.map(|f| shard_i32(f.shard)).transpose()?,
                epoch: batch.fence.map(|f| to_i64(f.epoch, "epoch")).transpose()?,
            }
        }
        Op::Purge { before_ms, limit } => Encoded::Purge {
            before_ms: to_i64(*before_ms, "before_ms")?,
            limit: i64::try_from(*limit).unwrap_or(i64::MAX),
        },
    })
}

fn shard_i32(shard: u32) -> Result<i32, Error> {
    i32::try_from(shard).map_err(|_| Error::Corrupt(format!("shard {shard} out of range")))
}

fn events_of(op: &Op) -> u64 {
    match op {
        Op::Start(saga) => saga.events.len() as u64,
        Op::Append(batch) => batch.events.len() as u64,
        Op::PutDefinition { .. } | Op::Purge { .. } => 0,
    }
}

/// The events of a batch's starts or appends as the arrays a bulk statement takes: for each
/// event, the number of its request in the statement's rows, its place among the request's
/// events, its time and its body.
#[derive(Default)]
struct Events<'a> {
    ords: Vec<i64>,
    places: Vec<i64>,
    at_ms: Vec<i64>,
    bodies: Vec<&'a str>,
}

impl<'a> Events<'a> {
    fn add(&mut self, ord: i64, journal: &'a Journal) {
        for (place, (at_ms, body)) in journal.at_ms.iter().zip(&journal.bodies).enumerate() {
            self.ords.push(ord);
            self.places.push(place as i64);
            self.at_ms.push(*at_ms);
            self.bodies.push(body);
        }
    }
}

/// Whether no two of `values` are equal (a bulk statement takes each saga once).
fn distinct(mut values: Vec<&str>) -> bool {
    let len = values.len();
    values.sort_unstable();
    values.dedup();
    values.len() == len
}

/// A batch's appends as the arrays of `APPEND_MANY_SQL`, borrowed from their encodings.
#[derive(Default)]
struct Appends<'a> {
    /// Where each append is in the batch, in the arrays' order.
    index: Vec<usize>,
    ids: Vec<&'a str>,
    statuses: Vec<&'static str>,
    updated_at_ms: Vec<i64>,
    counts: Vec<i64>,
    told: Vec<bool>,
    shards: Vec<Option<i32>>,
    epochs: Vec<Option<i64>>,
    events: Events<'a>,
}

impl<'a> Appends<'a> {
    /// The batch's appends, when there are at least two and no saga has two of them.
    fn of(encoded: &'a [Encoded]) -> Option<Appends<'a>> {
        let mut appends = Appends::default();
        for (index, e) in encoded.iter().enumerate() {
            let Encoded::Append {
                id,
                status,
                updated_at_ms,
                events,
                told,
                shard,
                epoch,
            } = e
            else {
                continue;
            };
            appends.index.push(index);
            appends.ids.push(id);
            appends.statuses.push(status);
            appends.updated_at_ms.push(*updated_at_ms);
            appends.counts.push(events.count);
            appends.told.push(*told);
            appends.shards.push(*shard);
            appends.epochs.push(*epoch);
            let ord = appends.index.len() as i64;
            appends.events.add(ord, events);
        }
        (appends.index.len() >= 2 && distinct(appends.ids.clone())).then_some(appends)
    }

    fn holds(&self, index: usize) -> bool {
        self.index.binary_search(&index).is_ok()
    }

    fn send<'b>(&'b self, client: &'b Object, statements: &'b Statements) -> Answer<'b> {
        prepared(
            client,
            &statements.append_many,
            vec![
                &self.ids,
                &self.statuses,
                &self.updated_at_ms,
                &self.counts,
                &self.shards,
                &self.epochs,
                &self.events.ords,
                &self.events.places,
                &self.events.at_ms,
                &self.events.bodies,
                &self.told,
            ],
        )
    }
}

/// A batch's starts as the arrays of `START_MANY_SQL`, borrowed from their encodings.
#[derive(Default)]
struct Starts<'a> {
    /// Where each start is in the batch, in the arrays' order.
    index: Vec<usize>,
    ids: Vec<&'a str>,
    definitions: Vec<&'a str>,
    versions: Vec<i64>,
    statuses: Vec<&'static str>,
    created_at_ms: Vec<i64>,
    updated_at_ms: Vec<i64>,
    keys: Vec<Option<&'a str>>,
    hashes: Vec<Option<&'a str>>,
    counts: Vec<i64>,
    shards: Vec<i32>,
    epochs: Vec<Option<i64>>,
    handoffs: Vec<bool>,
    events: Events<'a>,
}

impl<'a> Starts<'a> {
    /// The batch's starts, when there are at least two and no two share an id or an
    /// idempotency key.
    fn of(encoded: &'a [Encoded]) -> Option<Starts<'a>> {
        let mut starts = Starts::default();
        for (index, e) in encoded.iter().enumerate() {
            let Encoded::Start {
                id,
                definition,
                version,
                status,
                created_at_ms,
                updated_at_ms,
                idempotency_key,
                request_hash,
                events,
                shard,
                epoch,
                handoff,
            } = e
            else {
                continue;
            };
            starts.index.push(index);
            starts.ids.push(id);
            starts.definitions.push(definition);
            starts.versions.push(*version);
            starts.statuses.push(status);
            starts.created_at_ms.push(*created_at_ms);
            starts.updated_at_ms.push(*updated_at_ms);
            starts.keys.push(idempotency_key.as_deref());
            starts.hashes.push(request_hash.as_deref());
            starts.counts.push(events.count);
            starts.shards.push(*shard);
            starts.epochs.push(*epoch);
            starts.handoffs.push(*handoff);
            let ord = starts.index.len() as i64;
            starts.events.add(ord, events);
        }
        let keys = starts.keys.iter().flatten().copied().collect();
        (starts.index.len() >= 2 && distinct(starts.ids.clone()) && distinct(keys))
            .then_some(starts)
    }

    fn holds(&self, index: usize) -> bool {
        self.index.binary_search(&index).is_ok()
    }

    fn send<'b>(&'b self, client: &'b Object, statements: &'b Statements) -> Answer<'b> {
        prepared(
            client,
            &statements.start_many,
            vec![
                &self.ids,
                &self.definitions,
                &self.versions,
                &self.statuses,
                &self.created_at_ms,
                &self.updated_at_ms,
                &self.keys,
                &self.hashes,
                &self.counts,
                &self.shards,
                &self.epochs,
                &self.handoffs,
                &self.events.ords,
                &self.events.places,
                &self.events.at_ms,
                &self.events.bodies,
            ],
        )
    }
}

// ---- pipelining -------------------------------------------------------------------------------

type Answer<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a>>;

fn simple<'a>(client: &'a Object, sql: &'static str) -> Answer<'a> {
    Box::pin(async move { client.batch_execute(sql).await.map(|()| Vec::new()) })
}

fn prepared<'a>(
    client: &'a Object,
    statement: &'a Statement,
    params: Vec<&'a (dyn ToSql + Sync)>,
) -> Answer<'a> {
    Box::pin(async move { client.query(statement, &params).await })
}

fn request<'a>(client: &'a Object, statements: &'a Statements, encoded: &'a Encoded) -> Answer<'a> {
    match encoded {
        Encoded::Definition { name, body, now_ms } => {
            prepared(client, &statements.put_definition, vec![name, body, now_ms])
        }
        Encoded::Start {
            id,
            definition,
            version,
            status,
            created_at_ms,
            updated_at_ms,
            idempotency_key,
            request_hash,
            events,
            shard,
            epoch,
            handoff,
        } => prepared(
            client,
            &statements.start,
            vec![
                id,
                definition,
                version,
                status,
                created_at_ms,
                updated_at_ms,
                idempotency_key,
                request_hash,
                &events.count,
                &events.at_ms,
                &events.bodies,
                shard,
                epoch,
                handoff,
            ],
        ),
        Encoded::Append {
            id,
            status,
            updated_at_ms,
            events,
            told,
            shard,
            epoch,
        } => prepared(
            client,
            &statements.append,
            vec![
                id,
                status,
                updated_at_ms,
                &events.count,
                &events.at_ms,
                &events.bodies,
                shard,
                epoch,
                told,
            ],
        ),
        Encoded::Purge { before_ms, limit } => {
            prepared(client, &statements.purge, vec![before_ms, limit])
        }
    }
}

/// Sends every statement before reading any answer, in order, then collects the answers.
///
/// A tokio-postgres query writes its messages to the connection on its first poll, so polling
/// each future once, in order, puts them on the wire in that order; the server answers in the
/// same order.
async fn pipeline(mut answers: Vec<Answer<'_>>) -> Vec<Result<Vec<Row>, tokio_postgres::Error>> {
    let mut done: Vec<Option<Result<Vec<Row>, tokio_postgres::Error>>> =
        answers.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (answer, slot) in answers.iter_mut().zip(done.iter_mut()) {
            if let Poll::Ready(result) = answer.as_mut().poll(cx) {
                *slot = Some(result);
            }
        }
        Poll::Ready(())
    })
    .await;
    let mut results = Vec::with_capacity(answers.len());
    for (answer, slot) in answers.iter_mut().zip(done) {
        results.push(match slot {
            Some(result) => result,
            None => answer.await,
        });
    }
    results
}

// ---- one run of a batch -----------------------------------------------------------------------

/// Why a run of a batch did not commit.
enum BatchError {
    /// A serialization failure, a deadlock, or a race with another process: run it again.
    Conflict(String),
    /// The connection failed before `COMMIT` was sent: nothing landed.
    Unavailable(String),
    /// The server refused something outside any one request (or `COMMIT`): nothing landed.
    Failed(String),
    /// The connection failed after `COMMIT` was sent: the batch may have landed, and if so,
    /// these are its answers.
    Ambiguous(String, Vec<Result<Outcome, Error>>),
}

impl BatchError {
    /// A statement outside any one request failed.
    fn from_statement(e: &tokio_postgres::Error) -> BatchError {
        if is_connection_failure(e) {
            BatchError::Unavailable(describe(e))
        } else if is_conflict(e) {
            BatchError::Conflict(describe(e))
        } else {
            BatchError::Failed(describe(e))
        }
    }
}

/// What a request's one statement answered.
enum Interpreted {
    Done(Result<Outcome, Error>),
    /// Another process changed what the statement relied on after its snapshot.
    Raced(&'static str),
}

fn interpret(op: &Op, rows: &[Row]) -> Result<Interpreted, Error> {
    Ok(match op {
        Op::PutDefinition { name, body, .. } => match rows.first() {
            None => Interpreted::Raced("another process registered a version of the definition"),
            Some(row) => {
                let version: i64 = row.try_get(0)?;
                let created_at_ms: i64 = row.try_get(1)?;
                let created: bool = row.try_get(2)?;
                let record = DefinitionRecord {
                    name: name.clone(),
                    version: super::read::to_u32(version, "definition version")?,
                    body: body.clone(),
                    created_at_ms: super::read::to_u64(created_at_ms, "created_at_ms")?,
                };
                Interpreted::Done(Ok(Outcome::Definition(record, created)))
            }
        },
        Op::Start(saga) => {
            let row = rows
                .first()
                .ok_or_else(|| Error::Corrupt("starting a saga answered no row".into()))?;
            start_outcome(saga, row, 0)?
        }
        Op::Append(batch) => {
            let row = rows
                .first()
                .ok_or_else(|| Error::Corrupt("appending answered no row".into()))?;
            Interpreted::Done(append_outcome(batch, row.try_get(0)?, row.try_get(1)?))
        }
        Op::Purge { .. } => {
            let row = rows
                .first()
                .ok_or_else(|| Error::Corrupt("purging answered no row".into()))?;
            let count: i64 = row.try_get(0)?;
            Interpreted::Done(Ok(Outcome::Purged(super::read::to_u64(count, "purged")?)))
        }
    })
}

/// What a start's row says (`START_SQL`'s columns, from column `at`): inserted, or the key's
/// holder, or fenced, or raced.
fn start_outcome(saga: &NewSaga, row: &Row, at: usize) -> Result<Interpreted, Error> {
    let inserted: i64 = row.try_get(at)?;
    let holder: Option<&str> = row.try_get(at + 2)?;
    let fence_held: bool = row.try_get(at + 11)?;
    Ok(if inserted > 0 {
        Interpreted::Done(Ok(Outcome::Start(StartOutcome::Created)))
    } else if holder.is_some() {
        let (_, record) = saga_row(row, at + 1)?;
        Interpreted::Done(Ok(Outcome::Start(StartOutcome::Existing(record))))
    } else if let (false, Some(fence)) = (fence_held, saga.fence) {
        Interpreted::Done(Err(Error::Fenced {
            shard: fence.shard,
            epoch: fence.epoch,
        }))
    } else {
        Interpreted::Raced("another process took the idempotency key")
    })
}

/// Reads `START_MANY_SQL`'s answer: a row per start, in the order of `starts`.
fn read_starts(
    starts: &Starts<'_>,
    ops: &[Op],
    rows: &[Row],
    results: &mut [Option<Result<Outcome, Error>>],
) -> Result<(), BatchError> {
    if rows.len() != starts.index.len() {
        return Err(BatchError::Failed(
            "internal: the starts answered a row count of their own".into(),
        ));
    }
    for (row, &index) in rows.iter().zip(&starts.index) {
        let Op::Start(saga) = &ops[index] else {
            return Err(BatchError::Failed("internal: not a start".into()));
        };
        match start_outcome(saga, row, 1) {
            Ok(Interpreted::Done(result)) => results[index] = Some(result),
            Ok(Interpreted::Raced(what)) => return Err(BatchError::Conflict(what.into())),
            Err(e) => return Err(BatchError::Failed(format!("reading an answer: {e}"))),
        }
    }
    Ok(())
}

/// What an append's row says: whether its fence held, and the first position it wrote.
fn append_outcome(
    batch: &AppendBatch,
    fence_held: bool,
    first_pos: Option<i64>,
) -> Result<Outcome, Error> {
    match (fence_held, first_pos, batch.fence) {
        (false, _, Some(fence)) => Err(Error::Fenced {
            shard: fence.shard,
            epoch: fence.epoch,
        }),
        (_, None, _) => Err(Error::Corrupt(format!("no saga {}", batch.saga_id))),
        (_, Some(_), _) => Ok(Outcome::Append),
    }
}

/// Reads `APPEND_MANY_SQL`'s answer: a row per append, in the order of `appends`.
fn read_appends(
    appends: &Appends<'_>,
    ops: &[Op],
    rows: &[Row],
    results: &mut [Option<Result<Outcome, Error>>],
) -> Result<(), BatchError> {
    if rows.len() != appends.index.len() {
        return Err(BatchError::Failed(
            "internal: the appends answered a row count of their own".into(),
        ));
    }
    for (row, &index) in rows.iter().zip(&appends.index) {
        let Op::Append(batch) = &ops[index] else {
            return Err(BatchError::Failed("internal: not an append".into()));
        };
        let read = row
            .try_get::<_, bool>(1)
            .and_then(|held| Ok((held, row.try_get::<_, Option<i64>>(2)?)));
        let (held, first_pos) =
            read.map_err(|e| BatchError::Failed(format!("reading an answer: {e}")))?;
        results[index] = Some(append_outcome(batch, held, first_pos));
    }
    Ok(())
}

/// The writer's marker for one batch: (writer id, batch number, now).
struct Mark {
    writer: i64,
    batch: i64,
    at_ms: i64,
}

/// Runs a batch once: one transaction. Its requests first go without savepoints (a
/// `SAVEPOINT` and a `RELEASE` per request tripled the statements the server runs, and more
/// than 64 subtransactions in one transaction overflow PostgreSQL's per-backend cache of them,
/// which slows every snapshot taken meanwhile). Should a request fail alone, the transaction is
/// rolled back and the batch runs again with each request in its own savepoint, so that the
/// one that fails leaves the others be.
async fn run_once(
    client: &Object,
    statements: &Statements,
    ops: &[Op],
    encoded: &[Encoded],
    mark: &Mark,
) -> Result<Vec<Result<Outcome, Error>>, BatchError> {
    let total = encoded.len();
    let mut results: Vec<Option<Result<Outcome, Error>>> = (0..total).map(|_| None).collect();
    let mut next = 0;
    let mut fenced: Vec<i32> = encoded
        .iter()
        .filter_map(|e| match e {
            Encoded::Append {
                shard: Some(shard), ..
            } => Some(*shard),
            Encoded::Start {
                shard,
                epoch: Some(_),
                ..
            } => Some(*shard),
            _ => None,
        })
        .collect();
    fenced.sort_unstable();
    fenced.dedup();
    let begin = || {
        let mut prefix = vec![
            simple(client, "BEGIN"),
            prepared(
                client,
                &statements.mark,
                vec![&mark.writer, &mark.batch, &mark.at_ms],
            ),
        ];
        if !fenced.is_empty() {
            prefix.push(prepared(client, &statements.lock_shards, vec![&fenced]));
        }
        prefix
    };
    // Without savepoints (the first round), a batch's starts go in one statement and its
    // appends in another, sent last.
    let starts = Starts::of(encoded);
    let appends = Appends::of(encoded);
    let mut savepoints = false;
    let mut prefix = begin();
    loop {
        let bulk_starts = starts.as_ref().filter(|_| !savepoints);
        let bulk = appends.as_ref().filter(|_| !savepoints);
        let alone = |index: usize| {
            bulk_starts.is_none_or(|starts| !starts.holds(index))
                && bulk.is_none_or(|appends| !appends.holds(index))
        };
        let prefix_len = prefix.len();
        let mut sent = prefix;
        for (index, encoded) in encoded.iter().enumerate().skip(next) {
            if !alone(index) {
                continue;
            }
            if savepoints {
                sent.push(prepared(client, &statements.savepoint, Vec::new()));
            }
            sent.push(request(client, statements, encoded));
            if savepoints {
                sent.push(prepared(client, &statements.release, Vec::new()));
            }
        }
        if let Some(starts) = bulk_starts {
            sent.push(starts.send(client, statements));
        }
        if let Some(appends) = bulk {
            sent.push(appends.send(client, statements));
        }
        let mut answers = pipeline(sent).await.into_iter();
        for answer in answers.by_ref().take(prefix_len) {
            answer.map_err(|e| BatchError::from_statement(&e))?;
        }
        let mut failed = None;
        for index in (next..total).filter(|index| alone(*index)) {
            let (savepoint, statement, release) = if savepoints {
                (answers.next(), answers.next(), answers.next())
            } else {
                (Some(Ok(Vec::new())), answers.next(), Some(Ok(Vec::new())))
            };
            let (Some(savepoint), Some(statement), Some(release)) = (savepoint, statement, release)
            else {
                return Err(BatchError::Failed("internal: an answer is missing".into()));
            };
            savepoint.map_err(|e| BatchError::from_statement(&e))?;
            let rows = match statement {
                Ok(rows) => rows,
                Err(e) if is_connection_failure(&e) || is_conflict(&e) => {
                    return Err(BatchError::from_statement(&e));
                }
                Err(e) => {
                    // The request alone fails; the transaction is aborted from here on.
                    results[index] = Some(Err(Error::Postgres(e)));
                    failed = Some(index);
                    break;
                }
            };
            match interpret(&ops[index], &rows) {
                Ok(Interpreted::Done(result)) => results[index] = Some(result),
                Ok(Interpreted::Raced(what)) => return Err(BatchError::Conflict(what.into())),
                // Its savepoint is already released: the batch cannot undo it alone.
                Err(e) => return Err(BatchError::Failed(format!("reading an answer: {e}"))),
            }
            release.map_err(|e| BatchError::from_statement(&e))?;
        }
        if let (None, Some(starts)) = (failed, bulk_starts) {
            match answers.next() {
                Some(Ok(rows)) => read_starts(starts, ops, &rows, &mut results)?,
                Some(Err(e)) if is_connection_failure(&e) || is_conflict(&e) => {
                    return Err(BatchError::from_statement(&e));
                }
                // One of the starts failed (a taken id): which one, only a run with savepoints
                // tells.
                Some(Err(_)) => failed = starts.index.first().copied(),
                None => return Err(BatchError::Failed("internal: an answer is missing".into())),
            }
        }
        if let (None, Some(appends)) = (failed, bulk) {
            match answers.next() {
                Some(Ok(rows)) => read_appends(appends, ops, &rows, &mut results)?,
                Some(Err(e)) if is_connection_failure(&e) || is_conflict(&e) => {
                    return Err(BatchError::from_statement(&e));
                }
                // One of the appends failed: which one, only a run with savepoints tells.
                Some(Err(_)) => failed = appends.index.first().copied(),
                None => return Err(BatchError::Failed("internal: an answer is missing".into())),
            }
        }
        match failed {
            None => break,
            Some(_) if !savepoints => {
                // The whole transaction is aborted: it starts over, a statement per request,
                // with savepoints.
                client
                    .batch_execute("ROLLBACK")
                    .await
                    .map_err(|e| BatchError::from_statement(&e))?;
                savepoints = true;
                next = 0;
                results.iter_mut().for_each(|r| *r = None);
                prefix = begin();
            }
            Some(index) => {
                // Undo the failed request; the requests after it are sent again.
                next = index + 1;
                prefix = vec![
                    simple(client, "ROLLBACK TO SAVEPOINT request"),
                    simple(client, "RELEASE SAVEPOINT request"),
                ];
            }
        }
    }
    let results: Vec<Result<Outcome, Error>> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Corrupt("internal: a request was not run".into()))))
        .collect();
    match client.batch_execute("COMMIT").await {
        Ok(()) => Ok(results),
        Err(e) if is_connection_failure(&e) => Err(BatchError::Ambiguous(describe(&e), results)),
        Err(e) if is_conflict(&e) => Err(BatchError::Conflict(describe(&e))),
        Err(e) => Err(BatchError::Failed(format!(
            "commit refused: {}",
            describe(&e)
        ))),
    }
}

// ---- the writer -------------------------------------------------------------------------------

/// Longest pause between two tries to reconnect, so a database that is down is not hammered.
const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(2);
/// First pause after a failed connect.
const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(50);

pub(crate) struct Writer {
    pool: Pool,
    /// The connection, kept between batches; `None` after it failed.
    conn: Option<Object>,
    config: PgConfig,
    stats: Arc<StatsCells>,
    /// This writer's row in `sagaflow_writers`.
    id: i64,
    /// The number of the last batch run.
    batch: i64,
    /// When the last connect failed: wait until then before the next try.
    reconnect_at: Option<Instant>,
    reconnect_delay: Duration,
}

impl Writer {
    pub(crate) fn new(pool: Pool, config: PgConfig, stats: Arc<StatsCells>) -> Writer {
        Writer {
            pool,
            conn: None,
            config,
            stats,
            // Positive, so it reads as what it is in the table.
            id: (random_u64() >> 1) as i64,
            batch: 0,
            reconnect_at: None,
            reconnect_delay: RECONNECT_DELAY_MIN,
        }
    }

    /// Registers the writer's row, so that the first batch's outcome can be resolved.
    pub(crate) async fn register(&mut self, now_ms: i64) -> Result<(), Error> {
        let conn = self.checkout().await?;
        // An answered write must survive a crash of the database. (CockroachDB has no such
        // setting: the query fails there and nothing is said.)
        if let Ok(row) = conn.query_one("SHOW synchronous_commit", &[]).await
            && let Ok(setting) = row.try_get::<_, String>(0)
            && setting == "off"
        {
            tracing::warn!(
                "synchronous_commit is off: writes answered as durable can be lost if the \
                 database crashes; turn it on"
            );
        }
        let marked = conn
            .execute(MARK_SQL, &[&self.id, &self.batch, &now_ms])
            .await;
        self.checkin(conn);
        marked?;
        Ok(())
    }

    /// Takes requests until the channel closes and every sender is gone, then removes its row.
    pub(crate) async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let batch_max = self.config.batch_max.max(1);
        let mut batch = Vec::with_capacity(batch_max);
        while let Some(first) = requests.recv().await {
            batch.push(first);
            while batch.len() < batch_max {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.write(&mut batch).await;
        }
        if let Ok(conn) = self.checkout().await
            && let Err(e) = conn
                .execute("DELETE FROM sagaflow_writers WHERE id = $1", &[&self.id])
                .await
        {
            tracing::debug!(error = %describe(&e), "removing the writer's row failed");
        }
    }

    /// The writer's connection, reconnecting (after a pause if the last try failed). Give it
    /// back with `checkin` when it is fit for the next batch; drop it otherwise (`discard`).
    async fn checkout(&mut self) -> Result<Object, Error> {
        if let Some(conn) = self.conn.take() {
            if !conn.is_closed() {
                return Ok(conn);
            }
            discard(conn);
        }
        if let Some(at) = self.reconnect_at {
            tokio::time::sleep_until(at).await;
        }
        match self.pool.get().await {
            Ok(conn) => {
                if self.reconnect_at.take().is_some() {
                    tracing::info!("journal writer reconnected to the database");
                }
                self.reconnect_delay = RECONNECT_DELAY_MIN;
                Ok(conn)
            }
            Err(e) => {
                let error = unavailable(e);
                if self.reconnect_at.is_none() {
                    tracing::error!(%error, "journal writer cannot reach the database");
                } else {
                    tracing::debug!(%error, "journal writer still cannot reach the database");
                }
                self.reconnect_at = Some(Instant::now() + jitter(self.reconnect_delay));
                self.reconnect_delay = (self.reconnect_delay * 2).min(RECONNECT_DELAY_MAX);
                Err(error)
            }
        }
    }

    fn checkin(&mut self, conn: Object) {
        self.conn = Some(conn);
    }

    /// Ends a failed run's transaction and keeps the connection; one that cannot is dropped.
    async fn rollback(&mut self, conn: Object) {
        if conn.batch_execute("ROLLBACK").await.is_ok() {
            self.checkin(conn);
        } else {
            discard(conn);
        }
    }

    async fn write(&mut self, requests: &mut Vec<Request>) {
        let mut ops = Vec::with_capacity(requests.len());
        let mut encoded = Vec::with_capacity(requests.len());
        let mut replies = Vec::with_capacity(requests.len());
        for Request { op, reply } in requests.drain(..) {
            match encode(&op) {
                Ok(e) => {
                    ops.push(op);
                    encoded.push(e);
                    replies.push(reply);
                }
                // Never sent: it fails alone.
                Err(e) => reply.send(Err(e)),
            }
        }
        if ops.is_empty() {
            return;
        }
        self.batch += 1;
        let outcome = self.commit(&ops, &encoded).await;
        match outcome {
            Ok(results) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .requests
                    .fetch_add(ops.len() as u64, Ordering::Relaxed);
                self.stats
                    .events
                    .fetch_add(ops.iter().map(events_of).sum(), Ordering::Relaxed);
                for (reply, result) in replies.into_iter().zip(results) {
                    reply.send(result);
                }
            }
            Err(failure) => {
                for reply in replies {
                    reply.send(Err(failure.to_error()));
                }
            }
        }
    }

    /// Runs the batch until it commits, fails for good, or runs out of conflict retries.
    async fn commit(
        &mut self,
        ops: &[Op],
        encoded: &[Encoded],
    ) -> Result<Vec<Result<Outcome, Error>>, Failure> {
        let mark = Mark {
            writer: self.id,
            batch: self.batch,
            at_ms: now_ms(),
        };
        let tries_max = self.config.conflict_tries_max.max(1);
        let mut backoff = self.config.conflict_backoff;
        for attempt in 1..=tries_max {
            let conn = self.checkout().await.map_err(|e| match e {
                Error::Unavailable(message) => Failure::Unavailable(message),
                other => Failure::Unavailable(other.to_string()),
            })?;
            let statements = match Statements::prepare(&conn).await {
                Ok(statements) => statements,
                Err(e) if is_connection_failure(&e) => {
                    discard(conn);
                    return Err(Failure::Unavailable(describe(&e)));
                }
                Err(e) => {
                    self.checkin(conn);
                    return Err(Failure::Failed(format!(
                        "preparing statements: {}",
                        describe(&e)
                    )));
                }
            };
            let ran = run_once(&conn, &statements, ops, encoded, &mark).await;
            match ran {
                Ok(results) => {
                    self.checkin(conn);
                    return Ok(results);
                }
                Err(BatchError::Conflict(message)) => {
                    self.rollback(conn).await;
                    if attempt == tries_max {
                        tracing::warn!(%message, attempt, "journal batch gave up on conflicts");
                        return Err(Failure::Conflict(message));
                    }
                    tracing::debug!(%message, attempt, "journal batch conflicted; running it again");
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff *= 2;
                }
                Err(BatchError::Unavailable(message)) => {
                    tracing::warn!(%message, "journal batch lost its connection; nothing was written");
                    discard(conn);
                    return Err(Failure::Unavailable(message));
                }
                Err(BatchError::Failed(message)) => {
                    tracing::error!(%message, "journal batch failed");
                    self.rollback(conn).await;
                    return Err(Failure::Failed(message));
                }
                Err(BatchError::Ambiguous(message, results)) => {
                    discard(conn);
                    tracing::warn!(%message, "journal lost its connection during COMMIT; resolving");
                    return match self.resolve(mark.batch).await {
                        Ok(true) => {
                            tracing::info!("the batch whose COMMIT lost its answer had landed");
                            Ok(results)
                        }
                        Ok(false) => Err(Failure::Unavailable(format!(
                            "{message} (the batch did not land)"
                        ))),
                        Err(why) => {
                            tracing::error!(%message, %why, "cannot learn whether a journal batch landed");
                            Err(Failure::Unknown(format!("{message}; {why}")))
                        }
                    };
                }
            }
        }
        Err(Failure::Conflict("no tries".into()))
    }

    /// Whether batch `batch` committed: waits for the writer row's lock (held by the old
    /// transaction until it commits or aborts), then reads the number it holds.
    async fn resolve(&mut self, batch: i64) -> Result<bool, String> {
        let deadline = Instant::now() + self.config.resolve_timeout;
        let mut delay = RECONNECT_DELAY_MIN;
        loop {
            let failure = match tokio::time::timeout_at(deadline, self.pool.get()).await {
                Err(_) => return Err("timed out reconnecting".into()),
                Ok(Err(e)) => unavailable(e).to_string(),
                Ok(Ok(client)) => {
                    let read = async {
                        let statement = client.prepare_cached(RESOLVE_SQL).await?;
                        client.query(&statement, &[&self.id]).await
                    };
                    match tokio::time::timeout_at(deadline, read).await {
                        Ok(Ok(rows)) => {
                            let landed = match rows.first() {
                                Some(row) => row.try_get::<_, i64>(0).map_err(|e| describe(&e))?,
                                None => -1,
                            };
                            return Ok(landed == batch);
                        }
                        Ok(Err(e)) => {
                            let message = describe(&e);
                            discard(client);
                            message
                        }
                        Err(_) => {
                            // Closing the connection ends the server's wait for the lock.
                            discard(client);
                            return Err("timed out waiting for the old transaction to end".into());
                        }
                    }
                }
            };
            if Instant::now() + delay >= deadline {
                return Err(failure);
            }
            tracing::debug!(%failure, "resolving a lost COMMIT; trying again");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RECONNECT_DELAY_MAX);
        }
    }
}

/// Drops a connection for good (it is broken, or in an unknown state).
fn discard(conn: Object) {
    drop(Object::take(conn));
}

/// Why a batch failed, for every request in it.
enum Failure {
    Unavailable(String),
    Conflict(String),
    Failed(String),
    Unknown(String),
}

impl Failure {
    fn to_error(&self) -> Error {
        match self {
            Failure::Unavailable(m) => Error::Unavailable(m.clone()),
            Failure::Conflict(m) => Error::Conflict(m.clone()),
            Failure::Failed(m) => Error::Corrupt(format!("the journal batch failed: {m}")),
            Failure::Unknown(m) => Error::CommitUnknown(m.clone()),
        }
    }
}

/// Between half and all of `delay`, so writers that failed together do not retry together.
fn jitter(delay: Duration) -> Duration {
    let half = delay / 2;
    let spread = half.as_micros().max(1) as u64;
    half + Duration::from_micros(random_u64() % spread)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
