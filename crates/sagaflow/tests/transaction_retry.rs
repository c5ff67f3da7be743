//! `retry_transaction` against the real PostgreSQL: SERIALIZABLE transactions that conflict
//! (SQLSTATE 40001) are re-run until every one commits, and the result is as if they ran one
//! after another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sagaflow::participant::{is_retryable_sqlstate, retry_transaction};
use tokio_postgres::{IsolationLevel, NoTls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_serializable_transactions_all_commit_when_retried() {
    let reachable = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
    if !reachable {
        assert!(
            std::env::var("SAGAFLOW_REQUIRE_POSTGRES").is_err(),
            "PostgreSQL is required"
        );
        eprintln!("SKIPPED: PostgreSQL is not reachable on 127.0.0.1:5432");
        return;
    }
    let url = "host=127.0.0.1 port=5432 user=postgres dbname=test";
    let table = format!("counter_{}", std::process::id());
    let (admin, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id INT PRIMARY KEY, n INT NOT NULL);
             INSERT INTO {table} VALUES (1, 0);"
        ))
        .await
        .unwrap();

    let writers = 8;
    let increments = 10;
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let table = table.clone();
        tasks.push(tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
            tokio::spawn(conn);
            let client = tokio::sync::Mutex::new(client);
            let conflicts = std::sync::atomic::AtomicU32::new(0);
            for _ in 0..increments {
                retry_transaction(
                    || {
                        let client = &client;
                        let table = &table;
                        async move {
                            let mut client = client.lock().await;
                            let tx = client
                                .build_transaction()
                                .isolation_level(IsolationLevel::Serializable)
                                .start()
                                .await?;
                            // Read, then write what was read: concurrent runs conflict.
                            let n: i32 = tx
                                .query_one(&format!("SELECT n FROM {table} WHERE id = 1"), &[])
                                .await?
                                .get(0);
                            tokio::task::yield_now().await;
                            tx.execute(
                                &format!("UPDATE {table} SET n = $1 WHERE id = 1"),
                                &[&(n + 1)],
                            )
                            .await?;
                            tx.commit().await
                        }
                    },
                    |e| {
                        let conflict = is_retryable_sqlstate(e);
                        if conflict {
                            conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        conflict
                    },
                )
                .await
                .expect("every transaction commits in the end");
            }
            conflicts.into_inner()
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let n: i32 = admin
        .query_one(&format!("SELECT n FROM {table} WHERE id = 1"), &[])
        .await
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
    assert_eq!(n, writers * increments, "no increment lost");
    assert!(conflicts > 0, "the test did not provoke a single 40001");
    eprintln!("{conflicts} serialization conflicts were retried");
}
