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
}

/// The status a refusal is answered with.
pub(super) fn refused(rejection: FloorRejection) -> Response {
    let status = match rejection {
        FloorRejection::NoOrder(_) => StatusCode::NOT_FOUND,
        FloorRejection::NotOpen(_)
        | FloorRejection::NoAllergen(_)
        | FloorRejection::AllergenNotAcknowledged { .. } => StatusCode::CONFLICT,
    };
    error(status, rejection)
}

#[derive(Deserialize)]
pub(super) struct AckQuery {
    station: Option<String>,
}

/// `POST /api/orders/{order_id}/allergen-ack?station=<id>`: the cook at `station` read the
/// order's allergen warning; the station may now bump it. Idempotent.
async fn acknowledge(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Path(order_id): Path<String>,
    Query(query): Query<AckQuery>,
) -> Response {
    let Some(station) = query.station else {
        return error(
            StatusCode::BAD_REQUEST,
            "say which station acknowledges: ?station=<id>",
        );
    };
    if !known_station(&state, &station) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown station {station:?}"),
        );
    }
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
