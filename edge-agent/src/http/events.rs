//! `/orders/events`: the event log as Server-Sent Events, replayed from the client's position,
//! then followed live.

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::store::LoggedEvent;

use super::{AppState, error, internal, station_filter, view::snapshot};

/// Event-log entries read per query while a client catches up.
const REPLAY_CHUNK: i64 = 256;

/// SSE keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Counters of the live streams, for `/metrics`.
#[derive(Debug, Default)]
pub struct StreamStats {
    pub clients: AtomicI64,
    pub lagging_disconnects: AtomicU64,
}

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    last_event_id: Option<i64>,
    station: Option<String>,
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
}

/// Counts an open stream for `/metrics` while it lives.
pub(super) struct ClientGuard(Arc<StreamStats>);

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
pub(super) async fn events(
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
