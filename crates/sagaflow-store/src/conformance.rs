//! The conformance suite: the behaviours every [`Store`] backend must have, written only against
//! the trait, so that each backend's tests run the same cases.
//!
//! Every case takes a fresh, empty store and panics when the backend misbehaves. A backend's test
//! file calls [`run_all`], or each case from its own `#[tokio::test]` (on a multi-thread runtime:
//! several cases spawn concurrent writers). [`resolved_writes_survive_reopen`] needs a second
//! store on the same data, so it is not part of [`run_all`]: call it with a way to reopen.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::{Event, EventKind, Payload, Phase, SagaStatus};
use tokio::task::JoinSet;

use crate::{AppendBatch, Error, ListFilter, LoadedSaga, NewSaga, SagaRecord, StartOutcome, Store};

/// Calls `$m!(case, case, …)` with every case of the suite (all but
/// `resolved_writes_survive_reopen`, which needs a backend-specific reopen). The one list of
/// cases: `run_all` and each backend's test file expand from it.
#[macro_export]
macro_rules! for_each_conformance_case {
    ($m:ident) => {
        $m!(
            first_definition_put_creates_version_1,
            identical_definition_body_is_a_no_op,
            different_definition_body_creates_next_version,
            get_definition_latest_or_by_version,
            unknown_definition_is_none,
            list_definitions_gives_latest_of_each_name,
            started_saga_reads_back_with_its_events,
            start_with_a_taken_id_fails_and_writes_nothing,
            append_adds_events_in_order_and_sets_status,
            updated_at_is_the_last_appends_whatever_its_events_say,
            repeated_idempotency_key_writes_nothing,
            concurrent_starts_with_one_key_create_one_saga,
            find_idempotency_key_finds_the_holder,
            list_sagas_newest_first,
            list_sagas_filters_by_status_and_definition,
            paging_never_skips_or_repeats_while_sagas_start,
            load_unfinished_returns_running_and_compensating,
            count_by_status_counts_every_saga,
            purge_removes_only_old_completed_or_compensated_sagas,
            concurrent_appends_all_land_in_order,
            append_to_unknown_saga_fails_alone,
            appends_land_on_their_own_saga_after_starts_failed_beside_them,
            get_saga_is_a_consistent_snapshot,
            ping_answers,
            writes_after_close_fail_closed,
        );
    };
}

/// Runs every case (but the reopen one), each on a fresh store from `open`.
pub async fn run_all<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    macro_rules! run {
        ($($case:ident),* $(,)?) => {
            $( $case(open().await).await; )*
        };
    }
    for_each_conformance_case!(run);
}

// ---- helpers ----------------------------------------------------------------------------------

const T0: u64 = 1_700_000_000_000;

