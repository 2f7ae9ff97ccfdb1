//! The reference data in use and where it came from: set at start and by the sync, read by
//! every adapter.

use std::sync::{Arc, Mutex};

use kitchen_daemon::sync::{LockExt, RwLockExt};
use kitchen_proto::reference::Reference;

/// The reference data in use and where it came from. Readers take the current `Arc`; the sync
/// swaps in a new version from PostgreSQL.
#[derive(Debug)]
pub struct ReferenceCell {
    current: std::sync::RwLock<(Arc<Reference>, ReferenceStatus)>,
    /// Why the newest version in PostgreSQL was not taken, if it was not.
    refused: Mutex<Option<String>>,
}

impl ReferenceCell {
    pub fn new(reference: Arc<Reference>, status: ReferenceStatus) -> Self {
        Self {
            current: std::sync::RwLock::new((reference, status)),
            refused: Mutex::new(None),
        }
    }

    pub fn get(&self) -> Arc<Reference> {
        self.current.read_or_recover().0.clone()
    }

    pub fn status(&self) -> ReferenceStatus {
        self.current.read_or_recover().1.clone()
    }

    pub fn set(&self, reference: Arc<Reference>, status: ReferenceStatus) {
        *self.current.write_or_recover() = (reference, status);
        *self.refused.lock_or_recover() = None;
    }

    /// A newer version was refused: the current data stays, and the status says why.
    pub fn refuse_update(&self, reason: String) {
        *self.refused.lock_or_recover() = Some(reason);
    }

    /// Why the newest version in PostgreSQL was not taken, if it was not.
    pub fn refused(&self) -> Option<String> {
        self.refused.lock_or_recover().clone()
    }

    pub fn describe(&self) -> String {
        let status = self.status().describe();
        match &*self.refused.lock_or_recover() {
            Some(reason) => format!("{status}; newer data in postgresql refused: {reason}"),
            None => status,
        }
    }

    pub fn usable(&self) -> bool {
        self.status().usable()
    }
}

/// Where the reference data in use came from.
#[derive(Debug, Clone)]
pub enum ReferenceStatus {
    /// Pulled from PostgreSQL (and cached).
    Synced { version: i64, at_ms: i64 },
    /// From `REFERENCE_FILE`, now also cached.
    Loaded,
    /// No file configured: the copy cached at `at_ms`.
    Cached { at_ms: i64 },
    /// The file was refused; the cached copy is used if there is one, else none.
    Refused {
        reason: String,
        cached_at_ms: Option<i64>,
    },
    /// No file and nothing cached: every line is `unassigned`.
    None,
}

impl ReferenceStatus {
    /// As `/readyz` and `/api/status` show it.
    pub fn describe(&self) -> String {
        let at = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        match self {
            ReferenceStatus::Synced { version, at_ms } => {
                format!("postgresql version {version} since {}", at(*at_ms))
            }
            ReferenceStatus::Loaded => "loaded".into(),
            ReferenceStatus::Cached { at_ms } => format!("cached {}", at(*at_ms)),
            ReferenceStatus::Refused {
                reason,
                cached_at_ms: Some(at_ms),
            } => format!("refused: {reason}; using the copy cached {}", at(*at_ms)),
            ReferenceStatus::Refused {
                reason,
                cached_at_ms: None,
            } => format!("invalid: {reason}"),
            ReferenceStatus::None => "none".into(),
        }
    }

    /// Whether the kitchen has menu data to count by.
    pub fn usable(&self) -> bool {
        !matches!(
            self,
            ReferenceStatus::Refused {
                cached_at_ms: None,
                ..
            }
        )
    }
}
