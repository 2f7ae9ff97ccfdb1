//! Pairing (docs/security.md): the pairing page an unpaired browser gets, `POST /api/pair`
//! (a code and a name in, a token out — in an `HttpOnly`, `SameSite=Strict` cookie and in the
//! body for clients that are not browsers), `GET /api/me`, and the manager's device page and
//! API: pairing codes, the device list, revocation.

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{Path, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;

use super::{
    AppState, error,
    guard::{COOKIE, Caller, Identity, forbid, peer},
    internal, known_station,
};
use crate::{
    device::{self, Action, DeviceError, Role},
    store::{NewDevice, PairingCode},
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/pair", get(|| async { page() }))
        .route("/api/pair", post(pair))
        .route("/api/me", get(me))
        .route("/devices", get(devices_page))
        .route("/api/devices", get(list))
        .route("/api/devices/pairing-codes", post(new_code))
        .route("/api/devices/{device_id}/revoke", post(revoke))
}

fn html(text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response()
}

/// The pairing page: what an unpaired (or revoked) browser sees instead of any page.
pub(super) fn page() -> Response {
    html(include_str!("../../static/pair.html"))
}

async fn devices_page(Extension(Caller(device)): Extension<Caller>) -> Response {
    if let Some(refused) = forbid(&device, Action::Manage, "manage devices") {
        return refused;
    }
    html(include_str!("../../static/devices.html"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairBody {
    code: String,
    name: String,
}

/// `POST /api/pair` with `{"code", "name"}`: `201` with the device and its token (also set as
/// the cookie); `403` for a wrong or expired code (ten wrong codes from one address, then one
/// a minute: `429`); `409` when a device in use has that name.
async fn pair(State(state): State<AppState>, request: Request) -> Response {
    let client = peer(request.extensions()).map_or_else(String::new, |addr| addr.ip().to_string());
    let body = match axum::body::to_bytes(request.into_body(), super::MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
    };
    let body: PairBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    let failures = &state.access.pairing_failures;
    if !failures.has(&client) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong pairing codes from this address: wait a minute",
        );
    }
    let Some(code) = device::normalize_code(&body.code).filter(|c| !c.is_empty()) else {
        failures.allow(&client);
        return error(StatusCode::FORBIDDEN, "wrong or expired pairing code");
    };
    // The name alone is checked here (as for any role without a station): the role, and a
    // cook's station, come with the code.
    let name = match device::check_new(&body.name, Role::Display, None) {
        Ok(name) => name,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let token = device::new_token();
    let bootstrap = state
        .access
        .bootstrap_code
        .as_deref()
        .is_some_and(|expected| constant_time_eq(expected.as_bytes(), code.as_bytes()));
    // The provisioning code pairs a manager; a manager's code sets role, station and
    // `paired_by` from what it was made for.
    let new = NewDevice {
        id: device::new_id(),
        token_hash: device::token_hash(&token),
        name,
        role: Role::Manager,
        station: None,
        paired_by: "bootstrap".into(),
    };
    let paired = if bootstrap {
        state.writer.pair_bootstrap(new).await
    } else {
        state
            .writer
            .pair_with_code(device::token_hash(&code), new)
            .await
    };
    match paired {
        Ok(Some(Ok(device))) => {
            tracing::info!(device = %device.id, name = %device.name, role = %device.role,
                by = %device.paired_by, "device paired");
            let cookie =
                format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=315360000");
            let mut response = (
                StatusCode::CREATED,
                Json(json!({ "device": device, "token": token })),
            )
                .into_response();
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Ok(Some(Err(reason @ DeviceError::NameTaken(_)))) => error(StatusCode::CONFLICT, reason),
        Ok(Some(Err(reason))) => error(StatusCode::BAD_REQUEST, reason),
        Ok(None) => {
            failures.allow(&client);
            tracing::info!(%client, "wrong or expired pairing code");
            error(StatusCode::FORBIDDEN, "wrong or expired pairing code")
        }
        Err(error) => internal(error),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /api/me`: `{"paired": true, "device": {...}}`, or `{"paired": false, "revoked": bool,
/// "provisioned": bool, "provision_error": ...}` — an installer at a box that is not set up
/// sees why on the pairing page (the reason never quotes a secret).
async fn me(State(state): State<AppState>, Extension(identity): Extension<Identity>) -> Response {
    let unpaired = |revoked: bool| {
        json!({
            "paired": false,
            "revoked": revoked,
            "provisioned": state.live.provisioned,
            "provision_error": state.live.provision_error,
        })
    };
    Json(match identity {
        Identity::Paired(device) => json!({ "paired": true, "device": device }),
        Identity::Revoked(_) => unpaired(true),
        Identity::Unpaired => unpaired(false),
    })
    .into_response()
}

/// `GET /api/devices` (manager): every device ever paired, revoked ones included.
async fn list(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
) -> Response {
    if let Some(refused) = forbid(&device, Action::Manage, "list devices") {
        return refused;
    }
    match state.readers.with(|store| store.devices()).await {
        Ok(devices) => Json(json!({ "devices": devices })).into_response(),
        Err(error) => internal(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    role: String,
    station: Option<String>,
}

/// `POST /api/devices/pairing-codes` (manager) with `{"role", "station"}`: `201` with a code
/// the new device types within ten minutes; it pairs one device with that role.
async fn new_code(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    body: Bytes,
) -> Response {
    if let Some(refused) = forbid(&device, Action::Manage, "pair devices") {
        return refused;
    }
    let body: CodeBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    let role = match Role::parse(&body.role) {
        Ok(role) => role,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    if let Err(reason) = device::check_new("-", role, body.station.as_deref()) {
        return error(StatusCode::BAD_REQUEST, reason);
    }
    if let Some(station) = &body.station
        && !known_station(&state, station)
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown station {station:?}"),
        );
    }
    let code = device::new_pairing_code();
    let expires_at_ms = kitchen_daemon::clock::now_ms() + device::PAIRING_CODE_TTL_MS;
    let stored = PairingCode {
        code_hash: device::token_hash(&device::normalize_code(&code).unwrap_or_default()),
        role,
        station: body.station.clone(),
        created_by: device.id.clone(),
        expires_at_ms,
    };
    match state.writer.add_pairing_code(stored).await {
        Ok(()) => (
            StatusCode::CREATED,
            Json(json!({
                "code": code,
                "role": role,
                "station": body.station,
                "expires_at_ms": expires_at_ms,
            })),
        )
            .into_response(),
        Err(error) => internal(error),
    }
}

/// `POST /api/devices/{device_id}/revoke` (manager): the device's token stops working at once
/// and its live streams end. Idempotent.
async fn revoke(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Path(device_id): Path<String>,
) -> Response {
    if let Some(refused) = forbid(&device, Action::Manage, "revoke devices") {
        return refused;
    }
    match state.writer.revoke_device(device_id.clone()).await {
        Ok(Some(revoked)) => {
            tracing::info!(device = %revoked.id, name = %revoked.name, by = %device.id,
                "device revoked");
            state.access.streams.revoked(&revoked.id);
            Json(json!(revoked)).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no device {device_id:?}")),
        Err(error) => internal(error),
    }
}
