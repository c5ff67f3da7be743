//! Shards, leases and fencing on PostgreSQL: what makes several coordinators on one database
//! safe. The fence is tested directly here: a write made under a lease whose epoch moved on is
//! refused by the database and leaves nothing behind.
//!
//! Each test runs in a schema of its own; when PostgreSQL does not answer, each test prints
//! `SKIPPED: …` and passes, unless `SAGAFLOW_REQUIRE_POSTGRES` is set (CI sets it).

#![cfg(feature = "postgres")]
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

mod pg_scratch;

use pg_scratch::Scratch;
use sagaflow_core::{Event, EventKind, Payload, SagaStatus};
use sagaflow_store::{
    AppendBatch, Error, Fence, InboxKind, NewSaga, SagaRecord, StartOutcome, Store,
};

const T0: u64 = 1_700_000_000_000;

fn saga(id: &str, shard: u32, fence: Option<Fence>, handoff: bool) -> NewSaga {
    NewSaga {
        record: SagaRecord {
            id: id.to_owned(),
            definition: "place-order".to_owned(),
            version: 1,
            status: SagaStatus::Running,
            created_at_ms: T0,
            updated_at_ms: T0,
            idempotency_key: None,
            request_hash: None,
            shard,
        },
        events: vec![Event {
            at_ms: T0,
            kind: EventKind::SagaStarted {
                definition: "place-order".to_owned(),
                version: 1,
                input: Payload::from_json(r#"{"order":42}"#).unwrap(),
                deadline_at_ms: None,
                trace_id: "0af7651916cd43dd8448eb211c80319c".to_owned(),
            },
        }],
        fence,
        handoff,
    }
}

fn step(id: &str, fence: Option<Fence>) -> AppendBatch {
    AppendBatch {
        saga_id: id.to_owned(),
        events: vec![Event {
            at_ms: T0 + 1,
            kind: EventKind::RetryRequested,
        }],
        status: SagaStatus::Running,
        updated_at_ms: T0 + 1,
        fence,
    }
}

fn lease_of(leases: &[Fence], shard: u32) -> Fence {
    *leases
        .iter()
        .find(|f| f.shard == shard)
        .unwrap_or_else(|| panic!("no lease of shard {shard} in {leases:?}"))
}

const TTL_SHORT: Duration = Duration::from_millis(300);
const TTL_LONG: Duration = Duration::from_secs(60);

/// The property that matters most: replica A's lease expires, B takes the shard, and A's
/// writes under its old lease (a start and an append) are refused by the database and leave
/// nothing, while B's go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_under_a_lease_taken_over_are_refused() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let (a, b) = (scratch.open_pg().await, scratch.open_pg().await);
    scratch
        .run(async move {
            let (la, lb) = (a.leases().unwrap(), b.leases().unwrap());
            assert_eq!(la.init_cluster(4).await.unwrap(), 4);
            let held_a = la.acquire("a", 4, TTL_SHORT).await.unwrap();
            assert_eq!(
                held_a.len(),
                4,
                "a free cluster gives every shard asked for"
            );
            let old = lease_of(&held_a, 1);
            assert_eq!(
                a.start_saga(saga("s1", 1, Some(old), false)).await.unwrap(),
                StartOutcome::Created
            );
            a.append(step("s1", Some(old))).await.unwrap();
            // B finds nothing to take while A's leases live, then takes them once expired.
            assert!(lb.acquire("b", 4, TTL_LONG).await.unwrap().is_empty());
            tokio::time::sleep(TTL_SHORT + Duration::from_millis(200)).await;
            let held_b = lb.acquire("b", 4, TTL_LONG).await.unwrap();
            let new = lease_of(&held_b, 1);
            assert!(new.epoch > old.epoch, "taking a shard bumps its epoch");

            let refused = a.append(step("s1", Some(old))).await;
            assert!(
                matches!(refused, Err(Error::Fenced { shard: 1, epoch }) if epoch == old.epoch),
                "a stale append must be fenced, got {refused:?}"
            );
            let refused = a.start_saga(saga("s2", 1, Some(old), false)).await;
            assert!(
                matches!(refused, Err(Error::Fenced { .. })),
                "got {refused:?}"
            );
            assert!(
                b.get_saga("s2").await.unwrap().is_none(),
                "a fenced start leaves nothing"
            );
            let journal = b.get_saga("s1").await.unwrap().unwrap();
            assert_eq!(journal.events.len(), 2, "the fenced append left nothing");

            b.append(step("s1", Some(new))).await.unwrap();
            assert_eq!(b.get_saga("s1").await.unwrap().unwrap().events.len(), 3);
            // A learns it lost every lease when it renews.
            assert!(la.renew("a", &held_a, TTL_LONG).await.unwrap().is_empty());
            assert_eq!(lb.renew("b", &held_b, TTL_LONG).await.unwrap().len(), 4);
        })
        .await;
}

