//! The fleet page's live feed. One task per relay LISTENs on the `fleet` channel (every relay
//! receives every kitchen's change, whichever relay wrote it) and broadcasts the kitchen ids;
//! `GET /fleet/events` is Server-Sent Events: a `snapshot` of every row, then one `kitchen`
//! event per changed kitchen (its row), keep-alive comments, ended on shutdown.

use std::{convert::Infallible, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::header,
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;
use kitchen_daemon::backoff::Backoff;
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::store;

/// Sent on the broadcast after the listener reconnected: changes may have been missed.
pub const RESYNC: &str = "*";
/// SSE keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Changed kitchen ids a slow page may fall behind by before it is sent a full snapshot.
pub const CHANGES_CAPACITY: usize = 1024;
/// Longest a page's query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// LISTENs on `fleet` until cancelled, reconnecting with backoff, and broadcasts each kitchen id
/// (and `RESYNC` after a reconnect).
pub async fn listen(pool: PgPool, changes: broadcast::Sender<String>, token: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut first = true;
    while !token.is_cancelled() {
        let connect = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(super::CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            connected = tokio::time::timeout(QUERY_TIMEOUT, connect) => connected,
            () = token.cancelled() => break,
        };
        match connected {
            Ok(Ok(mut listener)) => {
                backoff.reset();
                if !first {
                    let _ = changes.send(RESYNC.to_owned());
                }
                first = false;
                loop {
                    let notification = tokio::select! {
                        notification = listener.try_recv() => notification,
                        () = token.cancelled() => return,
                    };
                    match notification {
                        Ok(Some(notification)) => {
                            let _ = changes.send(notification.payload().to_owned());
                        }
                        // The connection was lost and is made again: changes may be missed.
                        Ok(None) => {
                            let _ = changes.send(RESYNC.to_owned());
                        }
                        Err(error) => {
                            tracing::warn!(%error, "fleet page: lost the LISTEN connection");
                            break;
                        }
                    }
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "fleet page: cannot LISTEN"),
            Err(_) => tracing::warn!("fleet page: timed out connecting to LISTEN"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = token.cancelled() => break,
        }
    }
}

/// One SSE frame; `data` is JSON on one line (serde_json never writes a raw newline).
fn frame(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

struct Feed {
    pool: PgPool,
    changes: broadcast::Receiver<String>,
    /// The snapshot goes first.
    snapshot_due: bool,
}

impl Feed {
    async fn next(mut self) -> Option<(Bytes, Self)> {
        loop {
            if self.snapshot_due {
                match tokio::time::timeout(QUERY_TIMEOUT, store::rows(&self.pool)).await {
                    Ok(Ok(rows)) => {
                        self.snapshot_due = false;
                        let data = frame("snapshot", &serde_json::Value::Array(rows));
                        return Some((data, self));
                    }
                    _ => {
                        // PostgreSQL away: tell the page, try again shortly.
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        return Some((Bytes::from_static(b": database unavailable\n\n"), self));
                    }
                }
            }
            let kitchen = match tokio::time::timeout(KEEP_ALIVE, self.changes.recv()).await {
                Err(_) => return Some((Bytes::from_static(b": keep-alive\n\n"), self)),
                Ok(Ok(kitchen)) => kitchen,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    self.snapshot_due = true;
                    continue;
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            };
            if kitchen == RESYNC {
                self.snapshot_due = true;
                continue;
            }
            match tokio::time::timeout(QUERY_TIMEOUT, store::row(&self.pool, &kitchen)).await {
                Ok(Ok(Some(row))) => return Some((frame("kitchen", &row), self)),
                Ok(Ok(None)) => continue,
                _ => {
                    self.snapshot_due = true;
                    continue;
                }
            }
        }
    }
}

/// The SSE response for one page.
pub fn stream(
    pool: PgPool,
    changes: &broadcast::Sender<String>,
    token: CancellationToken,
) -> Response {
    let feed = Feed {
        pool,
        changes: changes.subscribe(),
        snapshot_due: true,
    };
    let stream = futures_util::stream::unfold(feed, Feed::next)
        .map(Ok::<_, Infallible>)
        .take_until(token.cancelled_owned());
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache, no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
