//! The agent's LAN HTTP endpoints: health, readiness and the batch items of each station.

use std::sync::{Arc, Mutex, atomic::Ordering};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::json;

use crate::{batch, feed::FeedStats, reference::Reference, store::Store};

/// How far ahead a scheduled order's fire time may be before it is counted.
const SCHEDULE_HORIZON_MS: i64 = 20 * 60 * 1000;

#[derive(Clone)]
pub struct AppState {
    /// A read connection to the store (the writer thread has its own).
    pub reader: Arc<Mutex<Store>>,
    pub reference: Arc<Reference>,
    pub feed: Arc<FeedStats>,
    pub provisioned: bool,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/batches", get(batches))
        .with_state(state)
}

fn internal(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "store read failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "internal error"})),
    )
        .into_response()
}

/// Ready when the store answers and the kitchen feed is connected; lists sequence gaps.
async fn readyz(State(state): State<AppState>) -> Response {
    let gaps = {
        let reader = state.reader.lock().unwrap_or_else(|e| e.into_inner());
        reader.sequence_gaps()
    };
    let gaps = match gaps {
        Ok(gaps) => gaps,
        Err(error) => return internal(error),
    };
    let feed = if !state.provisioned {
        "not provisioned"
    } else if state.feed.connected.load(Ordering::Relaxed) {
        "connected"
    } else {
        "disconnected"
    };
    let ready = feed == "connected";
    let body = json!({
        "ready": ready,
        "store": "up",
        "feed": feed,
        "sequence_gaps": gaps
            .iter()
            .map(|g| json!({"store_id": g.store_id, "from": g.from, "to": g.to}))
            .collect::<Vec<_>>(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

#[derive(Deserialize)]
struct BatchQuery {
    station: Option<String>,
}

/// The batch items of every station, or of `?station=<id>`.
async fn batches(State(state): State<AppState>, Query(query): Query<BatchQuery>) -> Response {
    let orders = {
        let reader = state.reader.lock().unwrap_or_else(|e| e.into_inner());
        reader.open_orders()
    };
    let orders = match orders {
        Ok(orders) => orders,
        Err(error) => return internal(error),
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let board = batch::board(&orders, &state.reference, now_ms, SCHEDULE_HORIZON_MS);
    let items: Vec<serde_json::Value> = board
        .items
        .iter()
        .filter(|item| query.station.as_ref().is_none_or(|s| *s == item.station_id))
        .map(|item| {
            let station_name = state
                .reference
                .station(&item.station_id)
                .map_or(item.station_id.as_str(), |s| s.name.as_str());
            json!({
                "station_id": item.station_id,
                "station_name": station_name,
                "item_id": item.item_id,
                "item_name": item.item_name,
                "quantity": item.quantity,
                "prep_seconds": item.prep_seconds,
                "due_at": chrono::DateTime::from_timestamp_millis(item.due_at_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "order_ids": item.order_ids,
            })
        })
        .collect();
    Json(json!({ "items": items })).into_response()
}