/// A shard given back is free at once, at a new epoch: the giver's old lease writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_shard_is_free_at_once_and_fences_its_old_lease() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let (a, b) = (scratch.open_pg().await, scratch.open_pg().await);
    scratch
        .run(async move {
            let (la, lb) = (a.leases().unwrap(), b.leases().unwrap());
            la.init_cluster(2).await.unwrap();
            let held = la.acquire("a", 2, TTL_LONG).await.unwrap();
            let zero = lease_of(&held, 0);
            a.start_saga(saga("s1", 0, Some(zero), false))
                .await
                .unwrap();
            la.release("a", &[zero]).await.unwrap();
            let refused = a.append(step("s1", Some(zero))).await;
            assert!(
                matches!(refused, Err(Error::Fenced { .. })),
                "got {refused:?}"
            );
            let taken = lb.acquire("b", 2, TTL_LONG).await.unwrap();
            assert_eq!(
                taken.iter().map(|f| f.shard).collect::<Vec<_>>(),
                vec![0],
                "only the released shard is free; shard 1 is still a's"
            );
            assert!(taken[0].epoch > zero.epoch);
            let still = la.renew("a", &held, TTL_LONG).await.unwrap();
            assert_eq!(still.iter().map(|f| f.shard).collect::<Vec<_>>(), vec![1]);
        })
        .await;
}

/// A batch's appends go to the database as one statement; each is still fenced on its own: in
/// one burst of appends, those under a lease given back are refused and leave nothing, those
/// under a live lease land at their saga's next positions, and one to a saga that does not
/// exist fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_sent_together_are_fenced_each_on_its_own() {
    const SAGAS: usize = 40;
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let a = scratch.open_pg().await;
    scratch
        .run(async move {
            let la = a.leases().unwrap();
            la.init_cluster(2).await.unwrap();
            let held = la.acquire("a", 2, TTL_LONG).await.unwrap();
            let (zero, one) = (lease_of(&held, 0), lease_of(&held, 1));
            let id = |n: usize| format!("burst-{n}");
            let lease = |n: usize| if n.is_multiple_of(2) { zero } else { one };
            for n in 0..SAGAS {
                let shard = lease(n).shard;
                a.start_saga(saga(&id(n), shard, Some(lease(n)), false))
                    .await
                    .unwrap();
            }
            la.release("a", &[one]).await.unwrap();
            let mut burst: Vec<_> = (0..SAGAS)
                .map(|n| a.append(step(&id(n), Some(lease(n)))))
                .collect();
            burst.push(a.append(step("no-such-saga", None)));
            let answers = futures::future::join_all(burst).await;
            for (n, answer) in answers[..SAGAS].iter().enumerate() {
                if n.is_multiple_of(2) {
                    assert!(answer.is_ok(), "saga {n} under a live lease: {answer:?}");
                } else {
                    assert!(
                        matches!(answer, Err(Error::Fenced { shard: 1, .. })),
                        "saga {n} under a lease given back: {answer:?}"
                    );
                }
            }
            assert!(answers[SAGAS].is_err(), "an append to no saga must fail");
            for n in 0..SAGAS {
                let journal = a.get_saga(&id(n)).await.unwrap().unwrap();
                let expected = if n.is_multiple_of(2) { 2 } else { 1 };
                assert_eq!(journal.events.len(), expected, "saga {n}'s journal");
            }
            // The next append of a saga that took one lands after it.
            a.append(step(&id(0), Some(zero))).await.unwrap();
            assert_eq!(a.get_saga(&id(0)).await.unwrap().unwrap().events.len(), 3);
        })
        .await;
}

