//! The agent's LAN HTTP endpoints: health, readiness, metrics, the station display, the REST
//! API of stations, tickets, batch items and batch sessions, and the live event stream
//! (Server-Sent Events). docs/agent.md lists them all.

use std::{
    collections::VecDeque,
    convert::Infallible,
    fmt::Write as _,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::{
    batch,
    feed::FeedStats,
    kitchen::{BatchError, batch_items_json},
    reference::{Reference, UNASSIGNED_STATION},
    scan::ScanRole,
    scanner::Scanners,
    store::{LoggedEvent, StateSnapshot, Store, StoreError},
    writer::{StoreWriter, now_ms},
};

mod prep;

/// Event-log entries read per query while a client catches up.
const REPLAY_CHUNK: i64 = 256;
/// SSE keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Read connections open at most.
const READERS: usize = 4;

/// Read connections to the store, at most `READERS` open, reused; the writer thread has its
/// own. A reader waits for a free connection rather than opening more: each holds a page cache,
/// and fifty tablets reconnecting at once must not mean fifty connections.
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Store>>,
    permits: tokio::sync::Semaphore,
}

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(READERS),
        }
    }

    /// Runs `read` on a connection (opening one when none is idle).
    pub async fn with<T>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _permit = self.permits.acquire().await.ok();
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let store = match idle {
            Some(store) => store,
            None => Store::open_reader(&self.path)?,
        };
        let result = read(&store);
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(store);
        result
    }
}

/// Counters of the live streams, for `/metrics`.
#[derive(Debug, Default)]
pub struct StreamStats {
    pub clients: AtomicI64,
    pub lagging_disconnects: AtomicU64,
}

#[derive(Clone)]
pub struct AppState {
    pub readers: Arc<Readers>,
    /// The reference data in use, swapped when PostgreSQL has a new version.
    pub reference: Arc<ReferenceCell>,
    pub feed: Arc<FeedStats>,
    pub kitchen_id: String,
    pub provisioned: bool,
    /// Log entries as the writer commits them.
    pub events: broadcast::Sender<Arc<LoggedEvent>>,
    pub streams: Arc<StreamStats>,
    /// Cancelled on shutdown: open event streams end with it.
    pub token: CancellationToken,
    pub writer: StoreWriter,
    pub horizon_ms: i64,
    pub snapshots: Arc<SnapshotCache>,
    pub sync: Arc<crate::sync::SyncStats>,
    /// Records unsynced for longer than this raise the alarm.
    pub sync_alarm_ms: i64,
    /// The serial scanners' states.
    pub scanners: Arc<Scanners>,
    /// Why the last `kitchen.toml` was refused (`provision`), shown by the displays.
    pub provision_error: Option<String>,
}

/// The reference data in use and where it came from. Readers take the current `Arc`; the sync
/// swaps in a new version from PostgreSQL.
#[derive(Debug)]
pub struct ReferenceCell {
    current: std::sync::RwLock<(Arc<Reference>, ReferenceStatus)>,
    /// Why the newest version in PostgreSQL was not taken, if it was not.
    refused: Mutex<Option<String>>,
}

impl ReferenceCell {
    pub fn new(reference: Arc<Reference>, status: ReferenceStatus) -> Self {
        Self {
            current: std::sync::RwLock::new((reference, status)),
            refused: Mutex::new(None),
        }
    }

