//! What the sync with PostgreSQL is doing: written by the sync task, read by `/readyz`,
//! `/api/status`, `/metrics` and the displays.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
};

use kitchen_daemon::sync::LockExt;

/// What `/readyz`, `/metrics` and the displays show of the sync.
#[derive(Debug, Default)]
pub struct SyncStats {
    pub configured: AtomicBool,
    pub connected: AtomicBool,
    pub pushed: AtomicU64,
    pub reconciled: AtomicU64,
    /// The reference version in use from PostgreSQL (0: none yet).
    pub reference_version: AtomicI64,
    pub last_error: Mutex<Option<String>>,
    /// PostgreSQL has no `kitchen.otter_calls` (said once).
    pub calls_unavailable: AtomicBool,
    /// The event-log sequence up to which every synced record is in PostgreSQL: the push
    /// cursor. Loaded from the store at start, moved by the sync after each commit, written
    /// back to the store only every few minutes; what the backlog counts from.
    pub pushed_through: AtomicI64,
    /// A new card's recovery is still to run: set at start when the store is new and a sync
    /// is set up, cleared when it ran (docs/sync.md, "A new card"). The box is not ready
    /// until then.
    pub recovery_pending: AtomicBool,
    /// When the recovery ran (ms; 0: not in this run) and the orders it put back.
    pub recovered_at_ms: AtomicI64,
    pub recovered_orders: AtomicU64,
}

impl SyncStats {
    /// The push cursor (see `pushed_through`).
    pub fn pushed(&self) -> i64 {
        self.pushed_through.load(Ordering::Relaxed)
    }

    /// The recovery as `/readyz` and `/api/status` show it: `pending`, `done` (in this run)
    /// or `none`.
    pub fn recovery_state(&self) -> &'static str {
        if self.recovery_pending.load(Ordering::Relaxed) {
            "pending"
        } else if self.recovered_at_ms.load(Ordering::Relaxed) > 0 {
            "done"
        } else {
            "none"
        }
    }

    /// Whether a pending recovery keeps the box unready: while it is being done, not while
    /// PostgreSQL cannot be reached (the kitchen works without the cloud; the sync keeps
    /// trying and `/readyz` says the recovery is pending).
    pub fn recovery_blocks_ready(&self) -> bool {
        self.recovery_pending.load(Ordering::Relaxed)
            && (self.connected.load(Ordering::Relaxed)
                || self.last_error.lock_or_recover().is_none())
    }

    pub fn fail(&self, error: &str) -> bool {
        let was = self.connected.swap(false, Ordering::Relaxed);
        *self.last_error.lock_or_recover() = Some(error.to_owned());
        was
    }
}
