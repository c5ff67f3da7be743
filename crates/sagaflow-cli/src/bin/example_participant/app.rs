//! The HTTP side: `fn app(participant) -> Router`, so tests call it with `oneshot` and no
//! socket. Every path and method is a delivery, except `GET /deliveries` and `GET /healthz`.

use std::sync::Arc;
use std::time::Duration;

use crate::delivery::Delivery;
use crate::ledger::{Answer, Ledger};
use crate::script::Script;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;

/// Largest delivery body read: a saga's input and every earlier step's output.
const BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Longest `input.delay_ms` honoured, as for `?delay_ms`.
const INPUT_DELAY_MS_MAX: u64 = 10 * 60 * 1000;

/// The participant's shared state.
#[derive(Clone, Debug)]
pub struct Participant {
    ledger: Arc<Mutex<Ledger>>,
}

impl Participant {
    pub fn new(ledger: Ledger) -> Participant {
        Participant {
            ledger: Arc::new(Mutex::new(ledger)),
        }
    }
}

/// The participant's routes.
pub fn app(participant: Participant) -> Router {
    Router::new()
        .route("/deliveries", get(deliveries).fallback(deliver))
        .route("/healthz", get(healthz).fallback(deliver))
        .fallback(deliver)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(participant)
}

async fn healthz() -> StatusCode {
    StatusCode::OK
}

async fn deliveries(State(participant): State<Participant>) -> Response {
    let records = participant.ledger.lock().records().to_vec();
    axum::Json(records).into_response()
}

