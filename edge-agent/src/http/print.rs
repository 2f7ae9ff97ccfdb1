//! `POST /api/orders/{order_id}/reprint`: a ticket printed again — the bag ticket on the Expo
//! printers, or with `{"station"}` that station's ticket on its printers (or the fallback
//! printer). Who may: Expo and managers anywhere, a cook at its own station.

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, error, guard::Caller, guard::forbid, internal, station_filter};
use crate::{device::Action, writer::PrintRejection};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/orders/{order_id}/reprint", post(reprint))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reprint {
    station: Option<String>,
}

async fn reprint(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Path(order_id): Path<String>,
    body: Bytes,
) -> Response {
    let bytes: &[u8] = if body.is_empty() { b"{}" } else { &body };
    let request: Reprint = match serde_json::from_slice(bytes) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    let station = match station_filter(&state, request.station) {
        Ok(station) => station,
        Err(reason) => return error(StatusCode::NOT_FOUND, reason),
    };
    if let Some(refused) = forbid(
        &device,
        Action::Reprint(station.as_deref()),
        "reprint tickets",
    ) {
        return refused;
    }
    match state
        .writer
        .reprint(order_id.clone(), station.clone())
        .await
    {
        Ok(Ok(jobs)) => (
            StatusCode::ACCEPTED,
            Json(json!({ "order_id": order_id, "station": station, "jobs": jobs })),
        )
            .into_response(),
        Ok(Err(rejection @ PrintRejection::UnknownOrder(_))) => {
            error(StatusCode::NOT_FOUND, rejection)
        }
        Ok(Err(rejection @ PrintRejection::NoPrinter(_))) => error(StatusCode::CONFLICT, rejection),
        Err(e) => internal(e),
    }
}
