//! What Expo, managers and cooks tell Otter from the displays (docs/otter.md): accept, a new
//! prep time, reject, ready, hand off and cancel an order; 86 an item and put it back on (with a
//! staff PIN when the kitchen uses them); what is 86'd, with the relay's calls, and what the
//! prep display proposes to 86.

use std::collections::BTreeSet;

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use kitchen_daemon::clock::now_ms;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;

use super::{
    AppState, error,
    guard::{Caller, forbid},
    internal,
};
use crate::{
    device::{self, Action, Device},
    otter::{self, OrderAction, OtterRejection, Until},
    prep,
    store::Store,
};

/// The most characters of a PIN (they are 4 to 8 digits).
const MAX_PIN_CHARS: usize = 16;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/orders/{order_id}/accept", OrderRoute::Accept.route())
        .route(
            "/api/orders/{order_id}/prep-time",
            OrderRoute::PrepTime.route(),
        )
        .route("/api/orders/{order_id}/reject", OrderRoute::Reject.route())
        .route("/api/orders/{order_id}/ready", OrderRoute::Ready.route())
        .route(
            "/api/orders/{order_id}/hand-off",
            OrderRoute::HandOff.route(),
        )
        .route("/api/orders/{order_id}/cancel", OrderRoute::Cancel.route())
        .route("/api/availability", get(availability))
        .route("/api/items/{item_id}/suspend", post(suspend))
        .route("/api/items/{item_id}/unsuspend", post(unsuspend))
}

/// A JSON body (an empty body is `{}`), or the `400` saying what is wrong with it.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Box<Response>> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, format!("invalid body: {e}"))))
}

fn refused(rejection: OtterRejection) -> Response {
    let status = match rejection {
        OtterRejection::NoSuchOrder | OtterRejection::NoSuchItem => StatusCode::NOT_FOUND,
        OtterRejection::PinRequired | OtterRejection::WrongPin => StatusCode::FORBIDDEN,
        OtterRejection::BadMinutes
        | OtterRejection::UnknownReason(_)
        | OtterRejection::BadHours
        | OtterRejection::NoteTooLong => StatusCode::BAD_REQUEST,
        OtterRejection::NotOpen(_)
        | OtterRejection::AlreadyAccepted
        | OtterRejection::NotAccepted
        | OtterRejection::AlreadySuspended(_)
        | OtterRejection::NotSuspended(_) => StatusCode::CONFLICT,
    };
    error(status, rejection)
}

async fn act(state: &AppState, order_id: String, action: OrderAction, device: Device) -> Response {
    match state
        .writer
        .order_action(order_id.clone(), action, device.name)
        .await
    {
        Ok(Ok(())) => Json(json!({ "order_id": order_id })).into_response(),
        Ok(Err(rejection)) => refused(rejection),
        Err(error) => internal(error),
    }
}