async fn deliver(
    State(participant): State<Participant>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delivery = Delivery::read(method.as_str(), uri.path(), &headers, &body);
    let script = Script::parse(uri.query());
    // Handled on its own task so that it runs to the end even when Sagaflow hangs up
    // mid-delay (a coordinator killed mid-flight): the effect is then applied and recorded,
    // and the redelivery after the restart is answered as a duplicate, as in real life.
    let handling = tokio::spawn(handle(participant, delivery, script));
    match handling.await {
        Ok(answer) => into_response(answer),
        Err(error) => {
            tracing::error!(%error, "the delivery handler failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn handle(
    participant: Participant,
    delivery: Delivery,
    script: Result<Script, String>,
) -> Answer {
    let seq = participant.ledger.lock().receive(&delivery);
    let script = match script {
        Ok(script) => script,
        Err(reason) => {
            let answer =
                Answer::problem(StatusCode::BAD_REQUEST, "bad-script", "Bad script", reason);
            return participant.ledger.lock().answer_with(seq, answer);
        }
    };
    let delay = script.delay
        + Duration::from_millis(
            delivery
                .input_delay_ms()
                .unwrap_or(0)
                .min(INPUT_DELAY_MS_MAX),
        );
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    participant.ledger.lock().answer(seq, &delivery, &script)
}

fn into_response(answer: Answer) -> Response {
    let content_type = if answer.problem {
        "application/problem+json"
    } else {
        "application/json"
    };
    let mut response = (
        answer.status,
        [(header::CONTENT_TYPE, content_type)],
        answer.body.to_string(),
    )
        .into_response();
    if let Some(secs) = answer.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    fn participant() -> Router {
        app(Participant::new(Ledger::new(None)))
    }

    /// A delivery as Sagaflow sends it.
    fn delivery(
        uri: &str,
        saga: &str,
        step: &str,
        kind: &str,
        attempt: u32,
        input: Value,
    ) -> Request<Body> {
        let body = json!({"saga_id": saga, "step": step, "attempt": attempt, "input": input, "results": {}});
        Request::post(uri)
            .header("idempotency-key", format!("{saga}/{step}/{kind}"))
            .header("sagaflow-saga-id", saga)
            .header("sagaflow-step", step)
            .header("sagaflow-attempt", attempt.to_string())
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("a valid request")
    }

    async fn send(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let response = router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1024 * 1024)
            .await
            .expect("a body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, body)
    }

    async fn listed(router: &Router) -> Vec<Value> {
        let request = Request::get("/deliveries")
            .body(Body::empty())
            .expect("a valid request");
        let (status, _, body) = send(router, request).await;
        assert_eq!(status, StatusCode::OK);
        body.as_array().cloned().expect("a list of deliveries")
    }

    #[tokio::test]
    async fn fail_times_fails_the_first_deliveries_of_a_key_then_succeeds() {
        let router = participant();
        let uri = "/reservations?fail_times=2&fail_status=503&retry_after=7";
        for attempt in 1..=2 {
            let (status, headers, body) = send(
                &router,
                delivery(uri, "s1", "reserve", "action", attempt, json!({})),
            )
            .await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(headers[header::RETRY_AFTER], "7");
            assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
            assert_eq!(body["status"], 503);
        }
        let (status, headers, body) = send(
            &router,
            delivery(uri, "s1", "reserve", "action", 3, json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get(header::RETRY_AFTER).is_none());
        assert_eq!(
            body,
            json!({"step": "reserve", "saga_id": "s1", "attempt": 3, "ok": true})
        );

        // Another key has its own count.
        let (status, _, _) = send(
            &router,
            delivery(uri, "s2", "reserve", "action", 1, json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

        let statuses: Vec<Value> = listed(&router)
            .await
            .iter()
            .map(|d| d["status"].clone())
            .collect();
        assert_eq!(
            statuses,
            vec![json!(503), json!(503), json!(200), json!(503)]
        );
    }

    #[tokio::test]
    async fn a_repeated_key_that_succeeded_gets_the_recorded_answer_and_counts_as_duplicate() {
        let router = participant();
        let (status, _, first) = send(
            &router,
            delivery("/charges", "s1", "charge", "action", 1, json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);

        // The same attempt delivered again after a restart, now with a script that would fail:
        // the recorded answer wins.
        let (status, _, again) = send(
            &router,
            delivery("/charges?fail=503", "s1", "charge", "action", 1, json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, first);

        let listed = listed(&router).await;
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0]["duplicate"], false);
        assert_eq!(listed[1]["duplicate"], true);
        assert_eq!(listed[1]["key"], "s1/charge/action");
        assert_eq!(listed[1]["kind"], "action");
        assert_eq!(listed[1]["status"], 200);
    }

    #[tokio::test]
    async fn an_input_refusal_is_a_422_problem_for_the_action_only() {
        let router = participant();
        let input = json!({"refuse": "charge"});
        let (status, headers, body) = send(
            &router,
            delivery("/charges", "s1", "charge", "action", 1, input.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(
            body,
            json!({
                "type": "https://example.invalid/problems/out-of-stock",
                "title": "Refused",
                "status": 422,
                "detail": "step charge refused by the participant",
            })
        );

        // Another step of the same saga goes through, and so does the refused step's
        // compensation, though its action never took effect.
        let (status, _, _) = send(
            &router,
            delivery("/r", "s1", "reserve", "action", 1, input.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = send(
            &router,
            delivery("/charges/refund", "s1", "charge", "compensation", 1, input),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed(&router).await[2]["kind"], "compensation");
    }

    #[tokio::test]
    async fn fail_always_answers_its_status() {
        let router = participant();
        for attempt in 1..=3 {
            let (status, _, body) = send(
                &router,
                delivery("/x?fail=422", "s1", "x", "action", attempt, json!({})),
            )
            .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(body["status"], 422);
        }
    }

    #[tokio::test]
    async fn a_bad_script_is_a_400_problem() {
        let router = participant();
        let (status, _, body) = send(
            &router,
            delivery("/x?fail_times=many", "s1", "x", "action", 1, json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["type"], "https://example.invalid/problems/bad-script");
    }

    #[tokio::test(start_paused = true)]
    async fn delay_ms_holds_the_answer() {
        let router = participant();
        let started = tokio::time::Instant::now();
        let (status, _, _) = send(
            &router,
            delivery(
                "/x?delay_ms=250",
                "s1",
                "x",
                "action",
                1,
                json!({"delay_ms": 50}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn reserved_paths_answer_and_other_methods_on_them_are_deliveries() {
        let router = participant();
        let request = Request::get("/healthz")
            .body(Body::empty())
            .expect("a valid request");
        assert_eq!(send(&router, request).await.0, StatusCode::OK);
        assert!(listed(&router).await.is_empty());

        let request = Request::post("/deliveries")
            .body(Body::empty())
            .expect("a valid request");
        assert_eq!(send(&router, request).await.0, StatusCode::OK);
        let listed = listed(&router).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["method"], "POST");
    }
}
