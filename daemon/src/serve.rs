//! The HTTP server loop both services run instead of `axum::serve`, which starts hyper without a
//! timer (so hyper's header-read timeout is off) and accepts connections without limit.
//!
//! - **Connections are capped** (`max_connections`): past the cap the loop stops accepting and
//!   new connections wait in the kernel's backlog, costing no file descriptor, until one ends.
//! - **Header-read timeout**: a client must send a request's whole head within
//!   `header_read_timeout`, counted from when the server is ready to read it — on a fresh
//!   connection and between requests on a kept-alive one — so it is also the idle timeout. A
//!   slowloris client is cut off; a response that streams (SSE) is not affected.
//! - **Request timeout**: a handler (body read included) must produce its response head within
//!   `request_timeout`, or the client gets `408` and the handler is dropped.
//! - Each request carries `ConnectInfo<SocketAddr>` (the peer) and [`LocalAddr`] (the address
//!   the client connected to) in its extensions.
//! - On shutdown the loop stops accepting and asks every connection to finish its current
//!   request; the future ends when all connections have closed.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The address a connection was accepted on (the box's own address as the client sees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr(pub SocketAddr);

/// What a listener tolerates.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more wait in the backlog.
    pub max_connections: usize,
    /// Time allowed for a request's head, and for an idle kept-alive connection.
    pub header_read_timeout: Duration,
    /// Time allowed from a request's head to its response's head (body read included).
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Live connection count, for metrics.
#[derive(Debug, Default)]
pub struct ServeStats {
    pub open: std::sync::atomic::AtomicU64,
    pub accepted: std::sync::atomic::AtomicU64,
    pub timed_out: std::sync::atomic::AtomicU64,
    /// Connections closed because a request head (or the next one, on an idle kept-alive
    /// connection) did not arrive within `header_read_timeout`: slow clients, slowloris.
    pub header_timeouts: std::sync::atomic::AtomicU64,
}

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled, then waits for
/// the open connections to finish. Accept errors (out of file descriptors, say) are logged and
/// retried after a pause, never fatal.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stats: Arc<ServeStats>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let listening = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(64);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Events are small writes in a row: without TCP_NODELAY, Nagle and the client's delayed
        // ACK hold one back for 40 ms now and then.
        let _ = stream.set_nodelay(true);
        // The address this client reached (a listener on 0.0.0.0 has one per interface).
        let local = stream.local_addr().unwrap_or(listening);
        stats.accepted.fetch_add(1, Relaxed);
        stats.open.fetch_add(1, Relaxed);
        let router = router.clone();
        let service_stats = stats.clone();
        let service =
            hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(LocalAddr(local));
                let mut router = router.clone();
                let stats = service_stats.clone();
                async move {
                    let request = request.map(Body::new);
                    let call = tower_call(&mut router, request);
                    Ok::<_, Infallible>(
                        match tokio::time::timeout(limits.request_timeout, call).await {
                            Ok(response) => response,
                            Err(_) => {
                                stats.timed_out.fetch_add(1, Relaxed);
                                (StatusCode::REQUEST_TIMEOUT, "request timed out\n").into_response()
                            }
                        },
                    )
                }
            });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let shutdown = shutdown.clone();
        let stats = stats.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                if error.is_timeout() {
                    stats.header_timeouts.fetch_add(1, Relaxed);
                }
                // Timeouts, resets and malformed requests: the client's business, not an
                // incident.
                tracing::debug!(%error, "connection ended");
            }
            stats.open.fetch_sub(1, Relaxed);
            drop(slot);
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn tower_call(router: &mut Router, request: Request) -> Response {
    use tower_service::Service;
    match router.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
