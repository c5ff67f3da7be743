//! The bench's participant: answers every step at once, as fast as it can. `/refuse` answers a
//! business no (422); `/park` holds the call for ten minutes (sagas parked on a slow step);
//! anything else 200 with a small JSON body. `GET /_bench/parked` says how many `/park` calls
//! arrived so far, so the bench can tell when a restarted coordinator has sent its calls again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::BenchParticipantArgs;
use crate::error::Error;

/// How long `/park` holds a call: longer than any bench runs.
const PARK_MS: u64 = 600_000;

/// Connections the kernel may queue before the participant accepts them. A restarted
/// coordinator re-sends up to `calls_in_flight_max` (4,096) parked calls at once, each on a new
/// connection; tokio's default of 1,024 overflowed and the dropped SYNs came back a second
/// later (the kernel's first retransmit), which timed the kernel, not the coordinator.
const LISTEN_BACKLOG: u32 = 4_096;

/// The path that reports the count of `/park` calls received.
pub const PARKED_CALLS_PATH: &str = "/_bench/parked";

async fn answer(State(parked): State<Arc<AtomicU64>>, uri: Uri) -> Response {
    if uri.path().starts_with("/park") {
        parked.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(std::time::Duration::from_millis(PARK_MS)).await;
    }
    if uri.path().starts_with("/refuse") {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CONTENT_TYPE, "application/problem+json")],
            r#"{"type":"about:blank","title":"Refused","status":422,"detail":"refused by the bench"}"#,
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"ok":true}"#,
    )
        .into_response()
}

async fn parked_calls(State(parked): State<Arc<AtomicU64>>) -> String {
    parked.load(Ordering::Relaxed).to_string()
}

/// The participant's routes.
pub fn app() -> Router {
    Router::new()
        .route(PARKED_CALLS_PATH, get(parked_calls))
        .fallback(answer)
        .with_state(Arc::new(AtomicU64::new(0)))
}

/// Runs the participant until killed (or, with `--stop-with-stdin`, until stdin ends); prints
/// `listening on ADDR` first.
pub fn serve(args: BenchParticipantArgs) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let cannot =
            |e: std::io::Error| Error::Other(format!("cannot listen on {}: {e}", args.listen));
        let socket = if args.listen.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(cannot)?;
        socket.set_reuseaddr(true).map_err(cannot)?;
        socket.bind(args.listen).map_err(cannot)?;
        let listener = socket.listen(LISTEN_BACKLOG).map_err(cannot)?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Other(e.to_string()))?;
        println!("listening on {addr}");
        axum::serve(listener, app())
            .with_graceful_shutdown(crate::stdin_end::closed_if(args.stop_with_stdin))
            .await
            .map_err(|e| Error::Other(format!("serving: {e}")))
    })
}