fn started(definition: &str, version: u32, at_ms: u64) -> Event {
    Event {
        at_ms,
        kind: EventKind::SagaStarted {
            definition: definition.to_owned(),
            version,
            input: Payload::from_json(r#"{"order":42,"items":["a","b"]}"#).unwrap(),
            deadline_at_ms: Some(at_ms + 60_000),
            trace_id: "0af7651916cd43dd8448eb211c80319c".to_owned(),
        },
    }
}

/// An action's attempt began (for backends' own tests beside the suite).
pub fn attempt_started(step: usize, attempt: u32, at_ms: u64) -> Event {
    Event {
        at_ms,
        kind: EventKind::AttemptStarted {
            step,
            phase: Phase::Action,
            attempt,
        },
    }
}

fn attempt_succeeded(step: usize, attempt: u32, at_ms: u64) -> Event {
    Event {
        at_ms,
        kind: EventKind::AttemptSucceeded {
            step,
            phase: Phase::Action,
            attempt,
            output: Payload::from_json(&format!(r#"{{"step":{step}}}"#)).unwrap(),
        },
    }
}

fn record(id: &str, definition: &str, status: SagaStatus, at_ms: u64) -> SagaRecord {
    SagaRecord {
        id: id.to_owned(),
        definition: definition.to_owned(),
        version: 1,
        status,
        created_at_ms: at_ms,
        updated_at_ms: at_ms,
        idempotency_key: None,
        request_hash: None,
        shard: 0,
    }
}

/// A running saga of `definition` with its `SagaStarted` event (also for a backend's own tests).
pub fn new_saga(id: &str, definition: &str, at_ms: u64) -> NewSaga {
    NewSaga {
        record: record(id, definition, SagaStatus::Running, at_ms),
        events: vec![started(definition, 1, at_ms)],
        fence: None,
        handoff: false,
    }
}

fn keyed_saga(id: &str, key: &str, hash: &str, at_ms: u64) -> NewSaga {
    let mut saga = new_saga(id, "place-order", at_ms);
    saga.record.idempotency_key = Some(key.to_owned());
    saga.record.request_hash = Some(hash.to_owned());
    saga
}

async fn start(store: &dyn Store, saga: NewSaga) {
    let id = saga.record.id.clone();
    let outcome = store.start_saga(saga).await.expect("start_saga");
    assert_eq!(outcome, StartOutcome::Created, "starting {id}");
}

async fn append(store: &dyn Store, id: &str, events: Vec<Event>, status: SagaStatus, at_ms: u64) {
    store
        .append(AppendBatch {
            saga_id: id.to_owned(),
            events,
            status,
            updated_at_ms: at_ms,
            fence: None,
        })
        .await
        .unwrap_or_else(|e| panic!("append to {id}: {e}"));
}

async fn get(store: &dyn Store, id: &str) -> LoadedSaga {
    store
        .get_saga(id)
        .await
        .expect("get_saga")
        .unwrap_or_else(|| panic!("saga {id} is missing"))
}

/// Moves a started saga to `status` (a terminal status with a matching last event).
async fn set_status(store: &dyn Store, id: &str, status: SagaStatus, at_ms: u64) {
    let event = match status {
        SagaStatus::Completed => EventKind::SagaCompleted,
        SagaStatus::Compensated => EventKind::SagaCompensated,
        SagaStatus::Compensating => EventKind::CompensationBegan {
            error: "declined".to_owned(),
        },
        SagaStatus::Failed => EventKind::SagaFailed {
            step: 0,
            error: "gave up".to_owned(),
        },
        SagaStatus::Running => EventKind::RetryRequested,
    };
    let event = Event { at_ms, kind: event };
    append(store, id, vec![event], status, at_ms).await;
}

/// Closes the store, failing (rather than hanging the suite) when that takes too long.
async fn close(store: &dyn Store) {
    tokio::time::timeout(Duration::from_secs(30), store.close())
        .await
        .expect("close finishes")
        .expect("close");
}

fn ids(records: &[SagaRecord]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

fn id_of(n: usize) -> String {
    format!("saga-{n:04}")
}

/// Every page of `filter`, following `next_cursor` to the end.
async fn all_pages(store: &dyn Store, filter: ListFilter) -> Vec<SagaRecord> {
    let mut items = Vec::new();
    let mut filter = filter;
    loop {
        let page = store.list_sagas(filter.clone()).await.expect("list_sagas");
        assert!(page.items.len() <= filter.limit, "a page above its limit");
        items.extend(page.items);
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => return items,
        }
    }
}

// ---- definitions ------------------------------------------------------------------------------

const BODY_1: &str = r#"{"name":"place-order","steps":[{"name":"reserve"}]}"#;
const BODY_2: &str = r#"{"name":"place-order","steps":[{"name":"reserve"},{"name":"ship"}]}"#;

/// The first body registered under a name is version 1, created.
pub async fn first_definition_put_creates_version_1(store: Arc<dyn Store>) {
    let (record, created) = store
        .put_definition("place-order", BODY_1, T0)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(record.name, "place-order");
    assert_eq!(record.version, 1);
    assert_eq!(record.body, BODY_1);
    assert_eq!(record.created_at_ms, T0);
    let stored = store.get_definition("place-order", None).await.unwrap();
    assert_eq!(stored, Some(record));
}

/// Registering the latest body again changes nothing and answers its version.
pub async fn identical_definition_body_is_a_no_op(store: Arc<dyn Store>) {
    let (first, _) = store
        .put_definition("place-order", BODY_1, T0)
        .await
        .unwrap();
    let (again, created) = store
        .put_definition("place-order", BODY_1, T0 + 1000)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, first, "a no-op returns the stored record unchanged");
    let stored = store.get_definition("place-order", None).await.unwrap();
    assert_eq!(stored, Some(first));
    assert_eq!(
        store.get_definition("place-order", Some(2)).await.unwrap(),
        None
    );
}

/// A different body is the next version; going back to an older body is a new version too.
pub async fn different_definition_body_creates_next_version(store: Arc<dyn Store>) {
    store
        .put_definition("place-order", BODY_1, T0)
        .await
        .unwrap();
    let (second, created) = store
        .put_definition("place-order", BODY_2, T0 + 1)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(second.version, 2);
    assert_eq!(second.body, BODY_2);
    assert_eq!(second.created_at_ms, T0 + 1);
    let (third, created) = store
        .put_definition("place-order", BODY_1, T0 + 2)
        .await
        .unwrap();
    assert!(created, "only the latest version counts as identical");
    assert_eq!(third.version, 3);
    // Another name has its own versions.
    let (other, created) = store
        .put_definition("refund", BODY_2, T0 + 3)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(other.version, 1);
}

/// `get_definition` answers the latest version, or the one asked for.
pub async fn get_definition_latest_or_by_version(store: Arc<dyn Store>) {
    let (v1, _) = store
        .put_definition("place-order", BODY_1, T0)
        .await
        .unwrap();
    let (v2, _) = store
        .put_definition("place-order", BODY_2, T0 + 1)
        .await
        .unwrap();
    let get = |version| store.get_definition("place-order", version);
    assert_eq!(get(None).await.unwrap(), Some(v2.clone()));
    assert_eq!(get(Some(1)).await.unwrap(), Some(v1));
    assert_eq!(get(Some(2)).await.unwrap(), Some(v2));
    assert_eq!(get(Some(3)).await.unwrap(), None);
}

/// An unknown name is `None`, latest or any version.
pub async fn unknown_definition_is_none(store: Arc<dyn Store>) {
    assert_eq!(store.get_definition("nope", None).await.unwrap(), None);
    store
        .put_definition("place-order", BODY_1, T0)
        .await
        .unwrap();
    assert_eq!(store.get_definition("nope", None).await.unwrap(), None);
    assert_eq!(store.get_definition("nope", Some(1)).await.unwrap(), None);
    assert_eq!(
        store.get_definition("place-order", Some(0)).await.unwrap(),
        None
    );
}

/// `list_definitions` has each name once, at its latest version.
pub async fn list_definitions_gives_latest_of_each_name(store: Arc<dyn Store>) {
    assert!(store.list_definitions().await.unwrap().is_empty());
    store.put_definition("b-saga", BODY_1, T0).await.unwrap();
    store.put_definition("a-saga", BODY_1, T0).await.unwrap();
    store.put_definition("b-saga", BODY_2, T0).await.unwrap();
    store.put_definition("b-saga", BODY_2, T0).await.unwrap();
    store.put_definition("c-saga", BODY_2, T0).await.unwrap();
    store.put_definition("c-saga", BODY_1, T0).await.unwrap();
    store.put_definition("c-saga", BODY_2, T0).await.unwrap();
    let listed: BTreeMap<String, (u32, String)> = store
        .list_definitions()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.name, (d.version, d.body)))
        .collect();
    let expected: BTreeMap<String, (u32, String)> = [
        ("a-saga", 1, BODY_1),
        ("b-saga", 2, BODY_2),
        ("c-saga", 3, BODY_2),
    ]
    .into_iter()
    .map(|(name, version, body)| (name.to_owned(), (version, body.to_owned())))
    .collect();
    assert_eq!(listed, expected);
    assert_eq!(
        store.list_definitions().await.unwrap().len(),
        3,
        "one per name"
    );
}

