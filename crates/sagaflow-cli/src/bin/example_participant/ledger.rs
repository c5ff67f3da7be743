//! The participant's memory: the first successful answer per Idempotency-Key (to dedupe),
//! how often each key was delivered (for `fail_times`), and every delivery in order (for
//! `GET /deliveries` and the `--log` file). Deciding an answer happens here, under one lock,
//! so two deliveries of the same key never both count as the first.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::delivery::{Delivery, Kind};
use crate::script::Script;

/// Deliveries kept for `GET /deliveries`; later ones are still answered, only not listed.
/// The key maps have one entry per step of each saga a test runs, far below this.
const DELIVERIES_MAX: usize = 100_000;

/// The participant's own problem types.
const PROBLEM_BASE: &str = "https://example.invalid/problems/";

/// An answer to a delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    /// Whether the body is an RFC 9457 problem (`application/problem+json`).
    pub problem: bool,
    pub retry_after_secs: Option<u64>,
}

impl Answer {
    fn success(delivery: &Delivery) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: json!({
                "step": delivery.step,
                "saga_id": delivery.saga_id,
                "attempt": delivery.attempt,
                "ok": true,
            }),
            problem: false,
            retry_after_secs: None,
        }
    }

    /// A problem answer; `slug` names its type.
    pub fn problem(status: StatusCode, slug: &str, title: &str, detail: String) -> Answer {
        Answer {
            status,
            body: json!({
                "type": format!("{PROBLEM_BASE}{slug}"),
                "title": title,
                "status": status.as_u16(),
                "detail": detail,
            }),
            problem: true,
            retry_after_secs: None,
        }
    }
}

/// One delivery as `GET /deliveries` lists it and the `--log` file records it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// Its place in the order of arrival, from 0.
    pub seq: u64,
    pub key: Option<String>,
    pub saga_id: Option<String>,
    pub step: Option<String>,
    pub kind: Kind,
    pub attempt: Option<u32>,
    /// The status answered; `null` while the delivery is still being handled.
    pub status: Option<u16>,
    /// A repeated delivery of a key that had already succeeded, answered from memory.
    pub duplicate: bool,
    pub method: String,
    pub path: String,
    pub traceparent: Option<String>,
    /// When it arrived (RFC 3339, milliseconds): tests compare it with when sagas ended.
    pub received_at: String,
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct Ledger {
    succeeded: HashMap<String, Answer>,
    delivered: HashMap<String, u32>,
    records: Vec<Record>,
    next_seq: u64,
    log: Option<File>,
}

impl Ledger {
    /// A ledger that also appends each answered delivery to `log`, one JSON line each.
    pub fn new(log: Option<File>) -> Ledger {
        Ledger {
            log,
            ..Ledger::default()
        }
    }

    /// Notes a delivery's arrival; the number it gets is passed to [`Ledger::answer`].
    pub fn receive(&mut self, delivery: &Delivery) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.records.len() < DELIVERIES_MAX {
            self.records.push(Record {
                seq,
                key: delivery.key.clone(),
                saga_id: delivery.saga_id.clone(),
                step: delivery.step.clone(),
                kind: delivery.kind,
                attempt: delivery.attempt,
                status: None,
                duplicate: false,
                method: delivery.method.clone(),
                path: delivery.path.clone(),
                traceparent: delivery.traceparent.clone(),
                received_at: sagaflow_api::time::rfc3339(now_ms()),
            });
        } else if self.records.len() == DELIVERIES_MAX && seq == DELIVERIES_MAX as u64 {
            tracing::warn!(
                max = DELIVERIES_MAX,
                "delivery list full; later deliveries are not listed"
            );
        }
        seq
    }

    /// Decides the answer to delivery `seq` and records it. A key that already succeeded
    /// gets its first answer again, whatever the script says now.
    pub fn answer(&mut self, seq: u64, delivery: &Delivery, script: &Script) -> Answer {
        if let Some(first) = delivery.key.as_ref().and_then(|k| self.succeeded.get(k)) {
            let answer = first.clone();
            self.finish(seq, answer.status, true);
            return answer;
        }
        let count = {
            let slot = self
                .delivered
                .entry(delivery.key.clone().unwrap_or_default())
                .or_default();
            *slot = slot.saturating_add(1);
            *slot
        };
        let step = delivery.step.as_deref().unwrap_or("(unnamed)");
        let mut answer = if let Some(status) = script.fail {
            Answer::problem(
                status,
                "scripted-failure",
                status.canonical_reason().unwrap_or("Failure"),
                format!(
                    "step {step} answers {} as scripted by ?fail",
                    status.as_u16()
                ),
            )
        } else if script.fail_times.is_some_and(|n| count <= n) {
            let status = script.fail_status;
            Answer::problem(
                status,
                "scripted-failure",
                status.canonical_reason().unwrap_or("Failure"),
                format!("delivery {count} of step {step} fails as scripted by ?fail_times"),
            )
        } else if delivery.refused_by_input() {
            Answer::problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "out-of-stock",
                "Refused",
                format!("step {step} refused by the participant"),
            )
        } else {
            Answer::success(delivery)
        };
        if answer.status.is_success() {
            if let Some(key) = &delivery.key {
                self.succeeded.insert(key.clone(), answer.clone());
            }
        } else {
            answer.retry_after_secs = script.retry_after_secs;
        }
        self.finish(seq, answer.status, false);
        answer
    }

    /// Records an answer decided elsewhere (a bad script).
    pub fn answer_with(&mut self, seq: u64, answer: Answer) -> Answer {
        self.finish(seq, answer.status, false);
        answer
    }

    /// Every delivery listed so far, in order of arrival.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    fn finish(&mut self, seq: u64, status: StatusCode, duplicate: bool) {
        let Some(record) = usize::try_from(seq)
            .ok()
            .and_then(|i| self.records.get_mut(i))
        else {
            return;
        };
        record.status = Some(status.as_u16());
        record.duplicate = duplicate;
        tracing::info!(
            seq,
            key = record.key.as_deref().unwrap_or("-"),
            saga_id = record.saga_id.as_deref().unwrap_or("-"),
            step = record.step.as_deref().unwrap_or("-"),
            kind = record.kind.as_str(),
            attempt = record.attempt,
            status = status.as_u16(),
            duplicate,
            "delivery answered"
        );
        if let Some(log) = &mut self.log {
            let written = serde_json::to_string(record)
                .map_err(std::io::Error::other)
                .and_then(|line| log.write_all(format!("{line}\n").as_bytes()))
                .and_then(|()| log.flush());
            if let Err(error) = written {
                tracing::warn!(%error, "cannot append to the delivery log");
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
