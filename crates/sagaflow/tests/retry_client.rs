//! How a `Client` built `with_retry` retries: transient answers to safe calls are retried
//! after their `Retry-After`; calls that may not be repeated are not, unless the server
//! refused them; and without `with_retry` nothing is. A scripted HTTP/1.1 server on a local
//! port stands in for the coordinator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow::retry::{Backoff, RetryBudget};
use sagaflow::{Client, Error, StartSaga};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const SAGA: &str = r#"{"id":"0193","definition":"place-order","version":1,"status":"running","input":null,
    "created_at":"2026-11-24T11:25:22.000Z","updated_at":"2026-11-24T11:25:22.000Z","error":null,"steps":[]}"#;

/// A server that answers its `n`th connection with `answers[n]` (closing each connection)
/// and records each request's text. Dropping it stops it.
struct Scripted {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Scripted {
    async fn start(answers: Vec<String>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            for answer in answers {
                let (mut socket, _) = listener.accept().await.expect("accept a connection");
                let request = read_request(&mut socket).await;
                // Recorded before answering: once the client has an answer, its request is here.
                recorded.lock().expect("not poisoned").push(request);
                socket
                    .write_all(answer.as_bytes())
                    .await
                    .expect("write the answer");
                socket.shutdown().await.expect("close the connection");
            }
        });
        Scripted {
            base,
            requests,
            task,
        }
    }

    /// The request lines (`GET /v1/sagas/0193 HTTP/1.1`) received so far.
    fn request_lines(&self) -> Vec<String> {
        let requests = self.requests.lock().expect("not poisoned");
        requests
            .iter()
            .map(|r| r.lines().next().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = socket.read(&mut buffer).await.expect("read the request");
        request.extend_from_slice(&buffer[..n]);
        if n == 0 || complete(&request) {
            return String::from_utf8_lossy(&request).into_owned();
        }
    }
}

/// Whether `request` holds its headers and as many body bytes as its Content-Length says.
fn complete(request: &[u8]) -> bool {
    let text = String::from_utf8_lossy(request);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    request.len() >= end + 4 + length
}