/// A batch's starts go to the database as one statement; each is still answered on its own: in
/// one burst, starts under a live lease land with their events, in the burst's order; those
/// under a lease given back are refused and leave nothing; one whose idempotency key a saga
/// already holds answers that saga; one under an id already taken fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_sent_together_are_answered_each_on_its_own() {
    const SAGAS: usize = 40;
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let a = scratch.open_pg().await;
    scratch
        .run(async move {
            let la = a.leases().unwrap();
            la.init_cluster(2).await.unwrap();
            let held = la.acquire("a", 2, TTL_LONG).await.unwrap();
            let (zero, one) = (lease_of(&held, 0), lease_of(&held, 1));
            let mut holder = saga("holder", 0, Some(zero), false);
            holder.record.idempotency_key = Some("key-1".to_owned());
            a.start_saga(holder).await.unwrap();
            a.start_saga(saga("taken", 0, Some(zero), false))
                .await
                .unwrap();
            la.release("a", &[one]).await.unwrap();
            let id = |n: usize| format!("burst-{n}");
            let lease = |n: usize| if n.is_multiple_of(2) { zero } else { one };
            let mut burst: Vec<_> = (0..SAGAS)
                .map(|n| a.start_saga(saga(&id(n), lease(n).shard, Some(lease(n)), false)))
                .collect();
            let mut repeat = saga("repeat", 0, Some(zero), false);
            repeat.record.idempotency_key = Some("key-1".to_owned());
            burst.push(a.start_saga(repeat));
            let answers = futures::future::join_all(burst).await;
            for (n, answer) in answers[..SAGAS].iter().enumerate() {
                if n.is_multiple_of(2) {
                    assert!(
                        matches!(answer, Ok(StartOutcome::Created)),
                        "saga {n} under a live lease: {answer:?}"
                    );
                } else {
                    assert!(
                        matches!(answer, Err(Error::Fenced { shard: 1, .. })),
                        "saga {n} under a lease given back: {answer:?}"
                    );
                }
            }
            assert!(
                matches!(&answers[SAGAS], Ok(StartOutcome::Existing(r)) if r.id == "holder"),
                "a repeated key answers its holder: {:?}",
                answers[SAGAS]
            );
            // A taken id fails the batch's statement: the batch runs again, a start each.
            let mut burst: Vec<_> = (0..4)
                .map(|n| a.start_saga(saga(&format!("late-{n}"), 0, Some(zero), false)))
                .collect();
            burst.insert(2, a.start_saga(saga("taken", 0, Some(zero), false)));
            let answers = futures::future::join_all(burst).await;
            assert!(answers[2].is_err(), "a taken id must fail");
            for answer in [&answers[0], &answers[1], &answers[3], &answers[4]] {
                assert!(matches!(answer, Ok(StartOutcome::Created)), "{answer:?}");
            }
            for n in 0..SAGAS {
                let loaded = a.get_saga(&id(n)).await.unwrap();
                if n.is_multiple_of(2) {
                    assert_eq!(loaded.unwrap().events.len(), 1, "saga {n}'s journal");
                } else {
                    assert!(loaded.is_none(), "fenced saga {n} left a row");
                }
            }
            assert!(a.get_saga("repeat").await.unwrap().is_none());
            // Newest first: the burst's sagas in reverse order, then the two before it.
            let page = a
                .list_sagas(sagaflow_store::ListFilter {
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap();
            let listed: Vec<&str> = page.items.iter().map(|r| r.id.as_str()).collect();
            let mut expected: Vec<String> = (0..4).rev().map(|n| format!("late-{n}")).collect();
            expected.extend((0..SAGAS).rev().step_by(2).map(|n| id(n - 1)));
            expected.extend(["taken".to_owned(), "holder".to_owned()]);
            assert_eq!(listed, expected);
        })
        .await;
}

/// The cluster's shard count is fixed when it is created; replicas count as alive while they
/// heartbeat and stop counting when they leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_count_is_fixed_and_replicas_are_counted() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let store = scratch.open_pg().await;
    scratch
        .run(async move {
            let leases = store.leases().unwrap();
            assert_eq!(leases.init_cluster(8).await.unwrap(), 8);
            assert_eq!(
                leases.init_cluster(32).await.unwrap(),
                8,
                "the first count stays"
            );
            assert_eq!(leases.heartbeat("a", TTL_LONG).await.unwrap(), 1);
            assert_eq!(leases.heartbeat("b", TTL_LONG).await.unwrap(), 2);
            assert_eq!(leases.heartbeat("a", TTL_LONG).await.unwrap(), 2);
            leases.leave("b").await.unwrap();
            assert_eq!(leases.heartbeat("a", TTL_LONG).await.unwrap(), 1);
            leases
                .heartbeat("c", Duration::from_millis(1))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(
                leases.heartbeat("a", TTL_LONG).await.unwrap(),
                1,
                "c expired"
            );
        })
        .await;
}

