//! The REST API: stations, orders, batch items and sessions, scans, bumps and recalls.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{device::Action, scan::ScanRole, writer::BatchError};
use kitchen_proto::reference::UNASSIGNED_STATION;

use super::{
    AppState, StationQuery, error,
    guard::{Caller, forbid},
    internal, known_station, station_filter,
    view::view,
};

/// Largest batch a session may start with.
const MAX_BATCH: u32 = 10_000;
/// As on the serial path: a scanned code and a scanner's name.
const MAX_CODE_BYTES: usize = 256;
const MAX_DEVICE_BYTES: usize = 64;

/// The kitchen's stations, plus `unassigned`, each with its display's timers and keys, and the
/// floor's settings every display shares (Expo's timers and keys, the wedge scan's timing, the
/// allergen words).
pub(super) async fn stations(State(state): State<AppState>) -> Response {
    let reference = state.live.reference.get();
    let floor = &reference.floor;
    let mut stations: Vec<Value> = reference
        .stations
        .iter()
        .map(|s| json!({"id": s.id, "name": s.name, "display": floor.display(Some(s))}))
        .collect();
    stations.push(json!({
        "id": UNASSIGNED_STATION,
        "name": reference.station_name(UNASSIGNED_STATION),
        "display": floor.display(None),
    }));
    Json(json!({
        "stations": stations,
        "expo": floor.display(None),
        "scan": {"gap_ms": floor.scan_gap_ms(), "min_chars": floor.scan_min_chars()},
        "allergen_words": floor.allergen_words(),
    }))
    .into_response()
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
}

/// `POST /api/batches/{station_id}/{item_id}/start` with `{"quantity": N}` (optional; N
/// defaults to the current count): a session id. The paired device is recorded as its device.
pub(super) async fn start_batch(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Path((station_id, item_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Some(refused) = forbid(
        &device,
        Action::Batch(Some(&station_id)),
        "batch at this station",
    ) {
        return refused;
    }
    let body: StartBody = if body.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
        }
    };
    if body.quantity.is_some_and(|q| q > MAX_BATCH) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("quantity must be at most {MAX_BATCH}"),
        );
    }
    let started = state
        .writer
        .start_batch(station_id, item_id, body.quantity, device.name)
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
    Extension(Caller(device)): Extension<Caller>,
    Path(session_id): Path<String>,
) -> Response {
    let session = state.readers.with(|store| store.session(&session_id)).await;
    match session {
        Ok(Some(session)) => {
            let action = Action::Batch(Some(&session.station_id));
            if let Some(refused) = forbid(&device, action, "complete a batch at this station") {
                return refused;
            }
        }
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no session {session_id:?}")),
        Err(error) => return internal(error),
    }
    match state.writer.complete_batch(session_id.clone()).await {
        Ok(Some(session)) => Json(json!(session)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no session {session_id:?}")),
        Err(error) => internal(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScanBody {
    /// The scanner, when the device has several (recorded after the device's name).
    device: Option<String>,
    code: String,
    /// `station`, `prep` or `receiving`; `station` when a station is given.
    role: Option<String>,
    /// The station of a station scanner (a tablet's keyboard-wedge scanner at that station).
    station: Option<String>,
}

/// `POST /api/scans` with `{"code", "role", "station", "device"}`: the keyboard-wedge path
/// into the same pipeline as the serial scanners. Every scan is recorded, under the paired
/// device's name (and the scanner's, when `device` names one); `200` when accepted, `422`
/// with the reason when not.
pub(super) async fn scan(
    State(state): State<AppState>,
    Extension(Caller(caller)): Extension<Caller>,
    body: Bytes,
) -> Response {
    let body: ScanBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    if body.code.len() > MAX_CODE_BYTES {
        return error(
            StatusCode::BAD_REQUEST,
            format!("code must be at most {MAX_CODE_BYTES} bytes"),
        );
    }
    let device = match body.device.as_deref().map(str::trim) {
        Some(scanner)
            if scanner.len() > MAX_DEVICE_BYTES || scanner.chars().any(char::is_control) =>
        {
            return error(
                StatusCode::BAD_REQUEST,
                format!("device must be at most {MAX_DEVICE_BYTES} bytes of printable text"),
            );
        }
        Some(scanner) if !scanner.is_empty() && scanner != caller.name => {
            format!("{} / {scanner}", caller.name)
        }
        _ => caller.name.clone(),
    };
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
        (Some("expo"), None) => ScanRole::Expo,
        (None | Some("station"), None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "a station scanner needs its station; other scanners need role prep, receiving or expo",
            );
        }
        (Some(role @ ("prep" | "receiving" | "expo")), Some(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("a {role} scanner has no station"),
            );
        }
        (Some(role), _) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown role {role:?}: station, prep, receiving or expo"),
            );
        }
    };
    let action = match &role {
        ScanRole::Station(station) => Action::StationScan(station),
        ScanRole::Prep | ScanRole::Receiving => Action::PrepScan,
        ScanRole::Expo => Action::Expo,
    };
    if let Some(refused) = forbid(&caller, action, "scan here") {
        return refused;
    }
    let raw = body.code.into_bytes();
    let len = raw.len();
    match state.writer.scan(device, role, raw, len).await {
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
    Extension(Caller(device)): Extension<Caller>,
    Path(order_id): Path<String>,
    Query(query): Query<BumpQuery>,
) -> Response {
    if let Some(refused) = forbid(&device, Action::Bump(query.station.as_deref()), "bump here") {
        return refused;
    }
    // At a station the allergen rule applies (docs/floor.md); Expo's bump of every station
    // does not wait for the cooks.
    let Some(station) = query.station else {
        return change_bumps(&state, order_id, None, true, device.name).await;
    };
    if !known_station(&state, &station) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown station {station:?}"),
        );
    }
    match state
        .writer
        .bump_at_station(order_id.clone(), station.clone(), device.name)
        .await
    {
        Ok(Ok(_)) => Json(json!({ "order_id": order_id, "bumped_at": [station] })).into_response(),
        Ok(Err(rejection)) => super::floor::refused(rejection),
        Err(error) => internal(error),
    }
}

/// `POST /api/orders/{order_id}/recall[?station=<id>]`: undoes a bump. Idempotent.
pub(super) async fn recall(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Path(order_id): Path<String>,
    Query(query): Query<BumpQuery>,
) -> Response {
    if let Some(refused) = forbid(
        &device,
        Action::Bump(query.station.as_deref()),
        "recall here",
    ) {
        return refused;
    }
    change_bumps(&state, order_id, query.station, false, device.name).await
}

pub(super) async fn change_bumps(
    state: &AppState,
    order_id: String,
    station: Option<String>,
    bumped: bool,
    device: String,
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
            .live
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
        .bump(order_id.clone(), stations.clone(), bumped, device)
        .await
    {
        Ok(Some(_)) => Json(json!({ "order_id": order_id, field: stations })).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no order {order_id:?}")),
        Err(error) => internal(error),
    }
}
