//! One event loop per core: connections accepted on the main loop are handed out in turn to
//! every loop (current-thread runtimes, each driven by its own thread), and each connection's
//! requests, the sagas they start and those sagas' calls then run on that loop alone.
//!
//! A work-stealing runtime moves tasks between its workers, and on these machines the cost is
//! in the moving: a task woken on one worker wakes the other, parked, to look for work (about
//! seven thread wake-ups per saga at one client, tens of microseconds each on a virtual
//! machine). A saga's steps are sequential, so nothing is lost by keeping them on one thread;
//! the cores are shared by handing connections out in turn.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};

/// Accepted connections waiting for their loop to take them; past it, accepting waits.
const CONNECTIONS_QUEUED_MAX: usize = 1_024;

/// How far ahead each loop always has a timer set. tokio's timer wakes its own driver (an
/// eventfd `write`, and later a spurious return from `epoll_wait`) whenever a timer is set
/// earlier than the driver's next wake-up, and a loop that last parked with no timer pending
/// has none: so every participant call's timeout cost its loop a system call (one per call,
/// seen with `perf record -e syscalls:sys_enter_write`). With this tick always pending, a
/// timeout set later than it (a call's is seconds) leaves the driver be; the price is one
/// wake-up per tick on an idle loop.
const TIMER_TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// Keeps a timer pending on each of some runtimes (see `TIMER_TICK`) until dropped.
pub(crate) struct TimerTicks(Vec<tokio::task::JoinHandle<()>>);

impl TimerTicks {
    pub(crate) fn on(handles: &[Handle]) -> TimerTicks {
        TimerTicks(
            handles
                .iter()
                .map(|handle| {
                    handle.spawn(async {
                        loop {
                            tokio::time::sleep(TIMER_TICK).await;
                            // The tick also closes this loop's participant connections that
                            // sat idle past their timeout.
                            crate::engine::sweep_idle_connections();
                        }
                    })
                })
                .collect(),
        )
    }
}

impl Drop for TimerTicks {
    fn drop(&mut self) {
        for tick in &self.0 {
            tick.abort();
        }
    }
}

/// An event loop on a thread of its own: a current-thread runtime, driven until the loop is
/// dropped (which drops the tasks still on it and waits for the thread).
pub struct EventLoop {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EventLoop {
    /// Starts a loop on a new thread named `name`.
    pub fn start(name: String) -> std::io::Result<EventLoop> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    let _ = handle_tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async move {
                        let _ = stopped.await;
                    });
                }
                Err(e) => {
                    let _ = handle_tx.send(Err(e));
                }
            }
        })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("an event loop's thread ended at once"))??;
        Ok(EventLoop {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where to spawn onto this loop.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `router` on `listener` with `loops` (this one among them), until `shutdown`
/// resolves; then stops accepting and waits for every loop's server to finish its requests.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    loops: Vec<Handle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let mut queues = Vec::new();
    let mut servers = Vec::new();
    for handle in loops {
        let (queue, connections) = mpsc::channel(CONNECTIONS_QUEUED_MAX);
        queues.push(queue);
        let router = router.clone();
        let mut stopped = stopped.clone();
        servers.push(handle.spawn(async move {
            axum::serve(Handoff { connections, addr }, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        }));
    }
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // As axum does: a full file table or the like passes; don't spin on it.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Off this loop's reactor; the loop that takes it registers it with its own.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "handing a connection over failed");
                continue;
            }
        };
        let queue = &queues[next % queues.len()];
        next += 1;
        if queue.send((stream, peer)).await.is_err() {
            // That loop's server ended (it failed); its error comes out below.
            break;
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let mut outcome = Ok(());
    for server in servers {
        let served = server
            .await
            .map_err(std::io::Error::other)
            .and_then(|served| served);
        if outcome.is_ok() {
            outcome = served;
        }
    }
    outcome
}

/// A loop's side of the hand-over: connections accepted elsewhere, as this loop's streams.
struct Handoff {
    connections: mpsc::Receiver<(std::net::TcpStream, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for Handoff {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((stream, peer)) = self.connections.recv().await else {
                // No more connections: the server is shutting down and stops accepting.
                return std::future::pending().await;
            };
            match TcpStream::from_std(stream) {
                Ok(stream) => return (stream, peer),
                Err(e) => tracing::warn!(error = %e, "taking over a connection failed"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The name of the thread that answered a request on a new connection to `addr`.
    async fn answering_thread(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: loops\r\nconnection: close\r\n\r\n")
            .await
            .expect("sends");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("reads");
        let (_, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        body.to_owned()
    }

    #[tokio::test]
    async fn connections_go_to_every_loop_in_turn_until_shutdown() {
        let other = EventLoop::start("other-loop".into()).expect("a loop");
        let router = Router::new().route(
            "/",
            get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("an address");
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let loops = vec![Handle::current(), other.handle()];
        let served = tokio::spawn(serve(listener, router, loops, async move {
            let _ = shutdown_rx.await;
        }));
        let mut threads = Vec::new();
        for _ in 0..4 {
            threads.push(answering_thread(addr).await);
        }
        let this = std::thread::current().name().unwrap_or("?").to_owned();
        let (first, second) = if threads[0] == "other-loop" {
            ("other-loop", this.as_str())
        } else {
            (this.as_str(), "other-loop")
        };
        assert_eq!(threads, [first, second, first, second]);
        assert_ne!(first, second);

        let _ = shutdown_tx.send(());
        served.await.expect("joins").expect("served");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the listener is closed after shutdown"
        );
        drop(other);
    }
}
