//! The agent's LAN HTTP endpoints: health, readiness, the batch items of each station and the
//! live event stream (Server-Sent Events).

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    batch,
    feed::FeedStats,
    reference::{Reference, UNASSIGNED_STATION},
    store::{Bumped, Store},
    writer::StoreWriter,
};

/// Event-log entries read per query while a client catches up.
const REPLAY_CHUNK: i64 = 256;
/// SSE keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How far ahead a scheduled order's fire time may be before it is counted.
const SCHEDULE_HORIZON_MS: i64 = 20 * 60 * 1000;

#[derive(Clone)]
pub struct AppState {
    /// A read connection to the store (the writer thread has its own).
    pub reader: Arc<Mutex<Store>>,
    pub reference: Arc<Reference>,
    pub feed: Arc<FeedStats>,
    pub provisioned: bool,
    /// The newest event-log sequence, moved by the writer after each commit.
    pub log_updates: watch::Receiver<i64>,
    /// Cancelled on shutdown: open event streams end with it.
    pub token: CancellationToken,
    pub writer: StoreWriter,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/", get(display))
        .route("/api/stations", get(stations))
        .route("/api/orders", get(orders))
        .route("/api/batches", get(batches))
        .route("/orders/events", get(events))
        .route("/api/orders/{order_id}/bump", axum::routing::post(bump))
        .route("/api/orders/{order_id}/recall", axum::routing::post(recall))
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

/// The station display: one page, embedded in the binary, no CDN (works with the internet down).
async fn display() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../static/index.html"),
    )
        .into_response()
}

/// The kitchen's stations, plus `unassigned`.
async fn stations(State(state): State<AppState>) -> Response {
    let mut stations: Vec<serde_json::Value> = state
        .reference
        .stations
        .iter()
        .map(|s| json!({"id": s.id, "name": s.name}))
        .collect();
    stations.push(json!({"id": UNASSIGNED_STATION, "name": "Unassigned"}));
    Json(json!({ "stations": stations })).into_response()
}

#[derive(Deserialize)]
struct OrdersQuery {
    state: Option<String>,
}

/// `GET /api/orders?state=open`: open tickets, each with the stations it needs and where it
/// was bumped.
async fn orders(State(state): State<AppState>, Query(query): Query<OrdersQuery>) -> Response {
    if query.state.as_deref().is_some_and(|s| s != "open") {
        let error = "only state=open is served";
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
    }
    let read = {
        let reader = state.reader.lock().unwrap_or_else(|e| e.into_inner());
        reader
            .open_tickets()
            .and_then(|tickets| Ok((tickets, reader.open_orders()?)))
    };
    let (tickets, orders) = match read {
        Ok(read) => read,
        Err(error) => return internal(error),
    };
    let tickets: Vec<serde_json::Value> = tickets
        .into_iter()
        .map(|ticket| {
            let stations: std::collections::BTreeSet<String> = orders
                .iter()
                .find(|o| o.order_id == ticket.order_id)
                .map(|order| {
                    batch::contributions(order, &state.reference)
                        .into_iter()
                        .map(|c| c.station_id)
                        .collect()
                })
                .unwrap_or_default();
            let mut value = serde_json::to_value(&ticket).unwrap_or_default();
            value["stations"] = json!(stations);
            value
        })
        .collect();
    Json(json!({ "orders": tickets })).into_response()
}

#[derive(Deserialize)]
struct BatchQuery {
    station: Option<String>,
}

/// The batch items of every station, or of `?station=<id>`.
async fn batches(State(state): State<AppState>, Query(query): Query<BatchQuery>) -> Response {
    match batch_items(&state, query.station.as_deref()) {
        Ok(items) => Json(json!({ "items": items })).into_response(),
        Err(error) => internal(error),
    }
}

