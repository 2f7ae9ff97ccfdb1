//! The agent's one record contract: every kind of entry the agent logs, with its typed payload.
//! The event log, the SSE frames (`event:` is the kind, `data:` the payload), the sync outbox and
//! the rows pushed to PostgreSQL all map from [`Record`]; which kinds head office receives is
//! [`Record::is_synced`]. Each kind's name is written once, in the table below. Pure: no IO.

mod batch_item;
mod floor;
mod otter;
mod scan;
mod session;
mod stock;
mod ticket;

use serde::{Deserialize, Serialize};

pub use batch_item::{BatchItemView, RunningSession};
pub use floor::{
    AllergenAck, AllergenFlag, ItemUnits, LineDone, LineMark, Rush, allergen_flags,
    mentions_allergen,
};
pub use otter::{
    Acceptance, Availability, CANCEL_REASONS, CancelRequest, HandOff, OtterCall, PrepTime,
    StoreEntities,
};
pub use scan::ScanRecord;
pub use session::{Allocation, Session};
pub use stock::{Lot, Transfer};
pub use ticket::{Ticket, TicketLine};

/// Declares [`Record`] from one table: variant, payload, kind name (the serde tag, the event-log
/// kind and the SSE event name), and whether head office receives it.
macro_rules! records {
    ($( $(#[$doc:meta])* $variant:ident($payload:ty) = $kind:literal, synced = $synced:literal; )*) => {
        /// One entry of the event log, tagged by its kind.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", content = "data")]
        pub enum Record {
            $( $(#[$doc])* #[serde(rename = $kind)] $variant($payload), )*
        }

        impl Record {
            /// Every kind, in declaration order.
            pub const KINDS: &[&str] = &[$($kind),*];

            /// The kind: the event-log kind and the SSE event name.
            pub fn kind(&self) -> &'static str {
                match self { $( Record::$variant(_) => $kind, )* }
            }

            /// Whether head office receives it: it also goes to the sync outbox.
            pub fn is_synced(&self) -> bool {
                match self { $( Record::$variant(_) => $synced, )* }
            }

            /// The payload as one-line JSON (keys sorted, as the displays and PostgreSQL have
            /// always had them).
            pub fn data_json(&self) -> String {
                let value = match self { $( Record::$variant(payload) => serde_json::to_value(payload), )* };
                // Serializing these plain structs cannot fail (no maps with non-string keys).
                value.map(|value| value.to_string()).unwrap_or_default()
            }

            /// A logged record read back from its kind and payload.
            pub fn parse(kind: &str, data: &str) -> Result<Self, RecordError> {
                let parsed = match kind {
                    $( $kind => serde_json::from_str(data).map(Record::$variant), )*
                    _ => return Err(RecordError::UnknownKind(kind.to_owned())),
                };
                parsed.map_err(|error| RecordError::Payload {
                    kind: kind.to_owned(),
                    reason: error.to_string(),
                })
            }
        }
    };
}

records! {
    /// A new order reached the kitchen.
    OrderCreated(OrderChange) = "order.created", synced = true;
    /// A newer snapshot of an order changed its lines.
    OrderUpdated(OrderChange) = "order.updated", synced = true;
    OrderCancelled(OrderChange) = "order.cancelled", synced = true;
    /// The status moved without new lines (also a stale snapshot or an unknown order's status).
    OrderStatus(OrderChange) = "order.status", synced = true;
    OrderBumped(Bumps) = "order.bumped", synced = true;
    OrderRecalled(Bumps) = "order.recalled", synced = true;
    /// Every unit of the order is done at every station.
    OrderReady(Ready) = "order.ready", synced = true;
    BatchStarted(Session) = "batch.started", synced = true;
    BatchCompleted(Session) = "batch.completed", synced = true;
    /// A station's batch items moved (for the displays only).
    BatchUpdated(BatchUpdate) = "batch.updated", synced = false;
    ScanRecorded(ScanRecord) = "scan.recorded", synced = true;
    ScanRejected(ScanRecord) = "scan.rejected", synced = true;
    StockChanged(StockChange) = "stock.changed", synced = true;
    /// New reference data is in use (for the displays only).
    ReferenceUpdated(ReferenceUpdate) = "reference.updated", synced = false;
    /// The kitchen accepts the order on Otter with its prep time (docs/otter.md).
    OrderAccepted(Acceptance) = "order.accepted", synced = true;
    /// Expo gave Otter a new prep time.
    OrderPrepTime(PrepTime) = "order.prep_time", synced = true;
    /// Expo handed the order off (Otter's fulfill).
    OrderHandedOff(HandOff) = "order.handed_off", synced = true;
    /// A manager cancelled the order, or Expo rejected it, on Otter.
    OrderCancelRequested(CancelRequest) = "order.cancel_requested", synced = true;
    /// An item 86'd.
    ItemSuspended(Availability) = "item.suspended", synced = true;
    /// An 86'd item back on.
    ItemUnsuspended(Availability) = "item.unsuspended", synced = true;
    /// What became of a call to Otter (read back from PostgreSQL; for the displays only).
    OtterCallChanged(OtterCall) = "otter.call", synced = false;
    /// A cook acknowledged the order's allergen warning at a station (docs/floor.md).
    AllergenAcknowledged(AllergenAck) = "order.allergen_acknowledged", synced = true;
    /// Expo or a manager marked the order rush, or took the mark off.
    OrderRushed(Rush) = "order.rushed", synced = true;
    /// A cook tapped an order's line off at a station, or back on.
    LineTapped(LineDone) = "order.line_done", synced = true;
}

impl Record {
    /// The order it is about, if any (the event log's `order_id`).
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Record::OrderCreated(change)
            | Record::OrderUpdated(change)
            | Record::OrderCancelled(change)
            | Record::OrderStatus(change) => Some(&change.order_id),
            Record::OrderBumped(bumps) | Record::OrderRecalled(bumps) => Some(&bumps.order_id),
            Record::OrderReady(ready) => Some(&ready.order_id),
            Record::ScanRecorded(scan) | Record::ScanRejected(scan) => scan.order_id.as_deref(),
            Record::OrderAccepted(accepted) => Some(&accepted.order_id),
            Record::OrderPrepTime(prep) => Some(&prep.order_id),
            Record::OrderHandedOff(hand_off) => Some(&hand_off.order_id),
            Record::OrderCancelRequested(cancel) => Some(&cancel.order_id),
            Record::OtterCallChanged(call) => call.order_id.as_deref(),
            Record::AllergenAcknowledged(ack) => Some(&ack.order_id),
            Record::OrderRushed(rush) => Some(&rush.order_id),
            Record::LineTapped(line) => Some(&line.order_id),
            Record::BatchStarted(_)
            | Record::BatchCompleted(_)
            | Record::BatchUpdated(_)
            | Record::StockChanged(_)
            | Record::ReferenceUpdated(_)
            | Record::ItemSuspended(_)
            | Record::ItemUnsuspended(_) => None,
        }
    }

    /// A scan's record: `scan.recorded` when accepted, else `scan.rejected`.
    pub fn scan(scan: ScanRecord) -> Self {
        if scan.accepted {
            Record::ScanRecorded(scan)
        } else {
            Record::ScanRejected(scan)
        }
    }
}

/// A logged record that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("unknown record kind {0:?}")]
    UnknownKind(String),
    #[error("{kind} payload: {reason}")]
    Payload { kind: String, reason: String },
}

