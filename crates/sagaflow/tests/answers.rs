//! How the client turns the server's answers, and the lack of one, into values and errors.
//! A canned one-shot HTTP server stands in for the coordinator.

use sagaflow::{Client, Error, Saga, StartSaga, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Serves `answer` (a whole HTTP/1.1 response) to one request and returns that request's text.
async fn serve_once(answer: String) -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let handle = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept one connection");
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = socket.read(&mut buffer).await.expect("read the request");
            request.extend_from_slice(&buffer[..n]);
            if n == 0 || complete(&request) {
                break;
            }
        }
        socket
            .write_all(answer.as_bytes())
            .await
            .expect("write the answer");
        socket.shutdown().await.expect("close the connection");
        String::from_utf8_lossy(&request).into_owned()
    });
    (base, handle)
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

fn answer(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn a_closed_port_is_unreachable_with_a_short_reason() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    drop(listener);

    let client = Client::new(&base).expect("valid URL");
    match client.healthz().await {
        Err(Error::Unreachable { url, message }) => {
            assert_eq!(url, base);
            assert_eq!(message, "connection refused");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_problem_answer_is_an_error_problem() {
    let body = r#"{"type":"https://sagaflow.dev/problems/not-found","title":"Not Found","status":404,"detail":"no saga 0193"}"#;
    let (base, server) =
        serve_once(answer("404 Not Found", "application/problem+json", body)).await;
    let client = Client::new(&base).expect("valid URL");

    let error = client
        .get_saga("0193")
        .await
        .expect_err("a 404 is an error");
    let request = server.await.expect("the server task ends");

    assert!(
        request.starts_with("GET /v1/sagas/0193 HTTP/1.1"),
        "{request}"
    );
    let problem = error.problem().expect("a problem");
    assert_eq!(problem.status, 404);
    assert_eq!(problem.detail, "no saga 0193");
    assert_eq!(error.to_string(), "404 Not Found: no saga 0193");
}

#[tokio::test]
async fn a_plain_text_error_answer_becomes_a_synthesized_problem() {
    let (base, server) = serve_once(answer(
        "503 Service Unavailable",
        "text/plain",
        "overloaded",
    ))
    .await;
    let client = Client::new(&base).expect("valid URL");

    let error = client.readyz().await.expect_err("a 503 is an error");
    server.await.expect("the server task ends");

    let problem = error.problem().expect("a problem");
    assert_eq!(problem.kind, "about:blank");
    assert_eq!(problem.title, "Service Unavailable");
    assert_eq!(problem.status, 503);
    assert_eq!(problem.detail, "overloaded");
}

#[tokio::test]
async fn applying_a_definition_tells_new_from_unchanged() {
    let definition = Saga::new("place-order")
        .step(Step::new("reserve", "http://127.0.0.1:8101/reserve"))
        .build();
    for (status, created) in [("201 Created", true), ("200 OK", false)] {
        let (base, server) = serve_once(answer(
            status,
            "application/json",
            r#"{"name":"place-order","version":3}"#,
        ))
        .await;
        let client = Client::new(&base).expect("valid URL");

        let (registered, was_created) = client
            .apply_definition(&definition)
            .await
            .expect("a success answer");
        let request = server.await.expect("the server task ends");

        assert!(
            request.starts_with("POST /v1/definitions HTTP/1.1"),
            "{request}"
        );
        assert!(request.contains(r#""name":"place-order""#), "{request}");
        assert_eq!(
            (registered.name.as_str(), registered.version),
            ("place-order", 3)
        );
        assert_eq!(was_created, created);
    }
}

#[tokio::test]
async fn starting_a_saga_sends_the_key_and_the_wait() {
    let saga = r#"{"id":"0193","definition":"place-order","version":1,"status":"completed","input":null,
        "created_at":"2026-11-24T11:25:22.000Z","updated_at":"2026-11-24T11:25:22.000Z","error":null,"steps":[]}"#;
    let (base, server) = serve_once(answer("201 Created", "application/json", saga)).await;
    let client = Client::new(&base).expect("valid URL");
    let start = StartSaga {
        definition: "place-order".to_owned(),
        version: None,
        input: serde_json::json!({"sku": "A-1"}),
    };

    let view = client
        .start_saga(&start, Some("order-1"), Some(2000))
        .await
        .expect("a success answer");
    let request = server.await.expect("the server task ends").to_lowercase();

    assert!(
        request.starts_with("post /v1/sagas?wait_ms=2000 http/1.1"),
        "{request}"
    );
    assert!(request.contains("idempotency-key: order-1"), "{request}");
    assert_eq!(view.status, "completed");
}

#[tokio::test]
async fn a_success_answer_of_the_wrong_shape_is_a_decode_error() {
    let (base, server) =
        serve_once(answer("200 OK", "application/json", r#"{"items":"no"}"#)).await;
    let client = Client::new(&base).expect("valid URL");

    let error = client
        .list_definitions()
        .await
        .expect_err("the shape is wrong");
    server.await.expect("the server task ends");

    assert!(matches!(error, Error::Decode { .. }), "{error:?}");
}
