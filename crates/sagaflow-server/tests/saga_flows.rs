//! Sagas end to end through the API against a real participant over HTTP: the participant
//! protocol, compensation order, retries, idempotent starts, waiting, cancel, timeout, retry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{Coordinator, Participant, step};

/// A coordinator with the definition `order` made of `steps(participant)`.
async fn setup(steps: impl Fn(&Participant) -> Vec<Value>) -> (Coordinator, Participant) {
    let p = Participant::start().await;
    let c = Coordinator::start().await;
    c.define(json!({"name": "order", "steps": steps(&p)})).await;
    (c, p)
}

fn calls(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test]
async fn a_saga_whose_steps_succeed_completes_and_passes_results_along() {
    let (c, p) = setup(|p| {
        vec![
            step(p, "reserve", "/ok/reserve"),
            step(p, "charge", "/ok/charge"),
            step(p, "ship", "/ok/ship"),
        ]
    })
    .await;
    let id = c.start_saga("order", json!({"order": 42})).await;
    let saga = c.wait_status(&id, "completed").await;
    assert_eq!(saga["error"], Value::Null);
    for s in saga["steps"].as_array().unwrap() {
        assert_eq!(s["status"], "succeeded");
        assert_eq!(s["attempts"], 1);
        assert_eq!(s["compensation"]["status"], "skipped");
    }
    assert_eq!(
        p.calls_of(&id),
        calls(&[
            ("reserve", "action"),
            ("charge", "action"),
            ("ship", "action")
        ])
    );
    // The participant protocol: headers and body.
    let third = &p.deliveries()[2];
    assert_eq!(third.key, format!("{id}/ship/action"));
    assert_eq!(third.attempt, 1);
    assert_eq!(third.body["saga_id"], id);
    assert_eq!(third.body["step"], "ship");
    assert_eq!(third.body["attempt"], 1);
    assert_eq!(third.body["input"], json!({"order": 42}));
    assert_eq!(third.body["results"]["reserve"]["path"], "ok/reserve");
    assert_eq!(third.body["results"]["charge"]["path"], "ok/charge");
    let parts: Vec<&str> = third.traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{}", third.traceparent);
    assert_eq!(parts[1], saga["trace_id"]);
    assert_eq!(saga["steps"][0]["output"]["path"], "ok/reserve");
}

#[tokio::test]
async fn a_business_refusal_compensates_completed_steps_in_reverse_order() {
    let (c, p) = setup(|p| {
        vec![
            step(p, "reserve", "/ok/reserve"),
            step(p, "charge", "/ok/charge"),
            step(p, "ship", "/refuse/ship"),
        ]
    })
    .await;
    let id = c.start_saga("order", json!({})).await;
    let saga = c.wait_status(&id, "compensated").await;
    assert_eq!(
        p.calls_of(&id),
        calls(&[
            ("reserve", "action"),
            ("charge", "action"),
            ("ship", "action"),
            ("charge", "compensation"),
            ("reserve", "compensation"),
        ]),
        "a definite no is not retried and not compensated"
    );
    let steps = saga["steps"].as_array().unwrap();
    assert_eq!(steps[2]["status"], "failed");
    assert_eq!(steps[2]["attempts"], 1);
    assert!(steps[2]["error"].as_str().unwrap().contains("out of stock"));
    assert_eq!(steps[1]["status"], "compensated");
    assert_eq!(steps[0]["status"], "compensated");
    assert!(saga["error"].as_str().unwrap().contains("ship"), "{saga}");
}

#[tokio::test]
async fn a_redirect_fails_the_step_without_being_followed() {
    let (c, p) = setup(|p| {
        vec![
            step(p, "reserve", "/ok/reserve"),
            step(p, "charge", "/redirect/ok/charge"),
        ]
    })
    .await;
    let id = c.start_saga("order", json!({})).await;
    let saga = c.wait_status(&id, "compensated").await;
    assert_eq!(
        p.calls_of(&id),
        calls(&[
            ("reserve", "action"),
            ("charge", "action"),
            ("reserve", "compensation"),
        ]),
        "the redirect's target is never called, and a redirect is not retried or compensated"
    );
    assert!(
        p.deliveries().iter().all(|d| d.path != "ok/charge"),
        "the redirect was followed"
    );
    let error = saga["steps"][1]["error"].as_str().unwrap();
    assert!(
        error.contains("302") && error.contains("/ok/charge"),
        "{error}"
    );
}