/// What applying an order event did to its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Updated,
    Cancelled,
    /// Status moved (confirmed, ready, handed off, ...) without new lines.
    Status,
    /// A snapshot not newer than the one held: recorded, lines untouched.
    Stale,
    /// A status for an order this kitchen never received: recorded only.
    UnknownOrder,
}

impl Change {
    /// The record an applied event logs.
    pub fn record(self, change: OrderChange) -> Record {
        match self {
            Change::Created => Record::OrderCreated(change),
            Change::Updated => Record::OrderUpdated(change),
            Change::Cancelled => Record::OrderCancelled(change),
            Change::Status | Change::Stale | Change::UnknownOrder => Record::OrderStatus(change),
        }
    }
}

/// An order event as applied: `order.created`, `order.updated`, `order.cancelled`,
/// `order.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderChange {
    pub event_id: String,
    /// Otter's event type (`orders.new_order`, ...).
    pub otter_event_type: String,
    pub order_id: String,
    pub store_id: String,
    /// Otter's status (`NEW_ORDER`, ...).
    pub status: String,
    /// The order's state in the kitchen (`open`, `closed`, `cancelled`, ...; `unknown`).
    pub state: String,
    pub change: Change,
    /// The ticket, for a created or updated order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Ticket>,
}

/// `order.bumped` / `order.recalled`: the stations where it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bumps {
    pub order_id: String,
    pub stations: Vec<String>,
    /// The paired device (or the scanner) that did it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// `order.ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub order_id: String,
    pub friendly_id: String,
}

