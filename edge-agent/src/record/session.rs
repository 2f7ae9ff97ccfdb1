//! A batch session: a batch a cook started on a batch item and, once completed, the units it
//! gave each order.

use serde::{Deserialize, Serialize};

/// A batch a cook started (and maybe completed) on a batch item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub station_id: String,
    pub item_id: String,
    pub item_name: String,
    pub quantity: u32,
    pub device: String,
    pub started_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    /// Units given to each order on completion, most urgent first.
    pub allocations: Vec<Allocation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub order_id: String,
    pub units: u32,
}
