//! `POST /enrol` on the public listener: a new kitchen box exchanges its one-time enrolment
//! token for its credentials (`kitchens::enrol`, docs/security.md "Enrolment"). The listener
//! itself is plain HTTP behind the TLS-terminating proxy every public relay sits behind; the
//! box refuses anything but `https://` off its own machine.
//!
//! Body: `{"kitchen_id": "...", "token": "..."}` (at most 4 KiB). Answers: 200 with the
//! credentials (`kitchen_id`, `amqp_url`, `database_url`, `mqtt_password` when the relay issues
//! MQTT logins; `Cache-Control: no-store`); 400 for a body that is not that; 403 with
//! `{"error": reason}` when the token cannot be used (unknown, for another kitchen, used,
//! expired): the box stops trying; 503 with `{"error": reason}` when enrolment is not set up or
//! the broker or database failed: the token is still good and the box tries again later.

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::kitchens::enrol::EnrolError;

/// Largest enrolment request body.
pub const MAX_ENROL_BODY: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolRequest {
    kitchen_id: String,
    token: String,
}

pub async fn enrol(State(state): State<AppState>, request: Request) -> Response {
    let error = |status: StatusCode, reason: String| {
        (status, Json(json!({ "error": reason }))).into_response()
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(
            || "unknown".to_owned(),
            |ConnectInfo(peer)| peer.to_string(),
        );
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_ENROL_BODY).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("an enrolment request is at most {MAX_ENROL_BODY} bytes"),
        );
    };
    let request: EnrolRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "expected JSON {\"kitchen_id\": \"...\", \"token\": \"...\"}".into(),
            );
        }
    };
    match state
        .enroller
        .enrol(request.kitchen_id.trim(), &request.token, &peer)
        .await
    {
        Ok(credentials) => {
            ([(header::CACHE_CONTROL, "no-store")], Json(credentials)).into_response()
        }
        Err(EnrolError::Refused(reason)) => {
            tracing::warn!(kitchen_id = request.kitchen_id, peer, %reason, "enrolment refused");
            error(StatusCode::FORBIDDEN, reason)
        }
        Err(failure) => {
            tracing::error!(kitchen_id = request.kitchen_id, peer, error = %failure, "enrolment failed");
            error(StatusCode::SERVICE_UNAVAILABLE, failure.to_string())
        }
    }
}
