//! The edge agent on each kitchen box. So far: `/healthz`, the reference data (`reference`),
//! the pure batch-item calculation (`batch`) and the SQLite store that applies order events
//! exactly once (`store`); the kitchen feed, HTTP API, SSE and the station displays come with
//! the rest of the agent issue.

pub mod batch;
pub mod feed;
pub mod reference;
pub mod store;
pub mod writer;

use std::net::SocketAddr;

use anyhow::Context;
use axum::{Router, routing::get};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A bound agent, ready to run.
pub struct App {
    listener: TcpListener,
    token: CancellationToken,
}

impl App {
    pub async fn build(listen: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        Ok(Self {
            listener,
            token: CancellationToken::new(),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |addr| addr.port())
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let router = Router::new().route("/healthz", get(|| async { "ok" }));
        tracing::info!(listen = %self.listener.local_addr()?, "edge agent listening");
        axum::serve(self.listener, router)
            .with_graceful_shutdown(self.token.cancelled_owned())
            .await
            .context("http server failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_healthz() {
        let app = App::build(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("binds");
        let port = app.port();
        let token = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        let body = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .expect("answers")
            .text()
            .await
            .expect("body");
        assert_eq!(body, "ok");
        token.cancel();
        server.await.expect("joins").expect("stops cleanly");
    }
}