#[tokio::test]
async fn a_step_whose_5xx_exhausts_its_attempts_is_compensated_first() {
    let (c, p) = setup(|p| {
        vec![
            step(p, "reserve", "/ok/reserve"),
            step(p, "charge", "/fail/charge/503"),
        ]
    })
    .await;
    let id = c.start_saga("order", json!({})).await;
    let saga = c.wait_status(&id, "compensated").await;
    assert_eq!(
        p.calls_of(&id),
        calls(&[
            ("reserve", "action"),
            ("charge", "action"),
            ("charge", "action"),
            ("charge", "action"),
            ("charge", "compensation"),
            ("reserve", "compensation"),
        ]),
        "a 5xx may have taken effect: the failed step is compensated too"
    );
    assert_eq!(saga["steps"][1]["attempts"], 3);
    let attempts: Vec<u32> = p
        .deliveries()
        .iter()
        .filter(|d| d.step == "charge" && d.key.ends_with("action"))
        .map(|d| d.attempt)
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
}

#[tokio::test]
async fn refused_connections_are_retried_and_not_compensated() {
    // A port nothing listens on: every attempt is a definite "not delivered".
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/x", closed.local_addr().unwrap());
    drop(closed);
    never_delivered(dead, json!(2000)).await;
}

/// A saga whose second step's action goes to `url` (with `timeout_ms`), which no attempt ever
/// reaches: each is a definite "not delivered", so the step fails after its three attempts, is
/// not compensated itself, and only the first step is undone. Returns the saga.
async fn never_delivered(url: String, timeout_ms: Value) -> Value {
    let (c, p) = setup(move |p| {
        let mut second = step(p, "charge", "/ok/unused");
        second["action"]["url"] = json!(url.clone());
        second["action"]["timeout_ms"] = timeout_ms.clone();
        vec![step(p, "reserve", "/ok/reserve"), second]
    })
    .await;
    let id = c.start_saga("order", json!({})).await;
    let saga = c.wait_status(&id, "compensated").await;
    assert_eq!(saga["steps"][1]["attempts"], 3);
    assert_eq!(
        saga["steps"][1]["compensation"]["status"], "skipped",
        "no attempt left the coordinator: there is nothing to compensate"
    );
    assert_eq!(
        p.calls_of(&id),
        calls(&[("reserve", "action"), ("reserve", "compensation")])
    );
    saga
}

#[tokio::test]
async fn a_connection_not_made_in_time_is_retried_and_not_compensated() {
    // A listener whose accept queue is full and never drained: the kernel drops the SYNs of
    // every further connection, so each attempt times out before a request could leave.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = socket.listen(0).unwrap();
    let addr = full.local_addr().unwrap();
    let _queued = std::net::TcpStream::connect(addr).unwrap();
    let saga = never_delivered(format!("http://{addr}/x"), json!(150)).await;
    let error = saga["steps"][1]["error"].as_str().unwrap();
    assert!(error.contains("before a connection"), "{error}");
    drop(full);
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let (c, p) = setup(|p| {
        vec![
            step(p, "reserve", "/flaky/reserve/2"),
            step(p, "charge", "/ok/charge"),
        ]
    })
    .await;
    let id = c.start_saga("order", json!({})).await;
    let saga = c.wait_status(&id, "completed").await;
    assert_eq!(saga["steps"][0]["attempts"], 3);
    let (_, _, history) = c
        .call("GET", &format!("/v1/sagas/{id}/history"), None)
        .await;
    let events: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        vec![
            "saga_started",
            "attempt_started",
            "attempt_failed",
            "attempt_started",
            "attempt_failed",
            "attempt_started",
            "attempt_succeeded",
            "attempt_started",
            "attempt_succeeded",
            "saga_completed"
        ]
    );
    let failed = &history["items"][2];
    assert_eq!(failed["step"], "reserve");
    assert_eq!(failed["attempt"], 1);
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .contains("retry scheduled for"),
        "{failed}"
    );
    let _ = p;
}

