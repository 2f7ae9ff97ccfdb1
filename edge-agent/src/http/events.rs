//! `/orders/events`: the event log as Server-Sent Events, replayed from the client's position,
//! then followed live.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use axum::{
    Extension,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast;

use kitchen_daemon::sync::LockExt;

use crate::{status::StreamStats, store::LoggedEvent};

use super::{AppState, error, guard::Caller, internal, station_filter, view::snapshot};

/// Event-log entries read per query while a client catches up.
const REPLAY_CHUNK: i64 = 256;

/// SSE keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The caps on live streams (overall and per device), and the revocations that end them.
pub struct StreamSlots {
    max: u32,
    per_device: u32,
    open: Arc<Mutex<HashMap<String, u32>>>,
    revoked: tokio::sync::watch::Sender<Vec<String>>,
}

/// A live stream's place under the caps, given back when the stream ends.
pub(super) struct StreamSlot {
    open: Arc<Mutex<HashMap<String, u32>>>,
    device: String,
}

impl StreamSlots {
    pub fn new(max: u32, per_device: u32) -> Self {
        Self {
            max,
            per_device,
            open: Arc::default(),
            revoked: tokio::sync::watch::Sender::new(Vec::new()),
        }
    }

    /// A place for a new stream of `device`, or why there is none.
    fn acquire(&self, device: &str) -> Result<StreamSlot, String> {
        let mut open = self.open.lock_or_recover();
        let total: u32 = open.values().sum();
        if total >= self.max {
            return Err(format!("the box serves {} live streams already", self.max));
        }
        let mine = open.entry(device.to_owned()).or_insert(0);
        if *mine >= self.per_device {
            return Err(format!(
                "this device has {} live streams open already",
                self.per_device
            ));
        }
        *mine += 1;
        Ok(StreamSlot {
            open: self.open.clone(),
            device: device.to_owned(),
        })
    }

    /// Ends the live streams of a revoked device.
    pub fn revoked(&self, device: &str) {
        self.revoked.send_modify(|ids| ids.push(device.to_owned()));
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock_or_recover();
        if let Some(count) = open.get_mut(&self.device) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.device);
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    last_event_id: Option<i64>,
    station: Option<String>,
    /// The station the display shows (it filters on the tablet): counted as that station's
    /// screen for the fallback printer, nothing else.
    screen: Option<String>,
}

/// Where an event stream is: replaying the log, or following the live broadcast.
pub(super) struct Cursor {
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
    _slot: StreamSlot,
    /// The device's token hash, checked again at every keep-alive (a revocation made on the
    /// console ends the stream then), and revocations made here, which end it at once.
    token_hash: String,
    device_id: String,
    revoked: tokio::sync::watch::Receiver<Vec<String>>,
}

/// Counts an open stream for `/metrics` while it lives, and per station for the fallback
/// printer (a station whose streams are all gone prints its tickets).
pub(super) struct ClientGuard(Arc<StreamStats>, Option<String>);

impl ClientGuard {
    fn new(stats: Arc<StreamStats>, station: Option<String>) -> Self {
        stats.clients.fetch_add(1, Ordering::Relaxed);
        if let Some(station) = &station {
            stats.station_opened(station, kitchen_daemon::clock::now_ms());
        }
        Self(stats, station)
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
        if let Some(station) = &self.1 {
            self.0
                .station_closed(station, kitchen_daemon::clock::now_ms());
        }
    }
}

/// An event's data, shared by every stream sending it rather than copied into each.
pub(super) struct SharedEvent(Arc<LoggedEvent>);

impl AsRef<[u8]> for SharedEvent {
    fn as_ref(&self) -> &[u8] {
        self.0.data.as_bytes()
    }
}

/// A snapshot's data, shared by the tablets that connected at the same log position.
pub(super) struct SharedSnapshot(Arc<str>);

impl AsRef<[u8]> for SharedSnapshot {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Queues one SSE event: `id:`, `event:`, the one-line JSON `data:` (never copied), blank line.
pub(super) fn push_frame(queue: &mut VecDeque<Bytes>, seq: i64, kind: &str, data: Bytes) {
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
                    changed = self.revoked.changed() => {
                        if changed.is_err() || self.revoked.borrow().contains(&self.device_id) {
                            return None;
                        }
                        continue;
                    }
                }
            };
            let Some(received) = received else {
                if !self.still_paired().await {
                    return None;
                }
                return Some((Bytes::from_static(KEEP_ALIVE_FRAME), self));
            };
            match received {
                Ok(entry) if entry.seq <= self.seq => {}
                Ok(entry) if entry.seq == self.seq + 1 => self.take(entry),
                // Something between: read it from the log.
                Ok(_) => self.replaying = true,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.state
                        .live
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

impl Cursor {
    async fn still_paired(&self) -> bool {
        let hash = self.token_hash.clone();
        let device = self
            .state
            .readers
            .with(move |store| store.device_by_token(&hash))
            .await;
        // A store that cannot be read right now ends nothing.
        !matches!(
            device,
            Ok(None)
                | Ok(Some(crate::device::Device {
                    revoked_at_ms: Some(_),
                    ..
                }))
        )
    }
}

/// `GET /orders/events[?station=<id>]`: the event log as Server-Sent Events. With
/// `Last-Event-ID` (header, or `?last_event_id=`) it replays everything after that id, then
/// continues live — no gap, no duplicate. Without it, or with an id older than the log keeps
/// (or unknown to this box), a `snapshot` of the full state comes first. A client that falls
/// behind the live broadcast is disconnected; it reconnects and replays from the log.
pub(super) async fn events(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Response {
    let slot = match state.access.streams.acquire(&device.id) {
        Ok(slot) => slot,
        Err(reason) => {
            state.live.streams.refused.fetch_add(1, Ordering::Relaxed);
            return error(StatusCode::TOO_MANY_REQUESTS, reason);
        }
    };
    let token_hash = super::guard::token(&headers)
        .map(crate::device::token_hash)
        .unwrap_or_default();
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
    // Whose screen this is, for the fallback printer: the stream's station, else the station
    // the display says it shows, else a cook device's own station.
    let screen = station
        .clone()
        .or(query.screen.filter(|s| super::known_station(&state, s)))
        .or_else(|| {
            (device.role == crate::device::Role::Cook)
                .then(|| device.station.clone())
                .flatten()
        });
    let client = ClientGuard::new(state.live.streams.clone(), screen);
    let cursor = Cursor {
        seq,
        station,
        queue,
        live: None,
        replaying: true,
        _client: client,
        _slot: slot,
        token_hash,
        device_id: device.id.clone(),
        revoked: state.access.streams.revoked.subscribe(),
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
