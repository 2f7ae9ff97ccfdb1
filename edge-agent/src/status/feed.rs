//! What the kitchen feed has done: written by the feed task, read by `/readyz` and `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64};

/// What the feed has done, for `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct FeedStats {
    pub connected: AtomicBool,
    pub applied: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    pub gaps: AtomicU64,
}