/// `batch.updated`: a station's batch items, most urgent first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchUpdate {
    pub station_id: String,
    pub items: Vec<BatchItemView>,
}

/// What happened to a lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockChangeKind {
    Added,
    Used,
    Discarded,
}

impl StockChangeKind {
    /// As the cloud's stock movements name it (its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            StockChangeKind::Added => "added",
            StockChangeKind::Used => "used",
            StockChangeKind::Discarded => "discarded",
        }
    }
}

/// `stock.changed`: a lot added, used or discarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChange {
    pub change: StockChangeKind,
    pub item_id: String,
    pub lot: Lot,
    pub transfer: Option<Transfer>,
    /// The scan that moved it (none for a discard from the LAN).
    pub scan_id: Option<String>,
}

/// `reference.updated`: where the new reference data came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceUpdate {
    pub source: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names_and_payloads() {
        let records = [
            Record::OrderReady(Ready {
                order_id: "o1".into(),
                friendly_id: "#12".into(),
            }),
            Record::OrderBumped(Bumps {
                order_id: "o1".into(),
                stations: vec!["fry".into()],
                device: Some("Fry tablet".into()),
            }),
            Record::ReferenceUpdated(ReferenceUpdate {
                source: "postgresql version 3".into(),
            }),
        ];
        let expected = [
            (
                "order.ready",
                r##"{"friendly_id":"#12","order_id":"o1"}"##,
                true,
            ),
            (
                "order.bumped",
                r#"{"device":"Fry tablet","order_id":"o1","stations":["fry"]}"#,
                true,
            ),
            (
                "reference.updated",
                r#"{"source":"postgresql version 3"}"#,
                false,
            ),
        ];
        for (record, (kind, data, synced)) in records.iter().zip(expected) {
            assert_eq!(
                (
                    record.kind(),
                    record.data_json().as_str(),
                    record.is_synced()
                ),
                (kind, data, synced)
            );
            assert_eq!(Record::parse(kind, data).as_ref(), Ok(record));
        }
        assert_eq!(
            serde_json::to_value(&records[0]).expect("serializes"),
            serde_json::json!({"kind": "order.ready", "data": {"order_id": "o1", "friendly_id": "#12"}})
        );
    }

    #[test]
    fn unknown_kinds_and_bad_payloads_are_refused() {
        assert_eq!(
            Record::parse("order.eaten", "{}"),
            Err(RecordError::UnknownKind("order.eaten".into()))
        );
        assert!(matches!(
            Record::parse("order.ready", r#"{"order_id":"o1"}"#),
            Err(RecordError::Payload { kind, .. }) if kind == "order.ready"
        ));
    }
}