    pub fn get(&self) -> Arc<Reference> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    pub fn status(&self) -> ReferenceStatus {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    pub fn set(&self, reference: Arc<Reference>, status: ReferenceStatus) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (reference, status);
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A newer version was refused: the current data stays, and the status says why.
    pub fn refuse_update(&self, reason: String) {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    fn describe(&self) -> String {
        let status = self.status().describe();
        match &*self.refused.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(reason) => format!("{status}; newer data in postgresql refused: {reason}"),
            None => status,
        }
    }

    fn usable(&self) -> bool {
        self.status().usable()
    }
}

/// Where the reference data in use came from.
#[derive(Debug, Clone)]
pub enum ReferenceStatus {
    /// Pulled from PostgreSQL (and cached).
    Synced { version: i64, at_ms: i64 },
    /// From `REFERENCE_FILE`, now also cached.
    Loaded,
    /// No file configured: the copy cached at `at_ms`.
    Cached { at_ms: i64 },
    /// The file was refused; the cached copy is used if there is one, else none.
    Refused {
        reason: String,
        cached_at_ms: Option<i64>,
    },
    /// No file and nothing cached: every line is `unassigned`.
    None,
}

impl ReferenceStatus {
    /// As `/readyz` and `/api/status` show it.
    fn describe(&self) -> String {
        let at = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        match self {
            ReferenceStatus::Synced { version, at_ms } => {
                format!("postgresql version {version} since {}", at(*at_ms))
            }
            ReferenceStatus::Loaded => "loaded".into(),
            ReferenceStatus::Cached { at_ms } => format!("cached {}", at(*at_ms)),
            ReferenceStatus::Refused {
                reason,
                cached_at_ms: Some(at_ms),
            } => format!("refused: {reason}; using the copy cached {}", at(*at_ms)),
            ReferenceStatus::Refused {
                reason,
                cached_at_ms: None,
            } => format!("invalid: {reason}"),
            ReferenceStatus::None => "none".into(),
        }
    }

