//! The live event streams open to the tablets: counted by HTTP, read by `/metrics` and the
//! fleet telemetry (`tablets`).

use std::sync::atomic::{AtomicI64, AtomicU64};

/// Counters of the live streams.
#[derive(Debug, Default)]
pub struct StreamStats {
    pub clients: AtomicI64,
    pub lagging_disconnects: AtomicU64,
    /// Streams refused at the caps.
    pub refused: AtomicU64,
}
