//! The REST API: stations, orders, batch items and sessions, scans, bumps and recalls.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{scan::ScanRole, writer::BatchError};
use kitchen_proto::reference::UNASSIGNED_STATION;

use super::{AppState, StationQuery, error, internal, known_station, station_filter, view::view};

/// The kitchen's stations, plus `unassigned`.
pub(super) async fn stations(State(state): State<AppState>) -> Response {
    let reference = state.reference.get();
    let mut stations: Vec<Value> = reference
        .stations
        .iter()
        .map(|s| json!({"id": s.id, "name": s.name}))
        .collect();
    stations.push(
        json!({"id": UNASSIGNED_STATION, "name": reference.station_name(UNASSIGNED_STATION)}),
    );
    Json(json!({ "stations": stations })).into_response()
}

/// `GET /api/orders?state=open[&station=<id>]`: open tickets, each with the stations it needs,
/// where it was bumped and whether it is ready.
pub(super) async fn orders(
    State(state): State<AppState>,
    Query(query): Query<StationQuery>,
) -> Response {
    if query.state.as_deref().is_some_and(|s| s != "open") {
        return error(StatusCode::BAD_REQUEST, "only state=open is served");
    }
    let station = match station_filter(&state, query.station) {
        Ok(station) => station,
        Err(reason) => return error(StatusCode::NOT_FOUND, reason),
    };
    match view(&state, station.as_deref()).await {
        Ok(view) => {
            #[derive(serde::Serialize)]
            struct Orders {
                orders: Vec<crate::record::Ticket>,
            }
            Json(Orders {
                orders: view.orders,
            })
            .into_response()
        }
        Err(error) => internal(error),
    }
}

/// `GET /api/batches[?station=<id>]`: the batch items, and the scheduled orders not counted yet.
pub(super) async fn batches(
    State(state): State<AppState>,
    Query(query): Query<StationQuery>,
) -> Response {
    let station = match station_filter(&state, query.station) {
        Ok(station) => station,
        Err(reason) => return error(StatusCode::NOT_FOUND, reason),
    };
    match view(&state, station.as_deref()).await {
        Ok(view) => {
            Json(json!({ "items": view.batches, "upcoming": view.upcoming })).into_response()
        }
        Err(error) => internal(error),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    quantity: Option<u32>,
    #[serde(default)]
    device: String,
}

/// `POST /api/batches/{station_id}/{item_id}/start` with `{"quantity": N, "device": "..."}`
/// (both optional; N defaults to the current count): a session id.
pub(super) async fn start_batch(
    State(state): State<AppState>,
    Path((station_id, item_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: StartBody = if body.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
        }
    };
    let started = state
        .writer
        .start_batch(station_id, item_id, body.quantity, body.device)
        .await;
    match started {
        Ok(Ok(session)) => (StatusCode::CREATED, Json(json!(session))).into_response(),
        Ok(Err(reason @ (BatchError::UnknownStation(_) | BatchError::UnknownItem { .. }))) => {
            error(StatusCode::NOT_FOUND, reason)
        }
        Ok(Err(reason)) => error(StatusCode::UNPROCESSABLE_ENTITY, reason),
        Err(error) => internal(error),
    }
}

/// `GET /api/batch-sessions/{session_id}`.
pub(super) async fn session(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
) -> Response {
    match state.readers.with(|store| store.session(&session_id)).await {
        Ok(Some(session)) => Json(json!(session)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no session {session_id:?}")),
        Err(error) => internal(error),
    }
}

/// `POST /api/batch-sessions/{session_id}/complete`: its units go to the most urgent orders.
/// Idempotent: completing again answers the same session.
pub(super) async fn complete_batch(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
) -> Response {
    match state.writer.complete_batch(session_id.clone()).await {
        Ok(Some(session)) => Json(json!(session)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no session {session_id:?}")),
        Err(error) => internal(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScanBody {
    device: String,
    code: String,
    /// `station`, `prep` or `receiving`; `station` when a station is given.
    role: Option<String>,
    /// The station of a station scanner (a tablet's keyboard-wedge scanner at that station).
    station: Option<String>,
}

/// `POST /api/scans` with `{"device", "code", "role", "station"}`: the keyboard-wedge path into
/// the same pipeline as the serial scanners. Every scan is recorded; `200` when accepted, `422`
/// with the reason when not.
pub(super) async fn scan(State(state): State<AppState>, body: Bytes) -> Response {
    let body: ScanBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    if body.device.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "device must name the scanner");
    }
    let role = match (body.role.as_deref(), body.station) {
        (None | Some("station"), Some(station)) if known_station(&state, &station) => {
            ScanRole::Station(station)
        }
        (None | Some("station"), Some(station)) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown station {station:?}"),
            );
        }
        (Some("prep"), None) => ScanRole::Prep,
        (Some("receiving"), None) => ScanRole::Receiving,
        (None | Some("station"), None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "a station scanner needs its station; other scanners need role prep or receiving",
            );
        }
        (Some(role @ ("prep" | "receiving")), Some(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("a {role} scanner has no station"),
            );
        }
        (Some(role), _) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown role {role:?}: station, prep or receiving"),
            );
        }
    };
    let raw = body.code.into_bytes();
    let len = raw.len();
    match state.writer.scan(body.device, role, raw, len).await {
        Ok(record) if record.accepted => Json(json!(record)).into_response(),
        Ok(record) => (StatusCode::UNPROCESSABLE_ENTITY, Json(json!(record))).into_response(),
        Err(error) => internal(error),
    }
}

#[derive(Deserialize)]
pub(super) struct BumpQuery {
    station: Option<String>,
}

/// `POST /api/orders/{order_id}/bump[?station=<id>]`: the order is done at that station (all
/// stations without `station`). Idempotent.
pub(super) async fn bump(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Query(query): Query<BumpQuery>,
) -> Response {
    change_bumps(&state, order_id, query.station, true).await
}

/// `POST /api/orders/{order_id}/recall[?station=<id>]`: undoes a bump. Idempotent.
pub(super) async fn recall(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Query(query): Query<BumpQuery>,
) -> Response {
    change_bumps(&state, order_id, query.station, false).await
}

pub(super) async fn change_bumps(
    state: &AppState,
    order_id: String,
    station: Option<String>,
    bumped: bool,
) -> Response {
    let stations = match station {
        Some(station) if !known_station(state, &station) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown station {station:?}"),
            );
        }
        Some(station) => vec![station],
        None => state
            .reference
            .get()
            .stations
            .iter()
            .map(|s| s.id.clone())
            .chain([UNASSIGNED_STATION.to_owned()])
            .collect(),
    };
    let field = if bumped { "bumped_at" } else { "recalled_at" };
    match state
        .writer
        .bump(order_id.clone(), stations.clone(), bumped)
        .await
    {
        Ok(Some(_)) => Json(json!({ "order_id": order_id, field: stations })).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no order {order_id:?}")),
        Err(error) => internal(error),
    }
}