fn batch_items(
    state: &AppState,
    station: Option<&str>,
) -> Result<Vec<serde_json::Value>, crate::store::StoreError> {
    let orders = {
        let reader = state.reader.lock().unwrap_or_else(|e| e.into_inner());
        reader.open_orders()?
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let board = batch::board(&orders, &state.reference, now_ms, SCHEDULE_HORIZON_MS);
    let items: Vec<serde_json::Value> = board
        .items
        .iter()
        .filter(|item| station.is_none_or(|s| s == item.station_id))
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
    Ok(items)
}

#[derive(Deserialize)]
struct BumpQuery {
    station: Option<String>,
}

/// The stations a bump or recall names: `?station=<id>` (which must exist), or all of them.
fn named_stations(state: &AppState, station: Option<String>) -> Result<Vec<String>, String> {
    match station {
        Some(station) => {
            let known =
                station == UNASSIGNED_STATION || state.reference.station(&station).is_some();
            if !known {
                return Err(format!("unknown station {station:?}"));
            }
            Ok(vec![station])
        }
        None => Ok(state
            .reference
            .stations
            .iter()
            .map(|s| s.id.clone())
            .chain([UNASSIGNED_STATION.to_owned()])
            .collect()),
    }
}

fn bump_answer(
    order_id: &str,
    field: &str,
    result: Result<Bumped, Option<crate::store::StoreError>>,
) -> Response {
    match result {
        Ok(Bumped::Bumped { stations, .. }) => {
            Json(json!({ "order_id": order_id, field: stations })).into_response()
        }
        Ok(Bumped::UnknownOrder) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no order {order_id:?}") })),
        )
            .into_response(),
        Err(Some(error)) => internal(error),
        Err(None) => internal("the store writer stopped"),
    }
}

/// `POST /api/orders/{order_id}/bump[?station=<id>]`: the order is done at that station (all
/// stations without `station`). Idempotent.
async fn bump(
    State(state): State<AppState>,
    axum::extract::Path(order_id): axum::extract::Path<String>,
    Query(query): Query<BumpQuery>,
) -> Response {
    change_bumps(&state, order_id, query.station, false).await
}

/// `POST /api/orders/{order_id}/recall[?station=<id>]`: undoes a bump. Idempotent.
async fn recall(
    State(state): State<AppState>,
    axum::extract::Path(order_id): axum::extract::Path<String>,
    Query(query): Query<BumpQuery>,
) -> Response {
    change_bumps(&state, order_id, query.station, true).await
}

async fn change_bumps(
    state: &AppState,
    order_id: String,
    station: Option<String>,
    recall: bool,
) -> Response {
    let stations = match named_stations(state, station) {
        Ok(stations) => stations,
        Err(error) => {
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
        }
    };
    let (result, field) = if recall {
        let result = state.writer.recall(order_id.clone(), stations).await;
        (result, "recalled_at")
    } else {
        (
            state.writer.bump(order_id.clone(), stations).await,
            "bumped_at",
        )
    };
    bump_answer(&order_id, field, result)
}

#[derive(Deserialize)]
struct EventsQuery {
    last_event_id: Option<i64>,
}

/// `GET /orders/events`: the event log as Server-Sent Events. With `Last-Event-ID` (header, or
/// `?last_event_id=`) it replays everything after that id, then continues live — no gap, no
/// duplicate, because live delivery is the same log read from where the client is. Without
/// it, a `snapshot` of the current batch items comes first. Each client reads at its own pace,
/// so a slow tablet never holds up another or the feed.
async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Response {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(query.last_event_id);
    let mut updates = state.log_updates.clone();
    // Everything committed up to here is in the log; later commits move `updates`.
    let newest = *updates.borrow_and_update();
    let mut queue = VecDeque::new();
    let cursor = match last_event_id {
        Some(id) => id,
        None => {
            let items = match batch_items(&state, None) {
                Ok(items) => items,
                Err(error) => return internal(error),
            };
            let data = json!({ "batches": items }).to_string();
            queue.push_back(
                Event::default()
                    .id(newest.to_string())
                    .event("snapshot")
                    .data(data),
            );
            newest
        }
    };
    let reader = state.reader.clone();
    let stream = futures_util::stream::unfold(
        (cursor, updates, queue),
        move |(mut cursor, mut updates, mut queue)| {
            let reader = reader.clone();
            async move {
                loop {
                    if let Some(event) = queue.pop_front() {
                        return Some((event, (cursor, updates, queue)));
                    }
                    let logged = {
                        let reader = reader.lock().unwrap_or_else(|e| e.into_inner());
                        reader.events_after(cursor, REPLAY_CHUNK)
                    };
                    match logged {
                        Ok(logged) if !logged.is_empty() => {
                            for entry in logged {
                                cursor = entry.seq;
                                queue.push_back(
                                    Event::default()
                                        .id(entry.seq.to_string())
                                        .event(entry.kind)
                                        .data(entry.data),
                                );
                            }
                        }
                        Ok(_) => {
                            // Caught up: wait for the next commit (or the writer to stop).
                            updates.changed().await.ok()?;
                        }
                        Err(error) => {
                            tracing::error!(%error, "event stream cannot read the log");
                            return None;
                        }
                    }
                }
            }
        },
    );
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> = Box::pin(
        stream
            .map(Ok)
            .take_until(state.token.clone().cancelled_owned()),
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}
