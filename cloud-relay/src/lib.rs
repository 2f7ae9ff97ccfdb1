//! The cloud relay: receives Otter webhooks, stores each event exactly once in PostgreSQL and
//! fans the orders out over RabbitMQ to the kitchens that serve each store.
//!
//! `App::build` does everything fallible (bind, connect, migrate); `App::run_until_stopped`
//! only runs. Tests and the benchmark drive the same `App`.

pub mod config;
pub mod db;
pub mod http;
pub mod kitchens;
pub mod metrics;
pub mod otter;
pub mod publisher;
pub mod telemetry;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use config::Config;

/// A relay ready to run: listener bound, database migrated, tasks not yet started.
pub struct App {
    config: Config,
    listener: TcpListener,
    pool: sqlx::PgPool,
    token: CancellationToken,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = db::pool(
            &config.database_url,
            config.database_pool_size,
            config.database_timeout,
        )
        .context("invalid DATABASE_URL")?;
        db::MIGRATOR
            .run(&pool)
            .await
            .context("cannot run migrations on DATABASE_URL")?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        if config.insecure_skip_signature {
            tracing::warn!(
                "INSECURE: --insecure-skip-signature is set; webhooks are accepted without \
                 checking X-HMAC-SHA256. Never run like this in production."
            );
        }
        Ok(Self {
            config,
            listener,
            pool,
            token: CancellationToken::new(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Cancelling this token stops the relay gracefully (what SIGTERM does).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Serves until the shutdown token is cancelled, then stops accepting, lets in-flight
    /// requests and the current publish finish (bounded by `shutdown_grace`) and returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            config,
            listener,
            pool,
            token,
        } = self;
        let tracker = TaskTracker::new();
        let metrics = Arc::new(metrics::Metrics::default());
        let stored = Arc::new(Notify::new());
        let ingest = db::Ingest::start(
            pool.clone(),
            config.ingest_writers,
            config.ingest_batch_max,
            config.ingest_timeout,
            stored.clone(),
            metrics.clone(),
            &tracker,
        );
        let publisher = publisher::Publisher::new(
            pool.clone(),
            publisher::PublisherConfig {
                amqp_url: config.amqp_url.clone(),
                order_exchange: config.order_exchange.clone(),
                raw_events_exchange: config.raw_events_exchange.clone(),
                timeout: config.amqp_timeout,
                batch_max: config.publish_batch_max,
            },
            stored,
            metrics.clone(),
            token.clone(),
        );
        tracker.spawn(publisher.run());
        let state = http::AppState {
            pool: pool.clone(),
            ingest,
            signer: config
                .otter_webhook_secret
                .clone()
                .filter(|_| !config.insecure_skip_signature)
                .map(otter::WebhookSigner::new),
            metrics,
        };
        tracing::info!(listen = %listener.local_addr()?, "relay listening");
        let server = axum::serve(listener, http::router(state))
            .with_graceful_shutdown(token.clone().cancelled_owned());
        let mut server = tokio::spawn(async move { server.await });
        tokio::select! {
            result = &mut server => {
                // The server only ends by itself on an accept error.
                token.cancel();
                result.context("http server panicked")?.context("http server failed")?;
            }
            () = token.cancelled() => {
                tracing::info!("shutting down: finishing in-flight requests and publishes");
                match tokio::time::timeout(config.shutdown_grace, &mut server).await {
                    Ok(result) => result.context("http server panicked")?.context("http server failed")?,
                    Err(_) => {
                        tracing::warn!("in-flight requests did not finish in time");
                        server.abort();
                    }
                }
            }
        }
        // The router (and with it every Ingest sender) is gone: the writers drain and exit.
        tracker.close();
        if tokio::time::timeout(config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop in time");
        }
        pool.close().await;
        tracing::info!("relay stopped");
        Ok(())
    }
}
