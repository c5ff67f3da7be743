//! Answers to journal writes, delivered to the event loop that asked with one wake-up per loop
//! per commit.
//!
//! A commit answers every write of its batch. Sent one by one from the writer thread, each
//! answer wakes its saga's task from another thread: tokio then writes the loop's eventfd (a
//! system call per answer), and a loop woken by the first answer of a batch often parks again
//! before the next arrives, to be woken once more. On this kind of machine a wake-up across
//! CPUs costs 16–20 µs of CPU (BENCHMARKS.md). So a write submitted from a current-thread
//! runtime (an event loop) carries a `Route` to a small task on that runtime, the pump: the
//! writer hands it all of the batch's answers for that loop at once and wakes it once, and the
//! pump answers them on the loop, where waking a task is a push onto its run queue.
//!
//! Runtimes come and go on one thread (tests make one per test): a route is kept per runtime
//! id, and a pump whose runtime has shut down is marked closed, so that what still reaches it
//! is answered directly and the next write on that thread makes a new one.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::Notify;

use super::write::{Request, Written, answer};

/// An answer waiting for its loop's pump.
type Answer = (Request, Written);

/// Where a write's answer goes: the pump of the runtime it was submitted from.
#[derive(Clone)]
pub(super) struct Route(Arc<Pump>);

struct Pump {
    runtime: tokio::runtime::Id,
    /// Answers handed over and not yet given out; `None` once the pump's task has stopped.
    waiting: Mutex<Option<Vec<Answer>>>,
    ready: Notify,
    /// How many times the pump was handed answers (one per commit that had any for it).
    #[cfg(test)]
    handovers: std::sync::atomic::AtomicU64,
}

thread_local! {
    /// This thread's pumps, one per current-thread runtime that wrote from it.
    static PUMPS: RefCell<Vec<Arc<Pump>>> = const { RefCell::new(Vec::new()) };
}