/// A start by a replica that does not hold the saga's shard leaves a message for the owner in
/// the same transaction; the owner reads its shards' messages, and acked ones are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoffs_and_requests_reach_the_shards_inbox() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let store = scratch.open_pg().await;
    scratch
        .run(async move {
            let leases = store.leases().unwrap();
            leases.init_cluster(4).await.unwrap();
            store.start_saga(saga("s1", 2, None, true)).await.unwrap();
            store.start_saga(saga("s2", 3, None, false)).await.unwrap();
            leases.post(3, "s2", InboxKind::Cancel, T0).await.unwrap();
            let mine = leases.inbox(&[2], 10).await.unwrap();
            assert_eq!(mine.len(), 1);
            assert_eq!(
                (mine[0].saga_id.as_str(), mine[0].kind),
                ("s1", InboxKind::Start)
            );
            let all = leases.inbox(&[0, 1, 2, 3], 10).await.unwrap();
            let kinds: Vec<_> = all.iter().map(|m| (m.shard, m.kind)).collect();
            assert_eq!(kinds, vec![(2, InboxKind::Start), (3, InboxKind::Cancel)]);
            leases.ack(&[mine[0].id]).await.unwrap();
            let left = leases.inbox(&[0, 1, 2, 3], 10).await.unwrap();
            assert_eq!(left.len(), 1);
            assert_eq!(left[0].saga_id, "s2");
        })
        .await;
}

/// Taking over a shard loads that shard's unfinished sagas, and only those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_sagas_load_by_shard() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let store = scratch.open_pg().await;
    scratch
        .run(async move {
            let leases = store.leases().unwrap();
            leases.init_cluster(4).await.unwrap();
            for (id, shard) in [("a", 0), ("b", 1), ("c", 1), ("d", 3)] {
                store
                    .start_saga(saga(id, shard, None, false))
                    .await
                    .unwrap();
            }
            let mut done = step("c", None);
            done.status = SagaStatus::Completed;
            store.append(done).await.unwrap();
            let loaded = leases.load_unfinished_in(&[1, 3]).await.unwrap();
            let ids: BTreeSet<_> = loaded.iter().map(|l| l.record.id.as_str()).collect();
            assert_eq!(ids, BTreeSet::from(["b", "d"]));
            assert!(loaded.iter().all(|l| !l.events.is_empty()));
            assert_eq!(
                loaded
                    .iter()
                    .find(|l| l.record.id == "d")
                    .unwrap()
                    .record
                    .shard,
                3
            );
        })
        .await;
}