// ---- sagas ------------------------------------------------------------------------------------

/// A started saga reads back with its record and its first events, in order.
pub async fn started_saga_reads_back_with_its_events(store: Arc<dyn Store>) {
    assert!(store.get_saga("saga-1").await.unwrap().is_none());
    let mut saga = keyed_saga("saga-1", "key-1", "hash-1", T0);
    saga.record.version = 7;
    saga.events.push(attempt_started(0, 1, T0));
    start(&*store, saga.clone()).await;
    let loaded = get(&*store, "saga-1").await;
    assert_eq!(loaded.record, saga.record);
    assert_eq!(loaded.events, saga.events);
    assert!(store.get_saga("saga-2").await.unwrap().is_none());
}

/// A second saga with an id already taken is an error and changes nothing.
pub async fn start_with_a_taken_id_fails_and_writes_nothing(store: Arc<dyn Store>) {
    start(&*store, new_saga("saga-1", "place-order", T0)).await;
    let mut clash = new_saga("saga-1", "refund", T0 + 5);
    clash.record.idempotency_key = Some("key-x".to_owned());
    clash.events.push(attempt_started(0, 1, T0 + 5));
    assert!(store.start_saga(clash).await.is_err());
    let loaded = get(&*store, "saga-1").await;
    assert_eq!(loaded.record, new_saga("saga-1", "place-order", T0).record);
    assert_eq!(loaded.events.len(), 1);
    assert_eq!(store.find_idempotency_key("key-x").await.unwrap(), None);
}

/// `updated_at` is the last append's, read alike by every query, whether or not it is its
/// last event's time and whether or not the append changed the status.
pub async fn updated_at_is_the_last_appends_whatever_its_events_say(store: Arc<dyn Store>) {
    start(&*store, new_saga("saga-1", "place-order", T0)).await;
    let reads = |store: Arc<dyn Store>| async move {
        let loaded = get(&*store, "saga-1").await;
        let listed = all_pages(
            &*store,
            ListFilter {
                limit: 10,
                ..ListFilter::default()
            },
        )
        .await;
        let unfinished = store.load_unfinished().await.expect("load_unfinished");
        let mut seen = vec![loaded.record.updated_at_ms, listed[0].updated_at_ms];
        seen.extend(unfinished.iter().map(|s| s.record.updated_at_ms));
        seen
    };
    // The status stays, and `updated_at` is not the event's time.
    let event = attempt_started(0, 1, T0 + 10);
    append(&*store, "saga-1", vec![event], SagaStatus::Running, T0 + 15).await;
    assert_eq!(reads(Arc::clone(&store)).await, vec![T0 + 15; 3]);
    // The status stays, and `updated_at` is the event's time.
    let event = attempt_succeeded(0, 1, T0 + 20);
    append(&*store, "saga-1", vec![event], SagaStatus::Running, T0 + 20).await;
    assert_eq!(reads(Arc::clone(&store)).await, vec![T0 + 20; 3]);
    // No events, the status stays.
    append(&*store, "saga-1", Vec::new(), SagaStatus::Running, T0 + 25).await;
    assert_eq!(reads(Arc::clone(&store)).await, vec![T0 + 25; 3]);
    // Then an event told by its time again, then one whose time is older than the last write.
    let event = attempt_started(1, 1, T0 + 30);
    append(&*store, "saga-1", vec![event], SagaStatus::Running, T0 + 30).await;
    assert_eq!(reads(Arc::clone(&store)).await, vec![T0 + 30; 3]);
    let event = attempt_succeeded(1, 1, T0 + 28);
    append(&*store, "saga-1", vec![event], SagaStatus::Running, T0 + 28).await;
    assert_eq!(reads(Arc::clone(&store)).await, vec![T0 + 28; 3]);
    let loaded = get(&*store, "saga-1").await;
    assert_eq!(loaded.events.len(), 5, "every event is in the journal");
}

