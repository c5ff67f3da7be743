//! A shard lease as the engine holds it: the fence every write carries, and how long this
//! process may still act under it by its own monotonic clock.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sagaflow_store::Fence;
use tokio::sync::Notify;

/// Milliseconds on this process's monotonic clock (it keeps counting while the process is
/// paused, which is the point: a paused process must find its leases lapsed when it wakes).
pub(crate) fn mono_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
}

pub(crate) struct Lease {
    /// `None` on a store one process owns: nothing to fence.
    pub fence: Option<Fence>,
    /// Until when (`mono_ms`) calls may be sent under this lease.
    valid_until_ms: AtomicU64,
    revoked: AtomicBool,
    revoked_notify: Notify,
}

impl Lease {
    /// The standing ownership of the embedded store: never lapses.
    pub(crate) fn standing() -> Lease {
        Lease {
            fence: None,
            valid_until_ms: AtomicU64::new(u64::MAX),
            revoked: AtomicBool::new(false),
            revoked_notify: Notify::new(),
        }
    }

    pub(crate) fn granted(fence: Fence, valid_until_ms: u64) -> Lease {
        Lease {
            fence: Some(fence),
            valid_until_ms: AtomicU64::new(valid_until_ms),
            revoked: AtomicBool::new(false),
            revoked_notify: Notify::new(),
        }
    }

    pub(crate) fn shard(&self) -> u32 {
        self.fence.map_or(0, |f| f.shard)
    }

    /// Whether this process may still act for the shard: not revoked, and its renewed time
    /// (counted from before the renewal was sent, minus a margin) not past.
    pub(crate) fn is_valid(&self) -> bool {
        !self.revoked.load(Ordering::Acquire)
            && mono_ms() < self.valid_until_ms.load(Ordering::Acquire)
    }

    pub(crate) fn extend(&self, valid_until_ms: u64) {
        self.valid_until_ms.store(valid_until_ms, Ordering::Release);
    }

    /// Stops every saga driven under this lease.
    pub(crate) fn revoke(&self) {
        self.revoked.store(true, Ordering::Release);
        self.revoked_notify.notify_waiters();
    }

    pub(crate) fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    /// Resolves once the lease is revoked.
    pub(crate) async fn revoked(&self) {
        loop {
            let notified = self.revoked_notify.notified();
            if self.is_revoked() {
                return;
            }
            notified.await;
        }
    }
}

/// How long before its database-side expiry a lease stops being used here: covers the time
/// the renewal took to land and some clock-rate difference.
pub(crate) fn safety_margin(ttl: Duration) -> Duration {
    ttl / 5
}
