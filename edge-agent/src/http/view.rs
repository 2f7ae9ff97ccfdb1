//! The display state as of one event-log sequence (the SSE `snapshot` and the REST reads),
//! with a short-lived cache shared by tablets reconnecting together.

use std::{sync::Arc, time::Duration};

use kitchen_daemon::clock::now_ms;
use serde_json::{Value, json};

use crate::{
    batch,
    record::BatchItemView,
    store::{StateSnapshot, Store, StoreError},
};

use super::AppState;

/// The display state as of one event-log sequence, for `station` or all stations; serialized
/// straight from these structs (a snapshot of hundreds of tickets as a `Value` tree costs
/// several times its text).
#[derive(serde::Serialize)]
pub(super) struct View {
    #[serde(skip)]
    pub(super) seq: i64,
    pub(super) batches: Vec<BatchItemView>,
    pub(super) orders: Vec<crate::record::Ticket>,
    pub(super) upcoming: Vec<Value>,
}

/// The last `snapshot` event data made, shared by tablets connecting at the same log position
/// (after a Wi-Fi blip they all reconnect at once).
#[derive(Default)]
pub struct SnapshotCache {
    last: tokio::sync::Mutex<Option<CachedSnapshot>>,
}

pub(super) struct CachedSnapshot {
    seq: i64,
    station: Option<String>,
    made: std::time::Instant,
    data: Arc<str>,
}

/// How long a snapshot may be reused (the scheduled-order horizon moves with the clock).
const SNAPSHOT_REUSE: Duration = Duration::from_secs(2);

/// The `snapshot` data for `station` and its log sequence.
pub(super) async fn snapshot(
    state: &AppState,
    station: Option<&str>,
) -> Result<(i64, Arc<str>), StoreError> {
    let mut last = state.snapshots.last.lock().await;
    let newest = state.readers.with(Store::last_event_seq).await?;
    if let Some(cached) = last.as_ref()
        && cached.seq == newest
        && cached.station.as_deref() == station
        && cached.made.elapsed() < SNAPSHOT_REUSE
    {
        return Ok((cached.seq, cached.data.clone()));
    }
    let view = view(state, station).await?;
    let data: Arc<str> = serde_json::to_string(&view).unwrap_or_default().into();
    *last = Some(CachedSnapshot {
        seq: view.seq,
        station: station.map(str::to_owned),
        made: std::time::Instant::now(),
        data: data.clone(),
    });
    Ok((view.seq, data))
}

pub(super) async fn view(state: &AppState, station: Option<&str>) -> Result<View, StoreError> {
    let StateSnapshot {
        seq,
        orders,
        tickets,
        open_sessions,
    } = state.readers.with(Store::state_snapshot).await?;
    let reference = state.live.reference.get();
    let board = batch::board(&orders, &reference, now_ms(), state.horizon_ms);
    let items: Vec<batch::BatchItem> = board
        .items
        .into_iter()
        .filter(|item| station.is_none_or(|s| s == item.station_id))
        .collect();
    let batches = BatchItemView::with_order_ids(&reference, &items, &open_sessions);
    let orders: std::collections::HashMap<&str, &batch::Order> =
        orders.iter().map(|o| (o.order_id.as_str(), o)).collect();
    let orders: Vec<crate::record::Ticket> = tickets
        .into_iter()
        .filter_map(|mut ticket| {
            let order = orders.get(ticket.order_id.as_str())?;
            ticket.annotate(order, &reference);
            station
                .is_none_or(|s| ticket.stations.iter().any(|t| t == s))
                .then_some(ticket)
        })
        .collect();
    let upcoming = board
        .upcoming
        .iter()
        .map(|u| json!({"order_id": u.order_id, "fire_at_ms": u.fire_at_ms}))
        .collect();
    Ok(View {
        seq,
        batches,
        orders,
        upcoming,
    })
}