/// Appends add to the journal in order and set the status and `updated_at`.
pub async fn append_adds_events_in_order_and_sets_status(store: Arc<dyn Store>) {
    let saga = new_saga("saga-1", "place-order", T0);
    start(&*store, saga.clone()).await;
    let mut expected = saga.events.clone();

    let batch = vec![
        attempt_started(0, 1, T0 + 10),
        attempt_succeeded(0, 1, T0 + 20),
    ];
    append(
        &*store,
        "saga-1",
        batch.clone(),
        SagaStatus::Running,
        T0 + 20,
    )
    .await;
    expected.extend(batch);
    let loaded = get(&*store, "saga-1").await;
    assert_eq!(loaded.events, expected);
    assert_eq!(loaded.record.status, SagaStatus::Running);
    assert_eq!(loaded.record.updated_at_ms, T0 + 20);
    assert_eq!(loaded.record.created_at_ms, T0, "created_at never changes");

    let failed = Event {
        at_ms: T0 + 30,
        kind: EventKind::CompensationBegan {
            error: "card declined".to_owned(),
        },
    };
    append(
        &*store,
        "saga-1",
        vec![failed.clone()],
        SagaStatus::Compensating,
        T0 + 30,
    )
    .await;
    expected.push(failed);
    // An append without events still sets the status.
    append(
        &*store,
        "saga-1",
        Vec::new(),
        SagaStatus::Compensated,
        T0 + 40,
    )
    .await;
    let loaded = get(&*store, "saga-1").await;
    assert_eq!(loaded.events, expected);
    assert_eq!(loaded.record.status, SagaStatus::Compensated);
    assert_eq!(loaded.record.updated_at_ms, T0 + 40);
    assert_eq!(loaded.record.created_at_ms, T0);
    assert_eq!(loaded.record.definition, "place-order");
}

// ---- idempotency keys -------------------------------------------------------------------------

/// A second start with a key already taken writes nothing and answers the holder.
pub async fn repeated_idempotency_key_writes_nothing(store: Arc<dyn Store>) {
    let first = keyed_saga("saga-1", "key-1", "hash-1", T0);
    start(&*store, first.clone()).await;
    append(
        &*store,
        "saga-1",
        vec![attempt_started(0, 1, T0 + 1)],
        SagaStatus::Running,
        T0 + 1,
    )
    .await;
    let mut holder = first.record.clone();
    holder.updated_at_ms = T0 + 1;

    // Same key, another id and another request: the holder comes back, hash and all.
    let second = keyed_saga("saga-2", "key-1", "hash-2", T0 + 2);
    let outcome = store.start_saga(second).await.unwrap();
    assert_eq!(outcome, StartOutcome::Existing(holder.clone()));
    if let StartOutcome::Existing(existing) = &outcome {
        assert_eq!(existing.request_hash.as_deref(), Some("hash-1"));
    }
    assert!(store.get_saga("saga-2").await.unwrap().is_none());
    assert_eq!(get(&*store, "saga-1").await.events.len(), 2);

    // The same saga again (a retried request) is also a no-op.
    let outcome = store.start_saga(first).await.unwrap();
    assert_eq!(outcome, StartOutcome::Existing(holder));
    let all = all_pages(
        &*store,
        ListFilter {
            limit: 10,
            ..ListFilter::default()
        },
    )
    .await;
    assert_eq!(ids(&all), ["saga-1"]);

    // Sagas without a key never collide.
    start(&*store, new_saga("saga-3", "place-order", T0 + 3)).await;
    start(&*store, new_saga("saga-4", "place-order", T0 + 4)).await;
}

/// Twenty starts racing with one key: exactly one is created, the others answer it.
pub async fn concurrent_starts_with_one_key_create_one_saga(store: Arc<dyn Store>) {
    let mut tasks = JoinSet::new();
    for n in 0..20 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let saga = keyed_saga(&id_of(n), "the-key", &format!("hash-{n}"), T0 + n as u64);
            let outcome = store.start_saga(saga).await.unwrap();
            (n, outcome)
        });
    }
    let outcomes = tasks.join_all().await;
    let created: Vec<usize> = outcomes
        .iter()
        .filter(|(_, o)| *o == StartOutcome::Created)
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(created.len(), 1, "exactly one start creates the saga");
    let winner = id_of(created[0]);
    let holder = get(&*store, &winner).await.record;
    assert_eq!(holder.idempotency_key.as_deref(), Some("the-key"));
    assert_eq!(holder.request_hash, Some(format!("hash-{}", created[0])));
    for (_, outcome) in &outcomes {
        if let StartOutcome::Existing(existing) = outcome {
            assert_eq!(existing, &holder);
        }
    }
    let all = all_pages(
        &*store,
        ListFilter {
            limit: 100,
            ..ListFilter::default()
        },
    )
    .await;
    assert_eq!(ids(&all), vec![winner.clone()]);
    assert_eq!(get(&*store, &winner).await.events.len(), 1);
}

/// `find_idempotency_key` answers the saga holding a key, and `None` for a free one.
pub async fn find_idempotency_key_finds_the_holder(store: Arc<dyn Store>) {
    assert_eq!(store.find_idempotency_key("key-1").await.unwrap(), None);
    let saga = keyed_saga("saga-1", "key-1", "hash-1", T0);
    start(&*store, saga.clone()).await;
    start(&*store, new_saga("saga-2", "place-order", T0 + 1)).await;
    start(&*store, keyed_saga("saga-3", "key-3", "hash-3", T0 + 2)).await;
    let found = store.find_idempotency_key("key-1").await.unwrap();
    assert_eq!(found, Some(saga.record));
    let found = store.find_idempotency_key("key-3").await.unwrap().unwrap();
    assert_eq!(found.id, "saga-3");
    assert_eq!(store.find_idempotency_key("key-2").await.unwrap(), None);
    assert_eq!(store.find_idempotency_key("saga-2").await.unwrap(), None);
    // The answer follows the saga's status.
    set_status(&*store, "saga-1", SagaStatus::Completed, T0 + 9).await;
    let found = store.find_idempotency_key("key-1").await.unwrap().unwrap();
    assert_eq!(found.status, SagaStatus::Completed);
    assert_eq!(found.updated_at_ms, T0 + 9);
}

// ---- queries ----------------------------------------------------------------------------------