    /// Whether the kitchen has menu data to count by.
    fn usable(&self) -> bool {
        !matches!(
            self,
            ReferenceStatus::Refused {
                cached_at_ms: None,
                ..
            }
        )
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(display))
        .route("/api/status", get(status))
        .route("/api/stations", get(stations))
        .route("/api/orders", get(orders))
        .route("/api/batches", get(batches))
        .route(
            "/api/batches/{station_id}/{item_id}/start",
            post(start_batch),
        )
        .route("/api/batch-sessions/{session_id}", get(session))
        .route(
            "/api/batch-sessions/{session_id}/complete",
            post(complete_batch),
        )
        .route("/api/scans", post(scan))
        .route("/api/orders/{order_id}/bump", post(bump))
        .route("/api/orders/{order_id}/recall", post(recall))
        .route("/orders/events", get(events))
        .merge(prep::routes())
        .with_state(state)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

fn internal(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "store failed");
    self::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

fn feed_state(state: &AppState) -> &'static str {
    if !state.provisioned {
        "not provisioned"
    } else if state.feed.connected.load(Ordering::Relaxed) {
        "connected"
    } else {
        "disconnected"
    }
}

async fn gaps_json(state: &AppState) -> Result<Vec<Value>, StoreError> {
    Ok(state
        .readers
        .with(Store::sequence_gaps)
        .await?
        .iter()
        .map(|g| json!({"store_id": g.store_id, "from": g.from, "to": g.to}))
        .collect())
}

/// Ready when the store answers, the kitchen feed is connected and the reference data was
/// accepted; lists sequence gaps and the scanners (a scanner that is not connected does not
/// make the agent unready: the LAN works without it).
async fn readyz(State(state): State<AppState>) -> Response {
    let gaps = match gaps_json(&state).await {
        Ok(gaps) => gaps,
        Err(error) => {
            tracing::error!(%error, "store does not answer");
            let body = json!({"ready": false, "store": "down", "feed": feed_state(&state)});
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    let sync = match sync_json(&state).await {
        Ok(sync) => sync,
        Err(error) => return internal(error),
    };
    let feed = feed_state(&state);
    let ready = feed == "connected" && state.reference.usable();
    let body = json!({
        "ready": ready,
        "store": "up",
        "feed": feed,
        "reference": reference_text(&state),
        "sequence_gaps": gaps,
        "scanners": state.scanners.snapshot(),
        "sync": sync,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// What the displays show in their status bar: who this box is and how its links are.
async fn status(State(state): State<AppState>) -> Response {
    let sync = match sync_json(&state).await {
        Ok(sync) => sync,
        Err(error) => return internal(error),
    };
    match gaps_json(&state).await {
        Ok(gaps) => Json(json!({
            "sync": sync,
            "kitchen_id": state.kitchen_id,
            "provisioned": state.provisioned,
            "provision_error": state.provision_error,
            "feed": feed_state(&state),
            "reference": reference_text(&state),
            "sequence_gaps": gaps,
            "scanners": state.scanners.snapshot(),
            "version": env!("CARGO_PKG_VERSION"),
        }))
        .into_response(),
        Err(error) => internal(error),
    }
}

/// Where the reference data in use came from; while PostgreSQL (its source, once a sync is set
/// up) is unreachable, says the copy in use is kept.
fn reference_text(state: &AppState) -> String {
    let text = state.reference.describe();
    if state.sync.configured.load(Ordering::Relaxed)
        && !state.sync.connected.load(Ordering::Relaxed)
    {
        format!("{text}; postgresql unreachable: keeping this copy")
    } else {
        text
    }
}

/// Whether unsynced records are older than the alarm threshold (only when a sync is set up:
/// without one, `state` says `not configured`).
fn sync_alarm(state: &AppState, oldest: Option<i64>) -> bool {
    state.sync.configured.load(Ordering::Relaxed)
        && oldest.is_some_and(|at| now_ms() - at > state.sync_alarm_ms)
}

/// The sync as `/readyz` and `/api/status` show it.
async fn sync_json(state: &AppState) -> Result<Value, StoreError> {
    let (backlog, oldest) = state.readers.with(Store::outbox_backlog).await?;
    let sync = &state.sync;
    let link = if !sync.configured.load(Ordering::Relaxed) {
        "not configured"
    } else if sync.connected.load(Ordering::Relaxed) {
        "connected"
    } else {
        "disconnected"
    };
    let last_error = sync
        .last_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(json!({
        "state": link,
        "backlog": backlog,
        "oldest_unsynced_ms": oldest,
        "alarm": sync_alarm(state, oldest),
        "last_error": last_error,
        "pushed": sync.pushed.load(Ordering::Relaxed),
        "reconciled": sync.reconciled.load(Ordering::Relaxed),
        "reference_version": sync.reference_version.load(Ordering::Relaxed),
    }))
}

/// Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> Response {
    let read = state.readers.with(|store| {
        Ok((
            store.counts()?,
            store.sequence_gaps()?.len(),
            store.last_event_seq()?,
            store.outbox_backlog()?,
        ))
    });
    let (counts, gaps, last_seq, (backlog, oldest)) = match read.await {
        Ok(read) => read,
        Err(error) => return internal(error),
    };
    let feed = &state.feed;
    let mut body = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            body,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed).to_string();
    metric(
        "edge_agent_feed_connected",
        "gauge",
        "1 while the kitchen feed is consuming from RabbitMQ.",
        u8::from(feed.connected.load(Ordering::Relaxed)).to_string(),
    );
    metric(
        "edge_agent_events_applied_total",
        "counter",
        "Order events applied to the store.",
        load(&feed.applied),
    );
    metric(
        "edge_agent_events_duplicate_total",
        "counter",
        "Order events received again and ignored.",
        load(&feed.duplicates),
    );
    metric(
        "edge_agent_events_rejected_total",
        "counter",
        "Undecodable or invalid messages dead-lettered.",
        load(&feed.rejected),
    );
    metric(
        "edge_agent_sequence_gaps_total",
        "counter",
        "Sequence gaps detected since start.",
        load(&feed.gaps),
    );
    metric(
        "edge_agent_sequence_gaps_open",
        "gauge",
        "Runs of store sequence numbers still missing.",
        gaps.to_string(),
    );
    metric(
        "edge_agent_open_orders",
        "gauge",
        "Open orders.",
        counts.0.to_string(),
    );
    metric(
        "edge_agent_batch_sessions_open",
        "gauge",
        "Batch sessions started and not completed.",
        counts.1.to_string(),
    );
    metric(
        "edge_agent_event_log_last_seq",
        "gauge",
        "Newest event-log sequence (the SSE id).",
        last_seq.to_string(),
    );
    let writes = &state.writer.stats;
    metric(
        "edge_agent_write_jobs_total",
        "counter",
        "Write transactions run by the store writer.",
        load(&writes.jobs),
    );
    metric(
        "edge_agent_write_seconds_total",
        "counter",
        "Time the store writer spent in write transactions.",
        format!(
            "{:.6}",
            writes.total_us.load(Ordering::Relaxed) as f64 / 1e6
        ),
    );
    metric(
        "edge_agent_write_seconds_max",
        "gauge",
        "Longest write transaction since start.",
        format!("{:.6}", writes.max_us.load(Ordering::Relaxed) as f64 / 1e6),
    );
    metric(
        "edge_agent_sse_clients",
        "gauge",
        "Open event streams.",
        state.streams.clients.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "edge_agent_sse_lagging_disconnects_total",
        "counter",
        "Event streams ended because the client fell too far behind.",
        load(&state.streams.lagging_disconnects),
    );
    let sync = &state.sync;
    metric(
        "edge_agent_sync_connected",
        "gauge",
        "1 while the last sync round with PostgreSQL succeeded.",
        u8::from(sync.connected.load(Ordering::Relaxed)).to_string(),
    );
    metric(
        "edge_agent_sync_backlog",
        "gauge",
        "Records in the outbox not yet in PostgreSQL.",
        backlog.to_string(),
    );
    metric(
        "edge_agent_sync_oldest_seconds",
        "gauge",
        "Age of the oldest record not yet in PostgreSQL (0 when none).",
        oldest
            .map_or(0, |at| (now_ms() - at).max(0) / 1000)
            .to_string(),
    );
    metric(
        "edge_agent_sync_alarm",
        "gauge",
        "1 while the oldest unsynced record is older than sync_alarm_minutes.",
        u8::from(sync_alarm(&state, oldest)).to_string(),
    );
    metric(
        "edge_agent_sync_pushed_total",
        "counter",
        "Records pushed to PostgreSQL (a record pushed again after a crash counts again).",
        load(&sync.pushed),
    );
    metric(
        "edge_agent_reconciled_total",
        "counter",
        "Order events the queue had missed, applied from PostgreSQL.",
        load(&sync.reconciled),
    );
    scanner_metrics(&mut body, &state.scanners);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// One series per scanner (names are plain, `[A-Za-z0-9._-]`: no label escaping needed).
fn scanner_metrics(body: &mut String, scanners: &Scanners) {
    let scanners = scanners.snapshot();
    let _ = writeln!(
        body,
        "# HELP edge_agent_scanner_connected 1 while the scanner's device is open.\n\
         # TYPE edge_agent_scanner_connected gauge"
    );
    for scanner in &scanners {
        let connected = u8::from(scanner.state == crate::scanner::Link::Connected);
        let _ = writeln!(
            body,
            "edge_agent_scanner_connected{{scanner=\"{}\"}} {connected}",
            scanner.name
        );
    }
    let _ = writeln!(
        body,
        "# HELP edge_agent_scanner_frames_total Frames read from the scanner, by what became of \
         them.\n# TYPE edge_agent_scanner_frames_total counter"
    );
    for scanner in &scanners {
        for (result, count) in [
            ("accepted", scanner.accepted),
            ("rejected", scanner.rejected),
            ("overlong", scanner.overlong),
            ("failed", scanner.failed),
        ] {
            let _ = writeln!(
                body,
                "edge_agent_scanner_frames_total{{scanner=\"{}\",result=\"{result}\"}} {count}",
                scanner.name
            );
        }
    }
}

/// The station display: one page, embedded in the binary, no CDN (works with the internet down).
async fn display() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../static/index.html"),
    )
        .into_response()
}

/// The kitchen's stations, plus `unassigned`.
async fn stations(State(state): State<AppState>) -> Response {
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

/// The display state as of one event-log sequence, for `station` or all stations; serialized
/// straight from these structs (a snapshot of hundreds of tickets as a `Value` tree costs
/// several times its text).
#[derive(serde::Serialize)]
struct View {
    #[serde(skip)]
    seq: i64,
    batches: Vec<Value>,
    orders: Vec<crate::store::Ticket>,
    upcoming: Vec<Value>,
}

/// The last `snapshot` event data made, shared by tablets connecting at the same log position
/// (after a Wi-Fi blip they all reconnect at once).
#[derive(Default)]
pub struct SnapshotCache {
    last: tokio::sync::Mutex<Option<CachedSnapshot>>,
}

struct CachedSnapshot {
    seq: i64,
    station: Option<String>,
    made: std::time::Instant,
    data: Arc<str>,
}

/// How long a snapshot may be reused (the scheduled-order horizon moves with the clock).
const SNAPSHOT_REUSE: Duration = Duration::from_secs(2);

/// The `snapshot` data for `station` and its log sequence.
async fn snapshot(state: &AppState, station: Option<&str>) -> Result<(i64, Arc<str>), StoreError> {
    let mut last = state.snapshots.last.lock().await;
    let newest = state.readers.with(Store::last_event_seq).await?;
    if let Some(cached) = last.as_ref()
        && cached.seq == newest
        && cached.station.as_deref() == station
        && cached.made.elapsed() < SNAPSHOT_REUSE
    {
        return Ok((cached.seq, cached.data.clone()));
    }
    let view = view(state, station).await?;
    let data: Arc<str> = serde_json::to_string(&view).unwrap_or_default().into();
    *last = Some(CachedSnapshot {
        seq: view.seq,
        station: station.map(str::to_owned),
        made: std::time::Instant::now(),
        data: data.clone(),
    });
    Ok((view.seq, data))
}

async fn view(state: &AppState, station: Option<&str>) -> Result<View, StoreError> {
    let StateSnapshot {
        seq,
        orders,
        tickets,
        open_sessions,
    } = state.readers.with(Store::state_snapshot).await?;
    let reference = state.reference.get();
    let board = batch::board(&orders, &reference, now_ms(), state.horizon_ms);
    let items: Vec<batch::BatchItem> = board
        .items
        .into_iter()
        .filter(|item| station.is_none_or(|s| s == item.station_id))
        .collect();
    let batches = batch_items_json(&reference, &items, &open_sessions);
    let orders: std::collections::HashMap<&str, &batch::Order> =
        orders.iter().map(|o| (o.order_id.as_str(), o)).collect();
    let orders: Vec<crate::store::Ticket> = tickets
        .into_iter()
        .filter_map(|mut ticket| {
            let order = orders.get(ticket.order_id.as_str())?;
            ticket.annotate(order, &reference);
            station
                .is_none_or(|s| ticket.stations.iter().any(|t| t == s))
                .then_some(ticket)
        })
        .collect();
    let upcoming = board
        .upcoming
        .iter()
        .map(|u| json!({"order_id": u.order_id, "fire_at_ms": u.fire_at_ms}))
        .collect();
    Ok(View {
        seq,
        batches,
        orders,
        upcoming,
    })
}

#[derive(Deserialize)]
struct StationQuery {
    station: Option<String>,
    state: Option<String>,
}

fn known_station(state: &AppState, station: &str) -> bool {
    station == UNASSIGNED_STATION || state.reference.get().station(station).is_some()
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

/// `GET /api/orders?state=open[&station=<id>]`: open tickets, each with the stations it needs,
/// where it was bumped and whether it is ready.
async fn orders(State(state): State<AppState>, Query(query): Query<StationQuery>) -> Response {
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
                orders: Vec<crate::store::Ticket>,
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
async fn batches(State(state): State<AppState>, Query(query): Query<StationQuery>) -> Response {
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
struct StartBody {
    quantity: Option<u32>,
    #[serde(default)]
    device: String,
}

/// `POST /api/batches/{station_id}/{item_id}/start` with `{"quantity": N, "device": "..."}`
/// (both optional; N defaults to the current count): a session id.
async fn start_batch(
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
async fn session(State(state): State<AppState>, Path(session_id): Path<String>) -> Response {
    match state.readers.with(|store| store.session(&session_id)).await {
        Ok(Some(session)) => Json(json!(session)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no session {session_id:?}")),
        Err(error) => internal(error),
    }
}

/// `POST /api/batch-sessions/{session_id}/complete`: its units go to the most urgent orders.
/// Idempotent: completing again answers the same session.
async fn complete_batch(State(state): State<AppState>, Path(session_id): Path<String>) -> Response {
    match state.writer.complete_batch(session_id.clone()).await {
        Ok(Some(session)) => Json(json!(session)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no session {session_id:?}")),
        Err(error) => internal(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanBody {
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
async fn scan(State(state): State<AppState>, body: Bytes) -> Response {
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
struct BumpQuery {
    station: Option<String>,
}

/// `POST /api/orders/{order_id}/bump[?station=<id>]`: the order is done at that station (all
/// stations without `station`). Idempotent.
async fn bump(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Query(query): Query<BumpQuery>,
) -> Response {
    change_bumps(&state, order_id, query.station, true).await
}

/// `POST /api/orders/{order_id}/recall[?station=<id>]`: undoes a bump. Idempotent.
async fn recall(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Query(query): Query<BumpQuery>,
) -> Response {
    change_bumps(&state, order_id, query.station, false).await
}

async fn change_bumps(
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

#[derive(Deserialize)]
struct EventsQuery {
    last_event_id: Option<i64>,
    station: Option<String>,
}

/// Where an event stream is: replaying the log, or following the live broadcast.
struct Cursor {
    /// The last log sequence examined.
    seq: i64,
    station: Option<String>,
    /// Bytes to send before reading on.
    queue: VecDeque<Bytes>,
    /// Subscribed once the replay reached the end of the log.
    live: Option<broadcast::Receiver<Arc<LoggedEvent>>>,
    replaying: bool,
    state: AppState,
    _client: ClientGuard,
}

/// Counts an open stream for `/metrics` while it lives.
struct ClientGuard(Arc<StreamStats>);

impl ClientGuard {
    fn new(stats: Arc<StreamStats>) -> Self {
        stats.clients.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An event's data, shared by every stream sending it rather than copied into each.
struct SharedEvent(Arc<LoggedEvent>);

impl AsRef<[u8]> for SharedEvent {
    fn as_ref(&self) -> &[u8] {
        self.0.data.as_bytes()
    }
}

/// A snapshot's data, shared by the tablets that connected at the same log position.
struct SharedSnapshot(Arc<str>);

impl AsRef<[u8]> for SharedSnapshot {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Queues one SSE event: `id:`, `event:`, the one-line JSON `data:` (never copied), blank line.
fn push_frame(queue: &mut VecDeque<Bytes>, seq: i64, kind: &str, data: Bytes) {
    queue.push_back(Bytes::from(format!("id: {seq}\nevent: {kind}\ndata: ")));
    queue.push_back(data);
    queue.push_back(Bytes::from_static(b"\n\n"));
}

/// An SSE comment line: keeps idle connections (and the proxies on the way) open.
const KEEP_ALIVE_FRAME: &[u8] = b":\n\n";

impl Cursor {
    fn take(&mut self, entry: Arc<LoggedEvent>) {
        self.seq = entry.seq;
        if entry.concerns(self.station.as_deref()) {
            let (seq, kind) = (entry.seq, entry.kind.clone());
            push_frame(
                &mut self.queue,
                seq,
                &kind,
                Bytes::from_owner(SharedEvent(entry)),
            );
        }
    }

    /// The next bytes for the client; `None` ends the stream.
    async fn next(mut self) -> Option<(Bytes, Self)> {
        loop {
            if let Some(bytes) = self.queue.pop_front() {
                return Some((bytes, self));
            }
            if self.replaying {
                let logged = self
                    .state
                    .readers
                    .with(|store| store.events_after(self.seq, REPLAY_CHUNK))
                    .await;
                let logged = match logged {
                    Ok(logged) => logged,
                    Err(error) => {
                        tracing::error!(%error, "event stream cannot read the log");
                        return None;
                    }
                };
                if logged.is_empty() {
                    // At the end of the log: subscribe, then read once more for what was
                    // committed in between (anything seen twice is skipped by sequence).
                    if self.live.is_none() {
                        self.live = Some(self.state.events.subscribe());
                    } else {
                        self.replaying = false;
                    }
                    continue;
                }
                for entry in logged {
                    self.take(Arc::new(entry));
                }
                continue;
            }
            let received = {
                let live = self.live.as_mut()?;
                tokio::select! {
                    received = live.recv() => Some(received),
                    () = tokio::time::sleep(KEEP_ALIVE) => None,
                }
            };
            let Some(received) = received else {
                return Some((Bytes::from_static(KEEP_ALIVE_FRAME), self));
            };
            match received {
                Ok(entry) if entry.seq <= self.seq => {}
                Ok(entry) if entry.seq == self.seq + 1 => self.take(entry),
                // Something between: read it from the log.
                Ok(_) => self.replaying = true,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.state
                        .streams
                        .lagging_disconnects
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        missed,
                        seq = self.seq,
                        "event stream fell behind, disconnecting it so it resumes from the log"
                    );
                    return None;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// `GET /orders/events[?station=<id>]`: the event log as Server-Sent Events. With
/// `Last-Event-ID` (header, or `?last_event_id=`) it replays everything after that id, then
/// continues live — no gap, no duplicate. Without it, or with an id older than the log keeps
/// (or unknown to this box), a `snapshot` of the full state comes first. A client that falls
/// behind the live broadcast is disconnected; it reconnects and replays from the log.
async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Response {
    let station = match station_filter(&state, query.station) {
        Ok(station) => station,
        Err(reason) => return error(StatusCode::NOT_FOUND, reason),
    };
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(query.last_event_id);
    let resumable = match last_event_id {
        None => None,
        Some(id) => {
            let bounds = state
                .readers
                .with(|store| Ok((store.event_log_bounds()?, store.last_event_seq()?)))
                .await;
            let ((oldest, _), newest) = match bounds {
                Ok(bounds) => bounds,
                Err(error) => return internal(error),
            };
            let missed = if oldest == 0 {
                id < newest
            } else {
                id < oldest - 1
            };
            (id >= 0 && !missed && id <= newest).then_some(id)
        }
    };
    let mut queue = VecDeque::new();
    let seq = match resumable {
        Some(id) => id,
        None => {
            let (seq, data) = match snapshot(&state, station.as_deref()).await {
                Ok(snapshot) => snapshot,
                Err(error) => return internal(error),
            };
            push_frame(
                &mut queue,
                seq,
                "snapshot",
                Bytes::from_owner(SharedSnapshot(data)),
            );
            seq
        }
    };
    let cursor = Cursor {
        seq,
        station,
        queue,
        live: None,
        replaying: true,
        _client: ClientGuard::new(state.streams.clone()),
        state: state.clone(),
    };
    let stream = futures_util::stream::unfold(cursor, Cursor::next)
        .map(Ok::<_, Infallible>)
        .take_until(state.token.clone().cancelled_owned());
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}
