//! The agent's LAN HTTP endpoints: health, readiness, metrics, the station display, the REST
//! API of stations, tickets, batch items and batch sessions, and the live event stream
//! (Server-Sent Events). docs/agent.md lists them all.

use std::sync::Arc;

use axum::{
    Json, Router,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::{
    status::Live,
    store::{LoggedEvent, Readers},
    writer::StoreWriter,
};
use kitchen_proto::reference::UNASSIGNED_STATION;

mod api;
mod events;
mod floor;
mod guard;
mod health;
mod metrics;
mod otter;
mod pairing;
mod prep;
mod prep_reports;
mod print;
mod reports;
mod view;

pub use guard::Access;

/// Largest request body accepted (JSON commands are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub use view::SnapshotCache;

#[derive(Clone)]
pub struct AppState {
    pub readers: Arc<Readers>,
    /// The live state the adapters share (reference data, feed, sync, scanners, streams, MQTT).
    pub live: Live,
    /// Log entries as the writer commits them.
    pub events: broadcast::Sender<Arc<LoggedEvent>>,
    /// Cancelled on shutdown: open event streams end with it.
    pub token: CancellationToken,
    pub writer: StoreWriter,
    pub horizon_ms: i64,
    pub snapshots: Arc<SnapshotCache>,
    /// Host names, paired-device checks, limiters and stream caps (`guard`).
    pub access: Arc<Access>,
    /// The server loop's connection counters, for `/metrics`.
    pub connections: Arc<kitchen_daemon::serve::ServeStats>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/", get(display))
        .route("/api/status", get(health::status))
        .route("/api/stations", get(api::stations))
        .route("/api/orders", get(api::orders))
        .route("/api/batches", get(api::batches))
        .route(
            "/api/batches/{station_id}/{item_id}/start",
            post(api::start_batch),
        )
        .route("/api/batch-sessions/{session_id}", get(api::session))
        .route(
            "/api/batch-sessions/{session_id}/complete",
            post(api::complete_batch),
        )
        .route("/api/scans", post(api::scan))
        .route("/api/orders/{order_id}/bump", post(api::bump))
        .route("/api/orders/{order_id}/recall", post(api::recall))
        .route("/orders/events", get(events::events))
        .route("/static/{file}", get(asset))
        .merge(prep::routes())
        .merge(prep_reports::routes())
        .merge(pairing::routes())
        .merge(otter::routes())
        .merge(print::routes())
        .merge(floor::routes())
        .merge(reports::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The displays' scripts and the pairing page's, embedded in the binary (the CSP allows
/// scripts from the box only, none inline).
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let body = match file.as_str() {
        "display.js" => include_str!("../../static/display.js"),
        "keys.js" => include_str!("../../static/keys.js"),
        "prep.js" => include_str!("../../static/prep.js"),
        "eightysix.js" => include_str!("../../static/eightysix.js"),
        "pair.js" => include_str!("../../static/pair.js"),
        "devices.js" => include_str!("../../static/devices.js"),
        "print.js" => include_str!("../../static/print.js"),
        "printers.js" => include_str!("../../static/printers.js"),
        _ => return error(StatusCode::NOT_FOUND, format!("no file {file:?}")),
    };
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

fn internal(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "store failed");
    self::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// The station display: one page, embedded in the binary, no CDN (works with the internet down).
async fn display() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../static/index.html"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct StationQuery {
    station: Option<String>,
    state: Option<String>,
}

fn known_station(state: &AppState, station: &str) -> bool {
    station == UNASSIGNED_STATION || state.live.reference.get().station(station).is_some()
}

/// `?station=` must name a station when given; otherwise the reason.
fn station_filter(state: &AppState, station: Option<String>) -> Result<Option<String>, String> {
    match station {
        Some(station) if !known_station(state, &station) => {
            Err(format!("unknown station {station:?}"))
        }
        station => Ok(station),
    }
}