#[tokio::test]
async fn retry_after_sets_the_delay_even_above_max_backoff() {
    let (c, p) = setup(|p| vec![step(p, "reserve", "/throttle/reserve/1")]).await;
    let started = Instant::now();
    let id = c.start_saga("order", json!({})).await;
    c.wait_status(&id, "completed").await;
    // max_backoff_ms is 20 in these steps; Retry-After says one second.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    let (_, _, history) = c
        .call("GET", &format!("/v1/sagas/{id}/history"), None)
        .await;
    let failed = &history["items"][2]["data"];
    let delay = failed["retry_at_ms"].as_u64().unwrap() - failed["at_ms"].as_u64().unwrap();
    assert_eq!(delay, 1000);
    assert_eq!(p.calls_of(&id).len(), 2);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_saga_and_a_different_body_is_422() {
    let (c, p) = setup(|p| vec![step(p, "reserve", "/ok/reserve")]).await;
    let body = json!({"definition": "order", "input": {"a": 1, "b": 2}}).to_string();
    let key = [("idempotency-key", "order-7")];
    let (s1, _, first) = c
        .call_with("POST", "/v1/sagas", Some(body.clone()), &key)
        .await;
    assert_eq!(s1, StatusCode::CREATED);
    // The same JSON with its keys in another order is the same request.
    let same = json!({"input": {"b": 2, "a": 1}, "definition": "order"}).to_string();
    let (s2, _, second) = c.call_with("POST", "/v1/sagas", Some(same), &key).await;
    assert_eq!(s2, StatusCode::OK);
    assert_eq!(first["id"], second["id"]);
    let other = json!({"definition": "order", "input": {"a": 2}}).to_string();
    let (s3, headers, problem) = c.call_with("POST", "/v1/sagas", Some(other), &key).await;
    assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(first["id"].as_str().unwrap())
    );
    let (_, _, list) = c.call("GET", "/v1/sagas", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    c.wait_status(first["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(p.deliveries().len(), 1);
}

#[tokio::test]
async fn concurrent_starts_with_one_key_make_one_saga() {
    let (c, _p) = setup(|p| vec![step(p, "reserve", "/ok/reserve")]).await;
    let body = json!({"definition": "order", "input": 1}).to_string();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let router = c.router.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            use tower::ServiceExt;
            let request = axum::http::Request::post("/v1/sagas")
                .header("idempotency-key", "race")
                .body(axum::body::Body::from(body))
                .unwrap();
            router.oneshot(request).await.unwrap().status()
        }));
    }
    let mut created = 0;
    for task in tasks {
        let status = task.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status}"
        );
        created += usize::from(status == StatusCode::CREATED);
    }
    assert_eq!(created, 1);
}

