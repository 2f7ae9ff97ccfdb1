//! The kitchen floor's routes (docs/floor.md): a cook acknowledging an order's allergen warning
//! at a station, and Expo or a manager marking an order rush. The bump that the acknowledgement
//! unlocks is `api::bump`.

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use serde::Deserialize;

use crate::{device::Action, writer::FloorRejection};

use super::{
    AppState, error,
    guard::{Caller, forbid},
    internal, known_station,
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/orders/{order_id}/allergen-ack", post(acknowledge))
        .route("/api/orders/{order_id}/rush", post(rush))
        .route(
            "/api/orders/{order_id}/lines/{line_no}/done",
            post(tap_line),
        )
}

/// The status a refusal is answered with.
pub(super) fn refused(rejection: FloorRejection) -> Response {
    let status = match rejection {
        FloorRejection::NoOrder(_) | FloorRejection::NoLine { .. } => StatusCode::NOT_FOUND,
        FloorRejection::NotALine { .. } => StatusCode::BAD_REQUEST,
        FloorRejection::NotOpen(_)
        | FloorRejection::NoAllergen(_)
        | FloorRejection::AllergenNotAcknowledged { .. }
        | FloorRejection::NothingHere { .. } => StatusCode::CONFLICT,
    };
    error(status, rejection)
}

#[derive(Deserialize)]
pub(super) struct AckQuery {
    station: Option<String>,
}

/// `?station=` naming a known station, or the `400` saying what is wrong.
fn station_of(state: &AppState, query: AckQuery, what: &str) -> Result<String, Box<Response>> {
    let Some(station) = query.station else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("say which station {what}: ?station=<id>"),
        )));
    };
    if !known_station(state, &station) {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("unknown station {station:?}"),
        )));
    }
    Ok(station)
}

/// `POST /api/orders/{order_id}/allergen-ack?station=<id>`: the cook at `station` read the
/// order's allergen warning; the station may now bump it. Idempotent.
async fn acknowledge(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Path(order_id): Path<String>,
    Query(query): Query<AckQuery>,
) -> Response {
    let station = match station_of(&state, query, "acknowledges") {
        Ok(station) => station,
        Err(response) => return *response,
    };
    if let Some(refused) = forbid(
        &device,
        Action::Bump(Some(&station)),
        "acknowledge allergens here",
    ) {
        return refused;
    }
    match state
        .writer
        .acknowledge_allergen(order_id, station, device.name)
        .await
    {
        Ok(Ok(ack)) => Json(ack).into_response(),
        Ok(Err(rejection)) => refused(rejection),
        Err(error) => internal(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RushBody {
    #[serde(default = "yes")]
    rush: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/orders/{order_id}/rush`, body `{"rush": true|false}` (empty: true): Expo or a
/// manager marks the order rush, or takes the mark off.
async fn rush(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Path(order_id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(refused) = forbid(&device, Action::Expo, "mark orders rush") {
        return refused;
    }
    let bytes: &[u8] = if body.is_empty() { b"{}" } else { &body };
    let body: RushBody = match serde_json::from_slice(bytes) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    match state.writer.rush(order_id, body.rush, device.name).await {
        Ok(Ok(change)) => Json(change).into_response(),
        Ok(Err(rejection)) => refused(rejection),
        Err(error) => internal(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TapBody {
    #[serde(default = "yes")]
    done: bool,
}

/// `POST /api/orders/{order_id}/lines/{line_no}/done?station=<id>`, body `{"done": true|false}`
/// (empty: true): the cook taps the line off at the station (or back on).
async fn tap_line(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Path((order_id, line_no)): Path<(String, String)>,
    Query(query): Query<AckQuery>,
    body: Bytes,
) -> Response {
    let station = match station_of(&state, query, "taps the line off") {
        Ok(station) => station,
        Err(response) => return *response,
    };
    if let Some(refused) = forbid(&device, Action::Bump(Some(&station)), "tap lines off here") {
        return refused;
    }
    let Ok(line_no) = line_no.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("line {line_no:?} is not a line number"),
        );
    };
    let bytes: &[u8] = if body.is_empty() { b"{}" } else { &body };
    let body: TapBody = match serde_json::from_slice(bytes) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    match state
        .writer
        .tap_line(order_id, line_no, station, body.done, device.name)
        .await
    {
        Ok(Ok(change)) => Json(change).into_response(),
        Ok(Err(rejection)) => refused(rejection),
        Err(error) => internal(error),
    }
}