/// `list_sagas` answers the newest saga first (the order they were started in, reversed).
pub async fn list_sagas_newest_first(store: Arc<dyn Store>) {
    let page = store
        .list_sagas(ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);
    for n in 0..5 {
        start(&*store, new_saga(&id_of(n), "place-order", T0 + n as u64)).await;
    }
    // An update does not move a saga in the list.
    set_status(&*store, &id_of(1), SagaStatus::Completed, T0 + 100).await;
    let page = store
        .list_sagas(ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&page.items), [4, 3, 2, 1, 0].map(id_of));
    assert_eq!(page.next_cursor, None, "everything fit in one page");
    assert_eq!(page.items[3].status, SagaStatus::Completed);
    assert_eq!(page.items[3].updated_at_ms, T0 + 100);
    let page = store
        .list_sagas(ListFilter {
            limit: 5,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 5);
    assert_eq!(
        page.next_cursor, None,
        "an exactly full last page has no next page"
    );
}

/// `list_sagas` filters by status, by definition, and by both.
pub async fn list_sagas_filters_by_status_and_definition(store: Arc<dyn Store>) {
    // saga n: definition "a" when n is even, "b" when odd; completed when n % 3 == 0.
    for n in 0..12 {
        let definition = if n % 2 == 0 { "a" } else { "b" };
        start(&*store, new_saga(&id_of(n), definition, T0 + n as u64)).await;
        if n % 3 == 0 {
            set_status(&*store, &id_of(n), SagaStatus::Completed, T0 + 50).await;
        }
    }
    let expect = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..12).rev().filter(|n| keep(*n)).map(id_of).collect()
    };
    for limit in [3, 100] {
        let list = |status: Option<SagaStatus>, definition: Option<&str>| {
            all_pages(
                &*store,
                ListFilter {
                    status,
                    definition: definition.map(str::to_owned),
                    limit,
                    cursor: None,
                },
            )
        };
        let completed = list(Some(SagaStatus::Completed), None).await;
        assert_eq!(ids(&completed), expect(&|n| n % 3 == 0));
        assert!(completed.iter().all(|r| r.status == SagaStatus::Completed));
        let running = list(Some(SagaStatus::Running), None).await;
        assert_eq!(ids(&running), expect(&|n| n % 3 != 0));
        let a = list(None, Some("a")).await;
        assert_eq!(ids(&a), expect(&|n| n % 2 == 0));
        assert!(a.iter().all(|r| r.definition == "a"));
        let b_running = list(Some(SagaStatus::Running), Some("b")).await;
        assert_eq!(ids(&b_running), expect(&|n| n % 2 == 1 && n % 3 != 0));
        assert!(list(Some(SagaStatus::Failed), None).await.is_empty());
        assert!(list(None, Some("c")).await.is_empty());
    }
}

/// Paging by cursor never skips or repeats a saga, even while new sagas start between pages.
pub async fn paging_never_skips_or_repeats_while_sagas_start(store: Arc<dyn Store>) {
    for n in 0..25 {
        start(&*store, new_saga(&id_of(n), "place-order", T0 + n as u64)).await;
    }
    let mut seen = Vec::new();
    let mut filter = ListFilter {
        limit: 10,
        ..ListFilter::default()
    };
    let mut pages = 0;
    loop {
        let page = store.list_sagas(filter.clone()).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 10);
        seen.extend(ids(&page.items));
        if pages == 1 {
            // Five more start between the first and the second page.
            for n in 25..30 {
                start(&*store, new_saga(&id_of(n), "place-order", T0 + n as u64)).await;
            }
        }
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    let expected: Vec<String> = (0..25).rev().map(id_of).collect();
    assert_eq!(
        seen, expected,
        "the first 25, newest first, each exactly once"
    );
    assert_eq!(pages, 3);
    // A fresh listing sees all 30.
    let all = all_pages(
        &*store,
        ListFilter {
            limit: 7,
            ..ListFilter::default()
        },
    )
    .await;
    assert_eq!(ids(&all), (0..30).rev().map(id_of).collect::<Vec<_>>());
}

/// `load_unfinished` answers exactly the running and compensating sagas, oldest first, with
/// their whole journals.
pub async fn load_unfinished_returns_running_and_compensating(store: Arc<dyn Store>) {
    assert!(store.load_unfinished().await.unwrap().is_empty());
    let statuses = [
        SagaStatus::Running,
        SagaStatus::Completed,
        SagaStatus::Compensating,
        SagaStatus::Compensated,
        SagaStatus::Failed,
        SagaStatus::Running,
        SagaStatus::Compensating,
    ];
    let mut journals = HashMap::new();
    for (n, status) in statuses.iter().enumerate() {
        let id = id_of(n);
        let saga = new_saga(&id, "place-order", T0 + n as u64);
        let mut journal = saga.events.clone();
        start(&*store, saga).await;
        let more = vec![
            attempt_started(0, 1, T0 + 10),
            attempt_succeeded(0, 1, T0 + 11),
        ];
        append(&*store, &id, more.clone(), SagaStatus::Running, T0 + 11).await;
        journal.extend(more);
        if *status != SagaStatus::Running {
            set_status(&*store, &id, *status, T0 + 12).await;
            journal = get(&*store, &id).await.events;
        }
        journals.insert(id, journal);
    }
    let unfinished = store.load_unfinished().await.unwrap();
    let got: Vec<String> = unfinished.iter().map(|s| s.record.id.clone()).collect();
    assert_eq!(
        got,
        [0, 2, 5, 6].map(id_of),
        "oldest first, non-terminal only"
    );
    for loaded in &unfinished {
        assert_eq!(loaded.record.status, statuses[index_of(&loaded.record.id)]);
        assert_eq!(&loaded.events, &journals[&loaded.record.id]);
        assert_eq!(
            loaded.events.len(),
            if loaded.record.status == SagaStatus::Running {
                3
            } else {
                4
            }
        );
    }
    // A saga leaves the set when it ends and comes back when retried.
    set_status(&*store, &id_of(0), SagaStatus::Completed, T0 + 20).await;
    set_status(&*store, &id_of(4), SagaStatus::Running, T0 + 21).await;
    let unfinished = store.load_unfinished().await.unwrap();
    let got: Vec<String> = unfinished.iter().map(|s| s.record.id.clone()).collect();
    assert_eq!(got, [2, 4, 5, 6].map(id_of));
}

