//! What a batch write works with, shared by the decisions (`write.rs`) and the column arrays
//! (`rows.rs`): the events coming in, what storing each did, and the orders as the batch moves
//! them. Types only, so `rows` depends on it and not on `write`.

use chrono::{DateTime, Utc};

use crate::otter::{OrderStatus, WebhookEvent};

/// An event to store: parsed, plus the exact body and when it arrived.
#[derive(Debug)]
pub struct Incoming {
    pub event: WebhookEvent,
    pub raw: String,
    pub received_at: DateTime<Utc>,
}

/// What storing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New; changed an order and is on its way to the kitchens.
    Applied,
    /// New, but an order snapshot older than (or as old as) the one held: stored, not applied.
    Stale,
    /// New; not a kitchen event (ping, menus, ...) or no store to route to: stored, fanned out raw.
    Stored,
    /// Seen before: nothing changed.
    Duplicate,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Stale => "stale",
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
        }
    }
}

/// An order as this batch sees it: what the database held, moved along by the batch's events.
#[derive(Default)]
pub(super) struct OrderState {
    pub exists: bool,
    pub snapshot_time: Option<DateTime<Utc>>,
    pub status: Option<OrderStatus>,
    pub status_time: Option<DateTime<Utc>>,
    pub cancellation_reason: Option<String>,
    /// Index into the batch of the snapshot this batch applies (the newest one).
    pub new_snapshot: Option<usize>,
    pub status_changed: bool,
}

/// A status event as a row of the order's status history.
pub(super) struct StatusChange {
    /// Index into the batch of the event that made the change.
    pub index: usize,
    pub order_id: String,
    pub status: OrderStatus,
    pub cancellation_reason: Option<String>,
}
