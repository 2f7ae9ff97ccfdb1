//! A batch item as the displays show it: the API's (with the contributing order ids) and
//! `batch.updated`'s (with their count only, so an event stays small however many orders are
//! open), with the batch sessions running on it.

use kitchen_proto::reference::Reference;
use serde::{Deserialize, Serialize};

use super::Session;
use crate::batch::BatchItem;

/// A batch item on a display. Fields are in alphabetical order: serialized directly or through
/// a `serde_json::Value`, the JSON is the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItemView {
    /// RFC 3339, seconds.
    pub due_at: Option<String>,
    pub due_at_ms: i64,
    pub item_id: String,
    pub item_name: String,
    pub order_count: usize,
    /// Only in the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_ids: Option<Vec<String>>,
    pub prep_seconds: u32,
    pub quantity: u32,
    /// The batch sessions running on it.
    pub sessions: Vec<RunningSession>,
    pub station_id: String,
    pub station_name: String,
}

/// A batch session running on a batch item (fields in alphabetical order, as above).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningSession {
    pub device: String,
    pub quantity: u32,
    pub session_id: String,
    pub started_at_ms: i64,
}

impl BatchItemView {
    /// One batch item with the sessions (of all open ones) running on it. `with_ids` lists the
    /// contributing orders; without it only `order_count` is given.
    pub fn new(
        reference: &Reference,
        item: &BatchItem,
        order_count: usize,
        with_ids: bool,
        sessions: &[Session],
    ) -> Self {
        let sessions = sessions
            .iter()
            .filter(|s| s.station_id == item.station_id && s.item_id == item.item_id)
            .map(|s| RunningSession {
                device: s.device.clone(),
                quantity: s.quantity,
                session_id: s.session_id.clone(),
                started_at_ms: s.started_at_ms,
            })
            .collect();
        Self {
            due_at: chrono::DateTime::from_timestamp_millis(item.due_at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            due_at_ms: item.due_at_ms,
            item_id: item.item_id.clone(),
            item_name: item.item_name.clone(),
            order_count,
            order_ids: with_ids.then(|| item.order_ids.clone()),
            prep_seconds: item.prep_seconds,
            quantity: item.quantity,
            sessions,
            station_id: item.station_id.clone(),
            station_name: reference.station_name(&item.station_id).to_owned(),
        }
    }

    /// Batch items as the API shows them (with `order_ids`).
    pub fn with_order_ids(
        reference: &Reference,
        items: &[BatchItem],
        sessions: &[Session],
    ) -> Vec<Self> {
        items
            .iter()
            .map(|item| Self::new(reference, item, item.order_ids.len(), true, sessions))
            .collect()
    }
}