fn index_of(id: &str) -> usize {
    id.trim_start_matches("saga-").parse().unwrap()
}

/// `count_by_status` counts every saga, terminal ones too.
pub async fn count_by_status_counts_every_saga(store: Arc<dyn Store>) {
    let counts = |store: Arc<dyn Store>| async move {
        let mut map = BTreeMap::new();
        for (status, count) in store.count_by_status().await.unwrap() {
            assert!(
                SagaStatus::parse(&status).is_some(),
                "unknown status {status:?}"
            );
            assert!(map.insert(status, count).is_none(), "a status twice");
        }
        map.retain(|_, count| *count > 0);
        map
    };
    assert!(counts(Arc::clone(&store)).await.is_empty());
    let wanted = [
        (SagaStatus::Running, 4),
        (SagaStatus::Compensating, 1),
        (SagaStatus::Completed, 3),
        (SagaStatus::Failed, 2),
    ];
    let mut n = 0;
    for (status, count) in wanted {
        for _ in 0..count {
            start(&*store, new_saga(&id_of(n), "place-order", T0)).await;
            if status != SagaStatus::Running {
                set_status(&*store, &id_of(n), status, T0 + 1).await;
            }
            n += 1;
        }
    }
    let expected: BTreeMap<String, u64> = wanted
        .iter()
        .map(|(status, count)| (status.as_str().to_owned(), *count))
        .collect();
    assert_eq!(counts(Arc::clone(&store)).await, expected);
}

/// Retention: old `completed` and `compensated` sagas go with their journals, in batches of
/// `limit`; recent ones, unfinished ones and `failed` ones (a person must look) stay.
pub async fn purge_removes_only_old_completed_or_compensated_sagas(store: Arc<dyn Store>) {
    let cases = [
        (SagaStatus::Completed, T0 + 10, true),
        (SagaStatus::Compensated, T0 + 10, true),
        (SagaStatus::Completed, T0 + 10, true),
        (SagaStatus::Failed, T0 + 10, false),
        (SagaStatus::Running, T0 + 10, false),
        (SagaStatus::Compensating, T0 + 10, false),
        (SagaStatus::Completed, T0 + 5_000, false),
    ];
    for (n, (status, at_ms, _)) in cases.iter().enumerate() {
        start(&*store, new_saga(&id_of(n), "place-order", T0)).await;
        if *status != SagaStatus::Running {
            set_status(&*store, &id_of(n), *status, *at_ms).await;
        }
    }
    let before_ms = T0 + 1_000;
    assert_eq!(
        store.purge_finished(before_ms, 2).await.unwrap(),
        2,
        "a batch is limited"
    );
    assert_eq!(store.purge_finished(before_ms, 2).await.unwrap(), 1);
    assert_eq!(store.purge_finished(before_ms, 2).await.unwrap(), 0);
    for (n, (_, _, purged)) in cases.iter().enumerate() {
        let found = store.get_saga(&id_of(n)).await.unwrap();
        assert_eq!(found.is_none(), *purged, "saga {n}");
    }
    let remaining: u64 = store
        .count_by_status()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .sum();
    assert_eq!(remaining, 4);
}

// ---- group commit -----------------------------------------------------------------------------

/// Many concurrent writers: every append lands, and each saga's events stay in its order.
pub async fn concurrent_appends_all_land_in_order(store: Arc<dyn Store>) {
    const SAGAS: usize = 200;
    const APPENDS: usize = 5;
    let mut tasks = JoinSet::new();
    for n in 0..SAGAS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let id = id_of(n);
            start(&*store, new_saga(&id, "place-order", T0)).await;
            for k in 0..APPENDS {
                let at = T0 + 1 + k as u64;
                let events = vec![attempt_started(k, 1, at), attempt_succeeded(k, 1, at)];
                let status = if k + 1 == APPENDS {
                    SagaStatus::Completed
                } else {
                    SagaStatus::Running
                };
                append(&*store, &id, events, status, at).await;
                tokio::task::yield_now().await;
            }
        });
    }
    tasks.join_all().await;
    for n in 0..SAGAS {
        let loaded = get(&*store, &id_of(n)).await;
        let mut expected = new_saga(&id_of(n), "place-order", T0).events;
        for k in 0..APPENDS {
            let at = T0 + 1 + k as u64;
            expected.extend([attempt_started(k, 1, at), attempt_succeeded(k, 1, at)]);
        }
        assert_eq!(loaded.events, expected, "saga {}", id_of(n));
        assert_eq!(loaded.record.status, SagaStatus::Completed);
        assert_eq!(loaded.record.updated_at_ms, T0 + APPENDS as u64);
    }
    let counts = store.count_by_status().await.unwrap();
    assert_eq!(counts, vec![("completed".to_owned(), SAGAS as u64)]);
}

