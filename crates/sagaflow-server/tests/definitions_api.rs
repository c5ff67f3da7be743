//! `/v1/definitions`: versions, validation errors as problems naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::Coordinator;

fn valid() -> Value {
    json!({
        "name": "place-order",
        "timeout_ms": 60000,
        "steps": [
            {"name": "reserve", "action": {"url": "http://127.0.0.1:8101/r", "method": "POST", "timeout_ms": 2000},
             "compensation": {"url": "http://127.0.0.1:8101/r/cancel"},
             "retry": {"max_attempts": 5, "initial_backoff_ms": 50, "max_backoff_ms": 2000, "multiplier": 2.0, "jitter": "full"}},
            {"name": "charge", "action": {"url": "http://127.0.0.1:8102/c"}}
        ]
    })
}

/// Applies `edit` to a valid definition and expects a 422 naming `field`.
async fn check_invalid(c: &Coordinator, edit: impl Fn(&mut Value), field: &str) {
    let mut body = valid();
    edit(&mut body);
    let (status, headers, problem) = c.call("POST", "/v1/definitions", Some(body.clone())).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{body} → {problem}"
    );
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem["status"], 422);
    assert_eq!(problem["field"], field, "{problem}");
    assert!(problem["type"].as_str().unwrap().ends_with("/validation"));
    assert!(!problem["detail"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn every_rule_is_a_422_naming_its_field() {
    let c = Coordinator::start().await;
    check_invalid(
        &c,
        |b| {
            b.as_object_mut().unwrap().remove("name");
        },
        "name",
    )
    .await;
    check_invalid(&c, |b| b["name"] = json!(""), "name").await;
    check_invalid(&c, |b| b["steps"] = json!([]), "steps").await;
    check_invalid(
        &c,
        |b| {
            b.as_object_mut().unwrap().remove("steps");
        },
        "steps",
    )
    .await;
    check_invalid(&c, |b| b["steps"][1]["name"] = json!(""), "steps[1].name").await;
    check_invalid(
        &c,
        |b| b["steps"][1]["name"] = json!("reserve"),
        "steps[1].name",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["action"]["url"] = json!("/relative"),
        "steps[0].action.url",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["action"]["url"] = json!("ftp://x/y"),
        "steps[0].action.url",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["compensation"]["url"] = json!("nope"),
        "steps[0].compensation.url",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["action"]["timeout_ms"] = json!(0),
        "steps[0].action.timeout_ms",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["action"]["timeout_ms"] = json!(3_600_001),
        "steps[0].action.timeout_ms",
    )
    .await;
    check_invalid(&c, |b| b["timeout_ms"] = json!(0), "timeout_ms").await;
    check_invalid(
        &c,
        |b| b["timeout_ms"] = json!(30u64 * 86_400_000 + 1),
        "timeout_ms",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["retry"]["max_attempts"] = json!(0),
        "steps[0].retry.max_attempts",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["retry"]["max_attempts"] = json!(101),
        "steps[0].retry.max_attempts",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["retry"]["initial_backoff_ms"] = json!(0),
        "steps[0].retry.initial_backoff_ms",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["retry"]["initial_backoff_ms"] = json!(5000),
        "steps[0].retry.initial_backoff_ms",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["retry"]["multiplier"] = json!(0.5),
        "steps[0].retry.multiplier",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["retry"]["jitter"] = json!("sometimes"),
        "steps[0].retry.jitter",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["compensation_retry"] = json!({"max_attempts": 0}),
        "steps[0].compensation_retry.max_attempts",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["action"]["method"] = json!("FETCH"),
        "steps[0].action.method",
    )
    .await;
    check_invalid(
        &c,
        |b| b["steps"][0]["action"]["timeout_ms"] = json!(-5),
        "steps[0].action.timeout_ms",
    )
    .await;
    check_invalid(&c, |b| b["steps"][0]["name"] = json!(5), "steps[0].name").await;
    check_invalid(
        &c,
        |b| {
            let step = b["steps"][1].clone();
            b["steps"] = Value::Array(
                (0..101)
                    .map(|i| {
                        let mut s = step.clone();
                        s["name"] = json!(format!("s{i}"));
                        s
                    })
                    .collect(),
            );
        },
        "steps",
    )
    .await;
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let c = Coordinator::start().await;
    let (status, headers, problem) = c
        .call_with("POST", "/v1/definitions", Some("{\"name\": ".into()), &[])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem["status"], 400);
}

#[tokio::test]
async fn a_body_above_the_limit_is_a_413_problem() {
    let c = Coordinator::with_limits(sagaflow_server::Limits {
        body_bytes_max: 1024,
        ..Default::default()
    })
    .await;
    let mut body = valid();
    body["padding"] = json!("x".repeat(4096));
    let (status, headers, problem) = c.call("POST", "/v1/definitions", Some(body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem["status"], 413);
}

#[tokio::test]
async fn registering_again_versions_only_what_changed() {
    let c = Coordinator::start().await;
    let (status, _, body) = c.call("POST", "/v1/definitions", Some(valid())).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CREATED,
            json!({"name": "place-order", "version": 1})
        )
    );

    // The same definition with its defaults spelled out is the same definition.
    let mut explicit = valid();
    explicit["steps"][1]["action"]["method"] = json!("POST");
    explicit["steps"][1]["action"]["timeout_ms"] = json!(10000);
    explicit["steps"][1]["retry"] = json!({"max_attempts": 3, "initial_backoff_ms": 100, "max_backoff_ms": 10000, "multiplier": 2.0, "jitter": "full"});
    let (status, _, body) = c.call("POST", "/v1/definitions", Some(explicit)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"name": "place-order", "version": 1}))
    );

    let mut changed = valid();
    changed["timeout_ms"] = json!(1000);
    let (status, _, body) = c.call("POST", "/v1/definitions", Some(changed)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CREATED,
            json!({"name": "place-order", "version": 2})
        )
    );

    let (_, _, latest) = c.call("GET", "/v1/definitions/place-order", None).await;
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["timeout_ms"], 1000);
    let (_, _, first) = c
        .call("GET", "/v1/definitions/place-order?version=1", None)
        .await;
    assert_eq!(first["version"], 1);
    assert_eq!(first["timeout_ms"], 60000);
    // Defaults are filled in.
    assert_eq!(first["steps"][1]["action"]["method"], "POST");
    assert_eq!(first["steps"][1]["action"]["timeout_ms"], 10000);
    assert_eq!(first["steps"][1]["retry"]["max_attempts"], 3);
    assert_eq!(first["steps"][1]["compensation_retry"]["max_attempts"], 20);
    assert_eq!(
        first["steps"][1]["compensation_retry"]["max_backoff_ms"],
        60000
    );

    let (status, _, list) = c.call("GET", "/v1/definitions", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["version"], 2);
}

#[tokio::test]
async fn unknown_definitions_and_routes_are_404_problems() {
    let c = Coordinator::start().await;
    for uri in [
        "/v1/definitions/nope",
        "/v1/definitions/nope?version=3",
        "/v1/nothing",
    ] {
        let (status, headers, problem) = c.call("GET", uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem["status"], 404);
    }
    let (status, _, problem) = c.call("DELETE", "/v1/definitions", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(problem["status"], 405);
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let c = Coordinator::start().await;
    let (status, _, _) = c.call("GET", "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = c.call("GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, metrics) = c.call("GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics.as_str().unwrap();
    assert!(text.contains("sagaflow_build_info"), "{text}");
    assert!(
        text.contains("sagaflow_sagas{status=\"running\"}"),
        "{text}"
    );
    let (status, _, doc) = c.call("GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/definitions",
        "/v1/sagas",
        "/v1/sagas/{id}",
        "/v1/sagas/{id}/history",
        "/v1/sagas/{id}/cancel",
        "/v1/sagas/{id}/retry",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}
