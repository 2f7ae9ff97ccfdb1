//! A scan as recorded: every frame a scanner sent, accepted or rejected with the reason.

use serde::{Deserialize, Serialize};

/// A scan as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRecord {
    pub scan_id: String,
    pub device: String,
    /// The bytes as sent, decoded lossily for display.
    pub code: String,
    pub parsed: Option<serde_json::Value>,
    /// The scanner's role: `station`, `prep` or `receiving` (records from before roles existed
    /// were all `station`).
    #[serde(default = "station_role")]
    pub role: String,
    /// `bump`, `stock` (added), `use`, `receive`, or `none` when rejected.
    pub action: String,
    pub accepted: bool,
    pub reason: String,
    pub order_id: Option<String>,
    pub station_id: Option<String>,
    /// The stock the scan added or used.
    pub stock_id: Option<String>,
    pub scanned_at_ms: i64,
}

fn station_role() -> String {
    "station".to_owned()
}