/// An append to an unknown saga fails, writes nothing, and leaves the writes committed beside
/// it alone.
pub async fn append_to_unknown_saga_fails_alone(store: Arc<dyn Store>) {
    const SAGAS: usize = 50;
    for n in 0..SAGAS {
        start(&*store, new_saga(&id_of(n), "place-order", T0)).await;
    }
    for round in 0..3u64 {
        // Valid and invalid writes at once, so that they share group commits.
        let mut tasks = JoinSet::new();
        for n in 0..SAGAS {
            let writer = Arc::clone(&store);
            tasks.spawn(async move {
                let at = T0 + 1 + round;
                let batch = AppendBatch {
                    saga_id: id_of(n),
                    events: vec![attempt_started(0, round as u32 + 1, at)],
                    status: SagaStatus::Running,
                    updated_at_ms: at,
                    fence: None,
                };
                (true, writer.append(batch).await.is_ok())
            });
            if n % 10 == 5 {
                let store = Arc::clone(&store);
                tasks.spawn(async move {
                    let batch = AppendBatch {
                        saga_id: format!("ghost-{round}-{n}"),
                        events: vec![attempt_started(0, 1, T0)],
                        status: SagaStatus::Compensating,
                        updated_at_ms: T0,
                        fence: None,
                    };
                    (false, store.append(batch).await.is_ok())
                });
            }
        }
        for (valid, ok) in tasks.join_all().await {
            assert_eq!(
                valid, ok,
                "a valid append fails or an unknown saga's succeeds"
            );
        }
    }
    // The unknown sagas were not created by the appends.
    assert!(store.get_saga("ghost-0-5").await.unwrap().is_none());
    let all = all_pages(
        &*store,
        ListFilter {
            limit: 100,
            ..ListFilter::default()
        },
    )
    .await;
    assert_eq!(all.len(), SAGAS);
    for n in 0..SAGAS {
        let loaded = get(&*store, &id_of(n)).await;
        let mut expected = new_saga(&id_of(n), "place-order", T0).events;
        expected.extend((0..3).map(|r| attempt_started(0, r as u32 + 1, T0 + 1 + r)));
        assert_eq!(loaded.events, expected);
        assert_eq!(loaded.record.status, SagaStatus::Running);
    }
    // Nothing of the failed appends is left over: a saga started later under such an id has
    // only its own journal and status.
    start(&*store, new_saga("ghost-0-5", "refund", T0 + 20)).await;
    let ghost = get(&*store, "ghost-0-5").await;
    assert_eq!(
        ghost.events,
        new_saga("ghost-0-5", "refund", T0 + 20).events
    );
    assert_eq!(ghost.record.status, SagaStatus::Running);
    // And the store still takes writes.
    append(
        &*store,
        &id_of(0),
        Vec::new(),
        SagaStatus::Completed,
        T0 + 9,
    )
    .await;
}

/// Starts that fail (a taken id) share group commits with starts that land; every append
/// after them lands on its own saga's journal, never on another's, and a saga that finished
/// and was purged takes no more appends (a backend that remembers where each saga lives must
/// remember only what committed, and forget what it purged).
pub async fn appends_land_on_their_own_saga_after_starts_failed_beside_them(store: Arc<dyn Store>) {
    const SAGAS: usize = 40;
    start(&*store, new_saga("taken", "place-order", T0)).await;
    let mut tasks = JoinSet::new();
    for n in 0..SAGAS {
        let starter = Arc::clone(&store);
        tasks.spawn(async move {
            starter
                .start_saga(new_saga(&id_of(n), "place-order", T0))
                .await
                .is_ok()
        });
        if n % 4 == 0 {
            let clash = Arc::clone(&store);
            tasks.spawn(async move {
                clash
                    .start_saga(new_saga("taken", "refund", T0 + 1))
                    .await
                    .is_err()
            });
        }
    }
    assert!(
        tasks
            .join_all()
            .await
            .into_iter()
            .all(|as_expected| as_expected),
        "a valid start failed, or a start under a taken id succeeded"
    );
    let mut tasks = JoinSet::new();
    for n in 0..SAGAS {
        let writer = Arc::clone(&store);
        tasks.spawn(async move {
            let at = T0 + 10 + n as u64;
            append(
                &*writer,
                &id_of(n),
                vec![attempt_started(0, 1, at)],
                SagaStatus::Running,
                at,
            )
            .await;
            append(
                &*writer,
                &id_of(n),
                vec![attempt_succeeded(0, 1, at + 1)],
                SagaStatus::Completed,
                at + 1,
            )
            .await;
        });
    }
    tasks.join_all().await;
    for n in 0..SAGAS {
        let at = T0 + 10 + n as u64;
        let loaded = get(&*store, &id_of(n)).await;
        let mut expected = new_saga(&id_of(n), "place-order", T0).events;
        expected.extend([attempt_started(0, 1, at), attempt_succeeded(0, 1, at + 1)]);
        assert_eq!(loaded.events, expected, "saga {n}'s journal");
        assert_eq!(loaded.record.status, SagaStatus::Completed);
    }
    assert_eq!(get(&*store, "taken").await.events.len(), 1);
    // Purged, a finished saga is gone for appends too.
    let purged = store
        .purge_finished(T0 + 10 + SAGAS as u64 + 1, 1000)
        .await
        .expect("purge");
    assert_eq!(purged, SAGAS as u64);
    let late = AppendBatch {
        saga_id: id_of(0),
        events: vec![attempt_started(1, 1, T0 + 100)],
        status: SagaStatus::Running,
        updated_at_ms: T0 + 100,
        fence: None,
    };
    assert!(
        store.append(late).await.is_err(),
        "an append to a purged saga landed"
    );
    assert!(store.get_saga(&id_of(0)).await.expect("get_saga").is_none());
}