impl Route {
    /// The route for a write submitted from here: `None` outside a current-thread runtime (a
    /// multi-thread runtime's task may run on any of its workers; its answer is sent directly).
    pub(super) fn here() -> Option<Route> {
        let handle = Handle::try_current().ok()?;
        if handle.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return None;
        }
        let runtime = handle.id();
        PUMPS.with(|pumps| {
            let mut pumps = pumps.borrow_mut();
            if let Some(pump) = pumps.iter().find(|p| p.runtime == runtime && p.open()) {
                return Some(Route(Arc::clone(pump)));
            }
            pumps.retain(|p| p.open());
            let pump = Arc::new(Pump {
                runtime,
                waiting: Mutex::new(Some(Vec::new())),
                ready: Notify::new(),
                #[cfg(test)]
                handovers: std::sync::atomic::AtomicU64::new(0),
            });
            handle.spawn(run(Closing(Arc::clone(&pump))));
            pumps.push(Arc::clone(&pump));
            Some(Route(pump))
        })
    }

    #[cfg(test)]
    fn handovers(&self) -> u64 {
        self.0.handovers.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Pump {
    fn open(&self) -> bool {
        self.waiting
            .lock()
            .map(|waiting| waiting.is_some())
            .unwrap_or(false)
    }
}

/// Answers a committed batch: what has a route goes to its pump, all of a pump's answers at
/// once and with one wake-up; the rest (and whatever finds its pump closed) is answered here.
pub(super) fn deliver(answers: impl IntoIterator<Item = (Answer, Option<Route>)>) {
    // A batch comes from at most a few loops: a short list beats a map.
    let mut routed: Vec<(Route, Vec<Answer>)> = Vec::new();
    for (item, route) in answers {
        let Some(route) = route else {
            answer(item.0, item.1);
            continue;
        };
        match routed.iter_mut().find(|(r, _)| Arc::ptr_eq(&r.0, &route.0)) {
            Some((_, items)) => items.push(item),
            None => routed.push((route, vec![item])),
        }
    }
    for (route, items) in routed {
        let handed = match route.0.waiting.lock() {
            Ok(mut waiting) => match waiting.as_mut() {
                Some(queue) => {
                    queue.extend(items);
                    None
                }
                None => Some(items),
            },
            Err(_) => Some(items),
        };
        match handed {
            None => {
                #[cfg(test)]
                route
                    .0
                    .handovers
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                route.0.ready.notify_one();
            }
            Some(items) => {
                for (request, written) in items {
                    answer(request, written);
                }
            }
        }
    }
}

/// Closes a pump when its task is dropped (its runtime shut down), answering what is left.
/// The task owns it from the moment it is spawned, so that a task dropped before it was ever
/// polled closes its pump too.
struct Closing(Arc<Pump>);

impl Drop for Closing {
    fn drop(&mut self) {
        let left = match self.0.waiting.lock() {
            Ok(mut waiting) => waiting.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        for (request, written) in left.into_iter().flatten() {
            answer(request, written);
        }
    }
}

/// The pump's task: gives out what the writer handed over, on its own loop.
async fn run(closing: Closing) {
    let pump = &closing.0;
    let mut spare = Vec::new();
    loop {
        pump.ready.notified().await;
        match pump.waiting.lock() {
            Ok(mut waiting) => {
                if let Some(queue) = waiting.as_mut() {
                    std::mem::swap(queue, &mut spare);
                }
            }
            Err(_) => return,
        }
        for (request, written) in spare.drain(..) {
            answer(request, written);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    fn purge_request() -> (Request, oneshot::Receiver<Result<u64, crate::Error>>) {
        let (reply, answer) = oneshot::channel();
        let request = Request::Purge {
            before_ms: 0,
            limit: 1,
            reply,
        };
        (request, answer)
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn one_commits_answers_for_a_loop_reach_it_in_one_handover() {
        current_thread().block_on(async {
            let route = Route::here().expect("a current-thread runtime has a route");
            let (requests, answers): (Vec<_>, Vec<_>) = (0..5).map(|_| purge_request()).unzip();
            let writer = std::thread::spawn({
                let route = route.clone();
                move || {
                    deliver(requests.into_iter().enumerate().map(|(i, request)| {
                        ((request, Written::Purge(Ok(i as u64))), Some(route.clone()))
                    }));
                }
            });
            for (i, answer) in answers.into_iter().enumerate() {
                assert_eq!(answer.await.expect("answered").expect("ok"), i as u64);
            }
            writer.join().expect("the writer thread");
            assert_eq!(route.handovers(), 1);
        });
    }

    #[test]
    fn each_runtime_on_a_thread_gets_its_own_pump() {
        let first = current_thread();
        let second = current_thread();
        let a = first.block_on(async { Route::here().expect("a route") });
        let b = second.block_on(async { Route::here().expect("a route") });
        assert!(!Arc::ptr_eq(&a.0, &b.0));
        // An answer routed to the second runtime arrives while only it runs.
        let (request, answer) = purge_request();
        deliver([((request, Written::Purge(Ok(7))), Some(b.clone()))]);
        let got = second.block_on(answer).expect("answered").expect("ok");
        assert_eq!(got, 7);
        let again = first.block_on(async { Route::here().expect("a route") });
        assert!(Arc::ptr_eq(&a.0, &again.0));
    }

    #[test]
    fn a_pump_whose_runtime_ended_answers_directly_and_is_replaced() {
        let old = current_thread().block_on(async { Route::here().expect("a route") });
        // The runtime has been dropped: its pump is closed.
        assert!(!old.0.open());
        let (request, mut answer) = purge_request();
        deliver([((request, Written::Purge(Ok(3))), Some(old.clone()))]);
        assert_eq!(answer.try_recv().expect("answered at once").expect("ok"), 3);
        let new = current_thread().block_on(async { Route::here().expect("a route") });
        assert!(!Arc::ptr_eq(&old.0, &new.0));
        assert!(
            Route::here().is_none(),
            "outside a runtime, answers go directly"
        );
    }

    #[test]
    fn a_multi_thread_runtime_is_answered_directly() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("a runtime");
        assert!(runtime.block_on(async { Route::here() }).is_none());
    }
}
