//! Opening a connection and migrating the schema.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::Error;

/// The schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE definitions (
        name          TEXT    NOT NULL,
        version       INTEGER NOT NULL,
        body          TEXT    NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE sagas (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        id              TEXT    NOT NULL UNIQUE,
        definition      TEXT    NOT NULL,
        version         INTEGER NOT NULL,
        status          TEXT    NOT NULL,
        created_at_ms   INTEGER NOT NULL,
        updated_at_ms   INTEGER NOT NULL,
        idempotency_key TEXT    UNIQUE,
        request_hash    TEXT
    );
    CREATE INDEX sagas_by_status ON sagas (status, seq);
    CREATE INDEX sagas_by_definition ON sagas (definition, seq);
    CREATE TABLE events (
        seq     INTEGER PRIMARY KEY,
        saga_id TEXT    NOT NULL,
        at_ms   INTEGER NOT NULL,
        body    TEXT    NOT NULL
    );
    CREATE INDEX events_by_saga ON events (saga_id, seq);
"#,
    // Retention finds what to purge without scanning every finished saga: the scan ran in the
    // writer thread and grew with the journal (0.1-0.2 s with 1M finished sagas).
    r#"
    CREATE INDEX sagas_finished_by_time ON sagas (updated_at_ms)
        WHERE status IN ('completed', 'compensated');
"#,
    // One row per journal write (a JSON array of its events) keyed by the saga's integer `seq`,
    // instead of one row per event keyed by its text id: half the rows, and index entries of a
    // few bytes instead of ~45, so a group commit dirties fewer pages (the hot path's cost).
    // Existing events move over one row each, in journal order.
    r#"
    CREATE TABLE journal (
        seq      INTEGER PRIMARY KEY,
        saga_seq INTEGER NOT NULL,
        body     TEXT    NOT NULL
    );
    INSERT INTO journal (saga_seq, body)
        SELECT s.seq, '[' || e.body || ']' FROM events e JOIN sagas s ON s.id = e.saga_id
        ORDER BY e.seq;
    CREATE INDEX journal_by_saga ON journal (saga_seq, seq);
    DROP TABLE events;
"#,
    // The `sagas` table rebuilt without two pages that every group commit with a start in it
    // wrote to the WAL (one commit wrote ~14.6 pages: BENCHMARKS.md, session 9):
    // - `AUTOINCREMENT` kept its high-water mark in `sqlite_sequence`, a row rewritten by every
    //   start. A plain integer key takes the largest `seq` plus one, which differs only once the
    //   newest sagas are purged (retention purges finished sagas older than a cut-off, with
    //   their journal rows in the same transaction), and nothing refers to a purged `seq`;
    // - the `UNIQUE` idempotency key indexed the NULL of every saga started without a key.
    //   A partial index keeps the keys alone, with the same uniqueness.
    // Every row keeps its `seq`, so the journal's `saga_seq` still points at it.
    r#"
    CREATE TABLE sagas_v4 (
        seq             INTEGER PRIMARY KEY,
        id              TEXT    NOT NULL UNIQUE,
        definition      TEXT    NOT NULL,
        version         INTEGER NOT NULL,
        status          TEXT    NOT NULL,
        created_at_ms   INTEGER NOT NULL,
        updated_at_ms   INTEGER NOT NULL,
        idempotency_key TEXT,
        request_hash    TEXT
    );
    INSERT INTO sagas_v4 (seq, id, definition, version, status, created_at_ms, updated_at_ms,
                          idempotency_key, request_hash)
        SELECT seq, id, definition, version, status, created_at_ms, updated_at_ms,
               idempotency_key, request_hash
        FROM sagas ORDER BY seq;
    DROP TABLE sagas;
    ALTER TABLE sagas_v4 RENAME TO sagas;
    CREATE UNIQUE INDEX sagas_by_idempotency_key ON sagas (idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX sagas_by_status ON sagas (status, seq);
    CREATE INDEX sagas_by_definition ON sagas (definition, seq);
    CREATE INDEX sagas_finished_by_time ON sagas (updated_at_ms)
        WHERE status IN ('completed', 'compensated');
"#,
    // An append that keeps the saga's status (a step's answer with the next step's attempt)
    // writes its journal row only, with its `updated_at` in the row's `at_ms`, instead of also
    // rewriting the saga's row (the journal thread's CPU per saga at `-c 64` −6 to −10 %,
    // BENCHMARKS.md). Rows written before it have none: their saga's row holds `updated_at`.
    r#"
    ALTER TABLE journal ADD COLUMN at_ms INTEGER;
"#,
];

/// Opens a connection with the settings every connection needs.
pub(crate) fn open(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // WAL lets readers run beside the writer; FULL fsyncs the WAL on every commit, so a
    // resolved write survives a power cut, not just a process crash.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Brings the schema up to date.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), Error> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let applied = usize::try_from(applied)
        .map_err(|_| Error::Corrupt(format!("schema version {applied}")))?;
    if applied > MIGRATIONS.len() {
        return Err(Error::Corrupt(format!(
            "the journal's schema version {applied} is newer than this binary's {}",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        // A fresh journal runs them all in milliseconds; an old one may copy a table (version
        // 4 rebuilt 1M sagas in ~10 s), during which the server is not ready yet: say so.
        if applied > 0 {
            tracing::info!(
                from = index,
                to = index + 1,
                "migrating the journal's schema"
            );
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