#[tokio::test]
async fn wait_ms_holds_the_answer_until_the_saga_ends() {
    let (c, _p) = setup(|p| {
        vec![
            step(p, "reserve", "/slow/reserve/100"),
            step(p, "charge", "/ok/charge"),
        ]
    })
    .await;
    let body = json!({"definition": "order", "input": {}}).to_string();
    let (status, headers, saga) = c
        .call_with("POST", "/v1/sagas?wait_ms=5000", Some(body.clone()), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(saga["status"], "completed");
    // The final view, published by the saga's task, is the one a read gives.
    assert_eq!(headers["content-type"], "application/json");
    let id = saga["id"].as_str().unwrap();
    let (_, _, read) = c.call("GET", &format!("/v1/sagas/{id}"), None).await;
    assert_eq!(saga, read);
    // A short wait answers with the saga as it stands.
    let (status, _, saga) = c
        .call_with("POST", "/v1/sagas?wait_ms=10", Some(body), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(saga["status"], "running");
    let id = saga["id"].as_str().unwrap();
    let (_, _, done) = c
        .call("GET", &format!("/v1/sagas/{id}?wait_ms=5000"), None)
        .await;
    assert_eq!(done["status"], "completed");
}

#[tokio::test]
async fn a_start_with_a_bad_wait_or_key_is_a_problem_and_starts_nothing() {
    let (c, _p) = setup(|p| vec![step(p, "reserve", "/ok/reserve")]).await;
    let body = json!({"definition": "order", "input": {}}).to_string();
    let post = |uri: &'static str, body: String, key: Option<&'static str>| {
        let c = &c;
        async move {
            let headers: Vec<(&str, &str)> =
                key.map(|k| ("idempotency-key", k)).into_iter().collect();
            c.call_with("POST", uri, Some(body), &headers).await
        }
    };
    let (status, _, problem) = post("/v1/sagas?wait_ms=soon", body.clone(), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "wait_ms");
    // Given twice, the wait is not guessed at.
    let (status, _, problem) = post("/v1/sagas?wait_ms=1&wait_ms=2", body.clone(), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "query");
    let (status, _, problem) = post("/v1/sagas", body.clone(), Some("two words")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("invalid-idempotency-key"),
        "{problem}"
    );
    // A malformed body is answered before a malformed key, as the handler reads them.
    let (status, _, problem) = post("/v1/sagas", "{".into(), Some("two words")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        !problem["type"]
            .as_str()
            .unwrap()
            .ends_with("invalid-idempotency-key"),
        "{problem}"
    );
    let (_, _, page) = c.call("GET", "/v1/sagas", None).await;
    assert_eq!(page["items"], json!([]), "no saga was started");
    // Other parameters are ignored, and a good key and wait start the saga.
    let (status, _, saga) = post("/v1/sagas?wait_ms=5000&trace=1", body, Some("order-8")).await;
    assert_eq!(status, StatusCode::CREATED, "{saga}");
    assert_eq!(saga["status"], "completed");
}

#[tokio::test]
async fn unknown_definitions_and_sagas_are_404() {
    let (c, _p) = setup(|p| vec![step(p, "reserve", "/ok/reserve")]).await;
    let (status, _, problem) = c
        .call("POST", "/v1/sagas", Some(json!({"definition": "nope"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["status"], 404);
    let (status, _, _) = c
        .call(
            "POST",
            "/v1/sagas",
            Some(json!({"definition": "order", "version": 9})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (method, uri) in [
        ("GET", "/v1/sagas/nope"),
        ("GET", "/v1/sagas/nope/history"),
        ("POST", "/v1/sagas/nope/cancel"),
        ("POST", "/v1/sagas/nope/retry"),
    ] {
        let (status, headers, _) = c.call(method, uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    let (status, _, problem) = c.call("POST", "/v1/sagas", Some(json!({"input": 1}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["field"], "definition");
}

#[tokio::test]
async fn an_input_above_the_limit_is_refused() {
    let p = Participant::start().await;
    let c = Coordinator::with_limits(sagaflow_server::Limits {
        input_bytes_max: 100,
        ..Default::default()
    })
    .await;
    c.define(json!({"name": "order", "steps": [step(&p, "reserve", "/ok/reserve")]}))
        .await;
    let (status, _, problem) = c
        .call(
            "POST",
            "/v1/sagas",
            Some(json!({"definition": "order", "input": "x".repeat(200)})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["field"], "input");
}

#[tokio::test]
async fn sagas_above_the_in_flight_limit_get_429_with_retry_after() {
    let p = Participant::start().await;
    let c = Coordinator::with_limits(sagaflow_server::Limits {
        sagas_active_max: 2,
        ..Default::default()
    })
    .await;
    c.define(json!({"name": "order", "steps": [step(&p, "reserve", "/slow/reserve/400")]}))
        .await;
    let a = c.start_saga("order", json!(1)).await;
    let b = c.start_saga("order", json!(2)).await;
    let (status, headers, problem) = c
        .call("POST", "/v1/sagas", Some(json!({"definition": "order"})))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(problem["status"], 429);
    // Nothing accepted is dropped, and room comes back when sagas end.
    c.wait_status(&a, "completed").await;
    c.wait_status(&b, "completed").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, _) = c
            .call("POST", "/v1/sagas", Some(json!({"definition": "order"})))
            .await;
        if status == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "no room came back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn cancel_compensates_completed_steps_and_awaits_the_one_in_flight() {
    let (c, p) = setup(|p| {
        vec![
            step(p, "reserve", "/ok/reserve"),
            step(p, "charge", "/slow/charge/300"),
            step(p, "ship", "/ok/ship"),
        ]
    })
    .await;
    let id = c.start_saga("order", json!({})).await;
    // Wait until the slow action is in flight.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p
        .calls_of(&id)
        .contains(&("charge".to_owned(), "action".to_owned()))
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, _, saga) = c
        .call("POST", &format!("/v1/sagas/{id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(saga["status"], "compensating");
    let saga = c.wait_status(&id, "compensated").await;
    assert_eq!(saga["error"], "cancelled");
    assert_eq!(
        p.calls_of(&id),
        calls(&[
            ("reserve", "action"),
            ("charge", "action"),
            ("charge", "compensation"),
            ("reserve", "compensation"),
        ]),
        "the in-flight action succeeded, so it is compensated; no new step ran"
    );
    assert_eq!(saga["steps"][2]["status"], "skipped");
    let (status, _, problem) = c
        .call("POST", &format!("/v1/sagas/{id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["status"], 409);
}

#[tokio::test]
async fn a_saga_past_its_timeout_compensates_and_says_it_timed_out() {
    let p = Participant::start().await;
    let c = Coordinator::start().await;
    let mut slow = step(&p, "charge", "/fail/charge/503");
    slow["retry"] = json!({"max_attempts": 100, "initial_backoff_ms": 50, "max_backoff_ms": 50});
    c.define(json!({"name": "order", "timeout_ms": 300, "steps": [step(&p, "reserve", "/ok/reserve"), slow]})).await;
    let id = c.start_saga("order", json!({})).await;
    let saga = c.wait_status(&id, "compensated").await;
    assert!(
        saga["error"].as_str().unwrap().contains("timed out"),
        "{saga}"
    );
    let calls = p.calls_of(&id);
    assert_eq!(
        calls.last().unwrap(),
        &("reserve".to_owned(), "compensation".to_owned())
    );
    // charge answered 5xx: it may have taken effect, so it is compensated before reserve.
    assert_eq!(
        calls[calls.len() - 2],
        ("charge".to_owned(), "compensation".to_owned())
    );
}

#[tokio::test]
async fn a_compensation_that_gives_up_fails_the_saga_and_retry_resumes_it() {
    let p = Participant::start().await;
    let c = Coordinator::start().await;
    let mut reserve = step(&p, "reserve", "/ok/reserve");
    // The compensation fails 4 times per key: 3 attempts give up, a retry's fresh ones succeed.
    reserve["compensation"]["url"] = json!(p.url("/flaky/undo/4"));
    c.define(json!({"name": "order", "steps": [reserve, step(&p, "charge", "/refuse/charge")]}))
        .await;
    let id = c.start_saga("order", json!({})).await;
    let saga = c.wait_status(&id, "failed").await;
    assert_eq!(saga["steps"][0]["compensation"]["status"], "failed");
    assert_eq!(saga["steps"][0]["compensation"]["attempts"], 3);
    assert!(
        saga["error"].as_str().unwrap().contains("gave up"),
        "{saga}"
    );
    let (status, _, _) = c
        .call("POST", &format!("/v1/sagas/{id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, _, saga) = c.call("POST", &format!("/v1/sagas/{id}/retry"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{saga}");
    assert_eq!(saga["status"], "compensating");
    let saga = c.wait_status(&id, "compensated").await;
    assert_eq!(saga["steps"][0]["status"], "compensated");
    assert_eq!(saga["steps"][0]["compensation"]["attempts"], 5);
    let (status, _, _) = c.call("POST", &format!("/v1/sagas/{id}/retry"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn listing_is_newest_first_filtered_and_paged_without_skips_or_repeats() {
    let (c, _p) = setup(|p| vec![step(p, "reserve", "/ok/reserve")]).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(c.start_saga("order", json!(i)).await);
    }
    for id in &ids {
        c.wait_status(id, "completed").await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let uri = match &cursor {
            Some(cur) => format!("/v1/sagas?limit=3&cursor={cur}"),
            None => "/v1/sagas?limit=3".to_owned(),
        };
        let (status, _, page) = c.call("GET", &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        if pages == 0 {
            // Sagas started while paging show up on no later page.
            c.start_saga("order", json!("late")).await;
        }
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    assert_eq!(pages, 3);

    let (_, _, completed) = c
        .call(
            "GET",
            "/v1/sagas?status=completed&definition=order&limit=100",
            None,
        )
        .await;
    assert!(completed["items"].as_array().unwrap().len() >= 7);
    let (_, _, none) = c.call("GET", "/v1/sagas?definition=other", None).await;
    assert_eq!(none["items"], json!([]));
    for bad in [
        "/v1/sagas?status=bogus",
        "/v1/sagas?limit=0",
        "/v1/sagas?limit=x",
        "/v1/sagas?cursor=zz",
    ] {
        let (status, _, problem) = c.call("GET", bad, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(problem["status"], 422);
    }
}

#[tokio::test]
async fn a_restarted_engine_resends_in_flight_calls_with_the_same_attempt() {
    let p = Participant::start().await;
    let c = Coordinator::start().await;
    c.define(json!({"name": "order", "steps": [step(&p, "reserve", "/slow/reserve/300"), step(&p, "charge", "/ok/charge")]})).await;
    let id = c.start_saga("order", json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.calls_of(&id).is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Stop without waiting for the call: it stays in flight in the journal.
    c.engine.shutdown(Duration::ZERO).await;
    let Coordinator { dir, .. } = c;
    let c = Coordinator::open(dir, sagaflow_server::Limits::default()).await;
    c.wait_status(&id, "completed").await;
    let reserve: Vec<(String, u32)> = p
        .deliveries()
        .iter()
        .filter(|d| d.saga_id == id && d.step == "reserve")
        .map(|d| (d.key.clone(), d.attempt))
        .collect();
    assert_eq!(reserve.len(), 2, "sent once, then again after the restart");
    assert_eq!(reserve[0], reserve[1], "the same key and the same attempt");
    let (_, _, history) = c
        .call("GET", &format!("/v1/sagas/{id}/history"), None)
        .await;
    assert!(
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "attempt_resent")
    );
}

#[tokio::test]
async fn an_attempt_past_its_timeout_is_retried_and_then_compensated_as_maybe_applied() {
    let p = Participant::start().await;
    let c = Coordinator::start().await;
    let mut slow = step(&p, "charge", "/slow/charge/400");
    slow["action"]["timeout_ms"] = json!(50);
    c.define(json!({"name": "order", "steps": [step(&p, "reserve", "/ok/reserve"), slow]}))
        .await;
    let id = c.start_saga("order", json!({})).await;
    let saga = c.wait_status(&id, "compensated").await;
    assert_eq!(saga["steps"][1]["status"], "compensated");
    assert_eq!(saga["steps"][1]["attempts"], 3);
    assert!(
        saga["steps"][1]["error"]
            .as_str()
            .unwrap()
            .contains("timed out")
            || saga["steps"][1]["error"]
                .as_str()
                .unwrap()
                .contains("timeout"),
        "{saga}"
    );
    let calls = p.calls_of(&id);
    assert_eq!(
        calls[calls.len() - 2..].to_vec(),
        [
            ("charge".to_owned(), "compensation".to_owned()),
            ("reserve".to_owned(), "compensation".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_step_without_compensation_is_skipped_when_unwinding() {
    let p = Participant::start().await;
    let c = Coordinator::start().await;
    let mut notify = step(&p, "notify", "/ok/notify");
    notify.as_object_mut().unwrap().remove("compensation");
    c.define(json!({"name": "order", "steps": [step(&p, "reserve", "/ok/reserve"), notify, step(&p, "charge", "/refuse/charge")]})).await;
    let id = c.start_saga("order", json!({})).await;
    let saga = c.wait_status(&id, "compensated").await;
    assert_eq!(saga["steps"][1]["status"], "succeeded");
    assert_eq!(saga["steps"][1]["compensation"]["status"], "none");
    assert_eq!(saga["steps"][0]["status"], "compensated");
    assert_eq!(
        p.calls_of(&id),
        calls(&[
            ("reserve", "action"),
            ("notify", "action"),
            ("charge", "action"),
            ("reserve", "compensation")
        ])
    );
}