/// A saga read while it is being written is one moment of it: its record (status,
/// `updated_at`) goes with its journal, never older or newer.
pub async fn get_saga_is_a_consistent_snapshot(store: Arc<dyn Store>) {
    const APPENDS: u64 = 300;
    start(&*store, new_saga("saga-1", "place-order", T0)).await;
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for k in 1..=APPENDS {
                // The status flips with every append, and `updated_at` is the last event's time.
                let status = if k % 2 == 0 {
                    SagaStatus::Running
                } else {
                    SagaStatus::Compensating
                };
                let event = attempt_started(0, k as u32, T0 + k);
                append(&*store, "saga-1", vec![event], status, T0 + k).await;
            }
        })
    };
    let check = |loaded: &LoadedSaga| {
        let appended = loaded.events.len() as u64 - 1;
        let last = loaded.events.last().unwrap().at_ms;
        assert_eq!(
            loaded.record.updated_at_ms, last,
            "record and journal disagree"
        );
        let status = match appended {
            0 => SagaStatus::Running,
            k if k % 2 == 0 => SagaStatus::Running,
            _ => SagaStatus::Compensating,
        };
        assert_eq!(loaded.record.status, status, "after {appended} appends");
    };
    let mut reads = 0;
    while !writer.is_finished() {
        check(&get(&*store, "saga-1").await);
        for loaded in store.load_unfinished().await.unwrap() {
            check(&loaded);
        }
        reads += 1;
    }
    writer.await.unwrap();
    let loaded = get(&*store, "saga-1").await;
    check(&loaded);
    assert_eq!(loaded.events.len() as u64, APPENDS + 1);
    assert!(reads > 0);
}

// ---- lifecycle --------------------------------------------------------------------------------

/// `ping` answers on an empty store and on one with data.
pub async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    start(&*store, new_saga("saga-1", "place-order", T0)).await;
    store.ping().await.unwrap();
}

/// After `close`, every write fails with `Error::Closed`, and what was written before stays.
pub async fn writes_after_close_fail_closed(store: Arc<dyn Store>) {
    start(&*store, new_saga("saga-1", "place-order", T0)).await;
    close(&*store).await;
    let put = store.put_definition("place-order", BODY_1, T0).await;
    assert!(matches!(put, Err(Error::Closed)), "put_definition: {put:?}");
    let started = store
        .start_saga(new_saga("saga-2", "place-order", T0))
        .await;
    assert!(
        matches!(started, Err(Error::Closed)),
        "start_saga: {started:?}"
    );
    let appended = store
        .append(AppendBatch {
            saga_id: "saga-1".to_owned(),
            events: vec![attempt_started(0, 1, T0)],
            status: SagaStatus::Completed,
            updated_at_ms: T0,
            fence: None,
        })
        .await;
    assert!(
        matches!(appended, Err(Error::Closed)),
        "append: {appended:?}"
    );
    // Closing twice is harmless.
    close(&*store).await;
}

/// Every write that resolved is there after the store is closed and opened again on the same
/// data, and the reopened store carries on (versions and list order continue).
pub async fn resolved_writes_survive_reopen<R, Fut>(store: Arc<dyn Store>, reopen: R)
where
    R: FnOnce() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let (v1, _) = store
        .put_definition("place-order", BODY_1, T0)
        .await
        .unwrap();
    start(&*store, keyed_saga(&id_of(0), "key-0", "hash-0", T0)).await;
    start(&*store, new_saga(&id_of(1), "place-order", T0 + 1)).await;
    append(
        &*store,
        &id_of(0),
        vec![attempt_started(0, 1, T0 + 2)],
        SagaStatus::Running,
        T0 + 2,
    )
    .await;
    set_status(&*store, &id_of(1), SagaStatus::Completed, T0 + 3).await;
    let before: Vec<LoadedSaga> =
        vec![get(&*store, &id_of(0)).await, get(&*store, &id_of(1)).await];
    close(&*store).await;
    drop(store);

    let store = reopen().await;
    store.ping().await.unwrap();
    assert_eq!(
        store.get_definition("place-order", None).await.unwrap(),
        Some(v1)
    );
    for saga in &before {
        let loaded = get(&*store, &saga.record.id).await;
        assert_eq!(loaded.record, saga.record);
        assert_eq!(loaded.events, saga.events);
    }
    assert_eq!(
        store
            .find_idempotency_key("key-0")
            .await
            .unwrap()
            .map(|r| r.id),
        Some(id_of(0))
    );
    let unfinished = store.load_unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].record.id, id_of(0));

    // The reopened store carries on where the first one stopped.
    let (v2, created) = store
        .put_definition("place-order", BODY_2, T0 + 4)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(v2.version, 2);
    let again = store
        .start_saga(keyed_saga(&id_of(9), "key-0", "hash-9", T0 + 4))
        .await
        .unwrap();
    assert!(matches!(again, StartOutcome::Existing(r) if r.id == id_of(0)));
    start(&*store, new_saga(&id_of(2), "place-order", T0 + 5)).await;
    let all = all_pages(
        &*store,
        ListFilter {
            limit: 2,
            ..ListFilter::default()
        },
    )
    .await;
    assert_eq!(ids(&all), [2, 1, 0].map(id_of));
    assert_eq!(all[1].status, SagaStatus::Completed);
    close(&*store).await;
}