fn answer(status: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra_headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn busy(status: &str) -> String {
    answer(status, "retry-after: 0\r\n", "")
}

fn saga_ok() -> String {
    answer("200 OK", "", SAGA)
}

/// Retries on, with a backoff of a millisecond where the server gives no `Retry-After`.
fn retrying_client(base: &str) -> Client {
    let backoff = Backoff::default()
        .with_initial(Duration::from_millis(1))
        .with_cap(Duration::from_millis(1));
    Client::new(base).expect("valid URL").with_retry(backoff)
}

fn start() -> StartSaga {
    StartSaga {
        definition: "place-order".to_owned(),
        version: None,
        input: serde_json::json!({ "sku": "A-1" }),
    }
}

#[tokio::test]
async fn a_get_is_retried_after_503_with_retry_after_until_it_succeeds() {
    let server = Scripted::start(vec![
        busy("503 Service Unavailable"),
        busy("503 Service Unavailable"),
        saga_ok(),
    ])
    .await;
    let client = Client::new(&server.base)
        .expect("valid URL")
        .with_retry(Backoff::default());

    let saga = client
        .get_saga("0193")
        .await
        .expect("the third answer is 200");

    assert_eq!(saga.id, "0193");
    assert_eq!(
        server.request_lines(),
        vec!["GET /v1/sagas/0193 HTTP/1.1"; 3]
    );
}

#[tokio::test]
async fn without_with_retry_a_503_is_returned_at_once() {
    let server = Scripted::start(vec![busy("503 Service Unavailable"), saga_ok()]).await;
    let client = Client::new(&server.base).expect("valid URL");

    let error = client.get_saga("0193").await.expect_err("one attempt only");

    assert_eq!(error.retry_after(), Some(Duration::ZERO));
    assert!(matches!(&error, Error::RetryLater { problem, .. } if problem.status == 503));
    assert_eq!(server.request_lines().len(), 1);
}

#[tokio::test]
async fn a_transient_answer_without_retry_after_is_retried_after_the_backoff() {
    let server = Scripted::start(vec![answer("502 Bad Gateway", "", ""), saga_ok()]).await;
    let client = retrying_client(&server.base);

    client
        .get_saga("0193")
        .await
        .expect("the second answer is 200");

    assert_eq!(server.request_lines().len(), 2);
}

#[tokio::test]
async fn the_client_gives_up_after_max_attempts_with_the_last_error() {
    let server = Scripted::start(vec![busy("503 Service Unavailable"); 3]).await;
    let client = Client::new(&server.base)
        .expect("valid URL")
        .with_retry(Backoff::default().with_max_attempts(2));

    let error = client.list_definitions().await.expect_err("always busy");

    assert_eq!(error.status(), Some(503));
    assert_eq!(server.request_lines().len(), 2);
}

#[tokio::test]
async fn a_permanent_error_is_not_retried() {
    let not_found = answer(
        "404 Not Found",
        "retry-after: 0\r\n",
        r#"{"type":"https://sagaflow.dev/problems/not-found","title":"Not found","status":404,"detail":"no saga 0193"}"#,
    );
    let server = Scripted::start(vec![not_found, saga_ok()]).await;
    let client = retrying_client(&server.base);

    let error = client.get_saga("0193").await.expect_err("a 404 is final");

    assert!(
        matches!(&error, Error::Problem(p) if p.status == 404),
        "{error:?}"
    );
    assert_eq!(server.request_lines().len(), 1);
}

#[tokio::test]
async fn cancel_and_retry_are_not_repeated_after_an_ambiguous_503() {
    // A 503 may come from a proxy that passed the request on: the cancel may have happened,
    // and a repeat would answer 409.
    let server = Scripted::start(vec![
        busy("503 Service Unavailable"),
        busy("503 Service Unavailable"),
        saga_ok(),
        saga_ok(),
    ])
    .await;
    let client = retrying_client(&server.base);

    let cancel = client.cancel("0193").await.expect_err("not repeated");
    let retry = client.retry("0193").await.expect_err("not repeated");

    assert_eq!((cancel.status(), retry.status()), (Some(503), Some(503)));
    assert_eq!(
        server.request_lines(),
        vec![
            "POST /v1/sagas/0193/cancel HTTP/1.1",
            "POST /v1/sagas/0193/retry HTTP/1.1"
        ]
    );
}

#[tokio::test]
async fn a_start_without_a_key_is_repeated_only_when_the_server_refused_it() {
    let server = Scripted::start(vec![
        busy("429 Too Many Requests"),
        answer("201 Created", "", SAGA),
        busy("504 Gateway Timeout"),
        answer("201 Created", "", SAGA),
    ])
    .await;
    let client = retrying_client(&server.base);

    let saga = client
        .start_saga(&start(), None, None)
        .await
        .expect("a 429 refused the start, so it is repeated");
    assert_eq!(saga.id, "0193");
    assert_eq!(server.request_lines().len(), 2);

    let error = client
        .start_saga(&start(), None, None)
        .await
        .expect_err("a 504 is ambiguous: the saga may have started");
    assert_eq!(error.status(), Some(504));
    assert_eq!(server.request_lines().len(), 3);
}

#[tokio::test]
async fn a_start_with_a_key_is_repeated_after_any_transient_failure() {
    let server = Scripted::start(vec![
        busy("504 Gateway Timeout"),
        answer("201 Created", "", SAGA),
    ])
    .await;
    let client = retrying_client(&server.base);

    client
        .start_saga(&start(), Some("order-1"), None)
        .await
        .expect("the repeat with the same key is safe");

    let requests = server.requests.lock().expect("not poisoned").clone();
    assert_eq!(requests.len(), 2);
    for request in requests {
        let request = request.to_lowercase();
        assert!(request.contains("idempotency-key: order-1"), "{request}");
        assert!(
            request.contains(r#""sku":"a-1""#),
            "the body is sent again: {request}"
        );
    }
}

#[tokio::test]
async fn clients_sharing_a_budget_stop_retrying_when_it_is_empty() {
    let server = Scripted::start(vec![busy("503 Service Unavailable"); 10]).await;
    let budget = RetryBudget::new(1, 0.0);
    let first = retrying_client(&server.base).with_retry_budget(budget.clone());
    let second = retrying_client(&server.base).with_retry_budget(budget.clone());

    first.healthz().await.expect_err("always busy");
    assert_eq!(server.request_lines().len(), 2, "one attempt, one retry");
    second.healthz().await.expect_err("always busy");
    assert_eq!(
        server.request_lines().len(),
        3,
        "the budget is spent: fail fast"
    );
    assert_eq!(budget.available(), 0);
}

#[tokio::test]
async fn an_unreachable_server_is_retried_then_reported() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    drop(listener);
    let budget = RetryBudget::new(10, 0.0);
    let client = retrying_client(&base).with_retry_budget(budget.clone());

    // A refused connection proves the request was never sent: even a cancel is repeated.
    let error = client.cancel("0193").await.expect_err("nobody listens");

    assert!(
        matches!(&error, Error::Unreachable { message, .. } if message == "connection refused")
    );
    assert_eq!(budget.available(), 10 - 4, "five attempts: four retries");
}
