//! Stock records: a lot (a labelled container, a received product unit or a transfer unit) and a
//! transfer unit received at the back door.

use serde::{Deserialize, Serialize};

/// A unit of stock: a labelled container, a received product unit or a transfer unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub stock_id: String,
    pub item_id: String,
    /// `prep`, `product` or `transfer`.
    pub source: String,
    /// What makes a second scan of it a repeat; `None`: each scan is new stock.
    pub label: Option<String>,
    pub quantity: u32,
    pub lot: Option<String>,
    pub prepared_on: Option<chrono::NaiveDate>,
    /// The last day it may be used; `None`: keeps.
    pub use_by: Option<chrono::NaiveDate>,
    pub added_at_ms: i64,
    pub added_by: String,
    pub closed_at_ms: Option<i64>,
    /// `used` or `discarded` once closed.
    pub closed_as: Option<String>,
    pub closed_by: Option<String>,
}

/// A transfer unit received at the back door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub sscc: String,
    pub scan_id: String,
    pub device: String,
    pub received_at_ms: i64,
    pub gtin: Option<String>,
    pub item_id: Option<String>,
    pub count: Option<u32>,
    pub lot: Option<String>,
    pub use_by: Option<chrono::NaiveDate>,
    pub stock_id: Option<String>,
}