/// The order actions, one route each: who may, and what the body says.
#[derive(Debug, Clone, Copy)]
enum OrderRoute {
    /// `{"prep_minutes"?}` (Expo): accepts a manual store's order, with the box's estimate
    /// unless a time is given.
    Accept,
    /// `{"prep_minutes"}` (Expo): a new prep time for Otter.
    PrepTime,
    /// `{"reason"}` (Expo): refuses a manual store's order before it is accepted — a cancel on
    /// Otter with the reason.
    Reject,
    /// (Expo) every station done; Otter is told it is ready.
    Ready,
    /// (Expo) given to the courier or guest; off the screens, Otter told it is fulfilled.
    HandOff,
    /// `{"reason", "note"?}` (managers): cancels the order on Otter.
    Cancel,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Minutes {
    prep_minutes: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rejection {
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cancellation {
    reason: String,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Nothing {}

impl OrderRoute {
    fn permission(self) -> (Action<'static>, &'static str) {
        match self {
            OrderRoute::Accept => (Action::Expo, "accept orders"),
            OrderRoute::PrepTime => (Action::Expo, "change prep times"),
            OrderRoute::Reject => (Action::Expo, "reject orders"),
            OrderRoute::Ready => (Action::Expo, "mark orders ready"),
            OrderRoute::HandOff => (Action::Expo, "hand orders off"),
            OrderRoute::Cancel => (Action::CancelOrder, "cancel orders"),
        }
    }

    fn action(self, bytes: &Bytes) -> Result<OrderAction, Box<Response>> {
        Ok(match self {
            OrderRoute::Accept => OrderAction::Accept {
                minutes: body::<Minutes>(bytes)?.prep_minutes,
            },
            OrderRoute::PrepTime => match body::<Minutes>(bytes)?.prep_minutes {
                Some(minutes) => OrderAction::PrepTime { minutes },
                None => {
                    let missing = error(StatusCode::BAD_REQUEST, "prep_minutes is required");
                    return Err(Box::new(missing));
                }
            },
            OrderRoute::Reject => OrderAction::Reject {
                reason: body::<Rejection>(bytes)?.reason,
            },
            OrderRoute::Cancel => {
                let Cancellation { reason, note } = body(bytes)?;
                OrderAction::Cancel { reason, note }
            }
            OrderRoute::Ready => body::<Nothing>(bytes).map(|_| OrderAction::Ready)?,
            OrderRoute::HandOff => body::<Nothing>(bytes).map(|_| OrderAction::HandOff)?,
        })
    }

    /// `POST /api/orders/{order_id}/<route>`.
    fn route(self) -> axum::routing::MethodRouter<AppState> {
        post(
            move |State(state): State<AppState>,
                  Extension(Caller(device)): Extension<Caller>,
                  Path(order_id): Path<String>,
                  bytes: Bytes| async move {
                let (permission, what) = self.permission();
                if let Some(refused) = forbid(&device, permission, what) {
                    return refused;
                }
                match self.action(&bytes) {
                    Ok(action) => act(&state, order_id, action, device).await,
                    Err(response) => *response,
                }
            },
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspendBody {
    /// `end_of_day` (default), `hours` (with `hours`) or `back`.
    until: Option<String>,
    hours: Option<u32>,
    note: Option<String>,
    pin: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsuspendBody {
    pin: Option<String>,
}

/// The staff member a PIN names, when the kitchen uses PINs (`None`: it does not).
async fn staff(state: &AppState, pin: Option<String>) -> Result<Option<String>, Response> {
    let pin = pin
        .map(|pin| pin.trim().to_owned())
        .filter(|pin| !pin.is_empty());
    if pin
        .as_ref()
        .is_some_and(|pin| pin.chars().count() > MAX_PIN_CHARS)
    {
        return Err(refused(OtterRejection::WrongPin));
    }
    let hash = pin.as_deref().map(device::token_hash);
    let (uses_pins, name) = state
        .readers
        .with(move |store| store.staff_by_pin(hash.as_deref().unwrap_or("")))
        .await
        .map_err(internal)?;
    match (uses_pins, pin, name) {
        (false, _, _) => Ok(None),
        (true, None, _) => Err(refused(OtterRejection::PinRequired)),
        (true, Some(_), None) => Err(refused(OtterRejection::WrongPin)),
        (true, Some(_), Some(name)) => Ok(Some(name)),
    }
}

/// The item's station, or the `404`.
fn item_station(state: &AppState, item_id: &str) -> Result<String, Box<Response>> {
    state
        .live
        .reference
        .get()
        .item(item_id)
        .map(|item| item.station.clone())
        .ok_or_else(|| Box::new(refused(OtterRejection::NoSuchItem)))
}

/// `POST /api/items/{id}/suspend` `{"until"?, "hours"?, "note"?, "pin"?}`: 86es the item here
/// and on Otter, for the stores it is mapped to.
async fn suspend(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Path(item_id): Path<String>,
    bytes: Bytes,
) -> Response {
    let station = match item_station(&state, &item_id) {
        Ok(station) => station,
        Err(response) => return *response,
    };
    if let Some(refused) = forbid(&device, Action::EightySix(&station), "86 this item") {
        return refused;
    }
    let body: SuspendBody = match body(&bytes) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let until = match (body.until.as_deref().unwrap_or("end_of_day"), body.hours) {
        ("end_of_day", None) => Until::EndOfDay,
        ("back", None) => Until::Back,
        ("hours", Some(hours)) => Until::Hours(hours),
        ("hours", None) => return refused(OtterRejection::BadHours),
        (other, _) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("until is end_of_day, hours (with hours) or back, not {other:?}"),
            );
        }
    };
    let staff = match staff(&state, body.pin).await {
        Ok(staff) => staff,
        Err(response) => return response,
    };
    let note = body.note.unwrap_or_default();
    match state
        .writer
        .availability(item_id, Some(until), note, device.name, staff)
        .await
    {
        Ok(Ok(change)) => Json(json!(change)).into_response(),
        Ok(Err(rejection)) => refused(rejection),
        Err(error) => internal(error),
    }
}

/// `POST /api/items/{id}/unsuspend` `{"pin"?}`: the item is back on, here and on Otter.
async fn unsuspend(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Path(item_id): Path<String>,
    bytes: Bytes,
) -> Response {
    let station = match item_station(&state, &item_id) {
        Ok(station) => station,
        Err(response) => return *response,
    };
    if let Some(refused) = forbid(
        &device,
        Action::EightySix(&station),
        "put this item back on",
    ) {
        return refused;
    }
    let body: UnsuspendBody = match body(&bytes) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let staff = match staff(&state, body.pin).await {
        Ok(staff) => staff,
        Err(response) => return response,
    };
    match state
        .writer
        .availability(item_id, None, String::new(), device.name, staff)
        .await
    {
        Ok(Ok(change)) => Json(json!(change)).into_response(),
        Ok(Err(rejection)) => refused(rejection),
        Err(error) => internal(error),
    }
}

/// `GET /api/availability`: what is 86'd now (with until when, who, and the relay's calls for
/// it), whether 86 needs a PIN, and the items the prep display proposes to 86.
async fn availability(State(state): State<AppState>) -> Response {
    let now = now_ms();
    let (today, minute) = prep::local_day(now);
    let read = state
        .readers
        .with(move |store: &Store| {
            let suspended = store.suspensions(now)?;
            let calls = suspended
                .iter()
                .map(|s| store.item_calls(&s.item_id))
                .collect::<Result<Vec<_>, _>>()?;
            let running = store.batching_items()?;
            let uses_pins = !store.staff_names()?.is_empty();
            Ok((suspended, calls, running, store.open_stock()?, uses_pins))
        })
        .await;
    let (suspended, calls, running, open, uses_pins) = match read {
        Ok(read) => read,
        Err(error) => return internal(error),
    };
    let reference = state.live.reference.get();
    let view = prep::view(&reference, open, today, minute);
    let running: BTreeSet<&str> = running.iter().map(String::as_str).collect();
    let suspended_ids: BTreeSet<&str> = suspended.iter().map(|s| s.item_id.as_str()).collect();
    let proposals: Vec<_> = otter::proposals(&view.items, &running, &suspended_ids)
        .into_iter()
        .map(|item| json!({"item_id": item.item_id, "name": item.name, "station_id": item.station_id}))
        .collect();
    let suspended: Vec<_> = suspended
        .iter()
        .zip(calls)
        .map(|(s, calls)| {
            let item = reference.item(&s.item_id);
            json!({
                "suspension_id": s.suspension_id,
                "item_id": s.item_id,
                "name": item.map_or(s.item_id.as_str(), |i| i.name.as_str()),
                "station_id": item.map(|i| i.station.as_str()),
                "until_ms": s.until_ms,
                "note": s.note,
                "device": s.device,
                "staff": s.staff,
                "since_ms": s.created_at_ms,
                "on_otter": item.is_some_and(|i| !i.otter_entities.is_empty()),
                "calls": calls.iter().take(4).collect::<Vec<_>>(),
            })
        })
        .collect();
    let items: Vec<_> = reference
        .items
        .iter()
        .map(|i| json!({"item_id": i.id, "name": i.name, "station_id": i.station}))
        .collect();
    Json(json!({
        "items": items,
        "suspended": suspended,
        "pin_required": uses_pins,
        "proposals": proposals,
    }))
    .into_response()
}
