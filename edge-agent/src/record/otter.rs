//! What the kitchen tells Otter: the intents the relay turns into Otter API calls (accept, a new
//! prep time, hand-off, cancel, 86 and back), and the state of those calls read back from
//! PostgreSQL for the displays. The JSON shapes are the contract with the relay
//! (docs/otter.md): keys are only ever added.

use serde::{Deserialize, Serialize};

/// `order.accepted`: the kitchen confirms the order on Otter with its prep-time estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    pub order_id: String,
    pub store_id: String,
    pub prep_minutes: u32,
    /// Accepted by the box itself (the store accepts automatically), not by Expo.
    pub auto: bool,
    /// The paired device that accepted it (none when automatic).
    pub device: Option<String>,
}

/// `order.prep_time`: Expo changed the prep time Otter was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepTime {
    pub order_id: String,
    pub store_id: String,
    pub prep_minutes: u32,
    pub device: String,
}

/// `order.handed_off`: Expo gave the order to the courier or the guest (Otter's `fulfill`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandOff {
    pub order_id: String,
    pub store_id: String,
    pub device: String,
}

/// `order.cancel_requested`: a manager cancelled the order, or Expo rejected it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub order_id: String,
    pub store_id: String,
    /// One of Otter's `cancellationReason` values ([`CANCEL_REASONS`]).
    pub reason: String,
    pub note: Option<String>,
    pub device: String,
}

/// The Otter menu entities of an item at one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEntities {
    pub store_id: String,
    pub entity_ids: Vec<String>,
}

/// `item.suspended` (86) and `item.unsuspended` (back on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub suspension_id: String,
    pub item_id: String,
    pub item_name: String,
    /// Until when it is 86'd (Unix ms); none: until someone puts it back. Only on
    /// `item.suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    pub note: String,
    pub device: String,
    /// The staff member whose PIN allowed it (kitchens that use PINs).
    pub staff: Option<String>,
    /// Where it goes on Otter: the item's entities per store (none: this kitchen's screens only).
    pub entities: Vec<StoreEntities>,
}

/// `otter.call`: what became of one call the relay made (or will make) to Otter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtterCall {
    /// The kitchen record that asked for it.
    pub record_id: String,
    pub store_id: String,
    /// `confirm`, `ready`, `fulfill`, `cancel`, `prep_time`, `suspend` or `unsuspend`.
    pub kind: String,
    pub order_id: Option<String>,
    pub item_id: Option<String>,
    /// `pending`, `sent`, `accepted` or `failed`.
    pub state: String,
    /// For a cook: what Otter answered, why it failed.
    pub detail: String,
}

/// Otter's `cancellationReason` values (Manager order API, `cancel`).
pub const CANCEL_REASONS: &[&str] = &[
    "REASON_UNKNOWN",
    "DUPLICATE_ORDER",
    "UNAVAILABLE_ITEM",
    "FRAUDULENT_EATER",
    "RESTAURANT_INTERNAL_ISSUE",
    "KITCHEN_CLOSED",
    "CUSTOMER_CALLED_TO_CANCEL",
    "RESTAURANT_TOO_BUSY",
    "CANNOT_COMPLETE_CUSTOMER_REQUEST",
    "UNACCEPTED_ORDER",
    "RESTAURANT_CANCELED",
    "AUTOMATICALLY_CANCELED",
    "LATE_DELIVERY",
    "COURIER_NOT_FOUND",
    "CUSTOMER_NOT_FOUND",
    "UNABLE_TO_DELIVER",
    "ALL_ITEMS_OUT_OF_STOCK",
    "ALL_ITEMS_EXPIRED",
    "ALL_ITEMS_DAMAGED",
    "LABOR_UNAVAILABLE",
    "REASON_OTHER",
];
