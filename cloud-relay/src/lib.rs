//! The cloud relay: receives Otter webhooks, stores each event exactly once in PostgreSQL and
//! fans the orders out over RabbitMQ to the kitchens that serve each store.
//!
//! `App::build` does everything fallible (bind both listeners, connect, migrate);
//! `App::run_until_stopped` only runs. Tests and the benchmark drive the same `App`.

pub mod config;
pub mod db;
pub mod fleet;
pub mod http;
pub mod kitchens;
pub mod metrics;
pub mod otter;
pub mod otter_api;
pub mod publisher;
pub mod reports;
pub mod telemetry;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use kitchen_daemon::serve::{Limits, ServeStats, serve};
use tokio::{net::TcpListener, sync::Notify, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use config::Config;

/// Connections the admin listener serves at once (a scraper and an operator or two).
const ADMIN_MAX_CONNECTIONS: usize = 16;

/// A relay ready to run: listeners bound, database migrated, tasks not yet started.
pub struct App {
    config: Config,
    listener: TcpListener,
    admin_listener: TcpListener,
    pool: sqlx::PgPool,
    /// `RELAY_CA_FILE`'s bundle, read once at build for every link.
    ca_pem: Option<String>,
    token: CancellationToken,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let ca_pem = config.ca_pem()?;
        let pool = db::pool(
            &config.database_url,
            ca_pem.as_deref(),
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
        let admin_listener = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("cannot listen on {} (admin)", config.admin_listen))?;
        if !config.admin_listen.ip().is_loopback() {
            tracing::warn!(
                admin_listen = %config.admin_listen,
                "the admin listener (/readyz, /metrics) is not on loopback; keep it off the \
                 internet"
            );
        }
        if !config.otter_api.enabled() {
            tracing::warn!(
                "OTTER_API_URL is not set: the relay does not call Otter's API; the kitchens' \
                 calls (confirm, ready, 86, ...) wait pending in otter.callbacks until it is"
            );
        }
        if config.insecure_skip_signature {
            tracing::warn!(
                "INSECURE: --insecure-skip-signature is set; webhooks are accepted without \
                 checking X-HMAC-SHA256. Never run like this in production."
            );
        }
        Ok(Self {
            config,
            listener,
            admin_listener,
            pool,
            ca_pem,
            token: CancellationToken::new(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Where `/readyz` and `/metrics` are served.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .unwrap_or(self.config.admin_listen)
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
            admin_listener,
            pool,
            ca_pem,
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
                ca_pem: ca_pem.clone(),
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
        let otter_client =
            otter_api::client::OtterClient::new(&config.otter_api, metrics.otter.clone())
                .context("cannot build the Otter API client")?;
        // One LISTEN connection wakes both the stamper and (with the client on) the dispatcher.
        let stamp_wake = Arc::new(Notify::new());
        let mut wakes = vec![stamp_wake.clone()];
        if let Some(client) = otter_client {
            let dispatch_wake = Arc::new(Notify::new());
            wakes.push(dispatch_wake.clone());
            let dispatcher = otter_api::dispatch::Dispatcher::new(
                pool.clone(),
                client,
                config.otter_api.clone(),
                metrics.otter.clone(),
                dispatch_wake,
                token.clone(),
            );
            tracker.spawn(dispatcher.run());
        }
        tracker.spawn(otter_api::dispatch::listen(
            pool.clone(),
            wakes,
            token.clone(),
        ));
        tracker.spawn(otter_api::stamp::run(
            pool.clone(),
            stamp_wake,
            token.clone(),
        ));
        tracker.spawn(otter_api::alarm::run(
            pool.clone(),
            config.otter_api.confirm_alarm_after,
            config.otter_api.confirm_alarm_lookback,
            metrics.otter.clone(),
            token.clone(),
        ));
        // The fleet channel: the page's live feed always (boxes' heartbeats change rows too),
        // the subscriber and the commands only with MQTT_URL set.
        let (changes, _) = tokio::sync::broadcast::channel(fleet::events::CHANGES_CAPACITY);
        tracker.spawn(fleet::events::listen(
            pool.clone(),
            changes.clone(),
            token.clone(),
        ));
        // The bundle as read at build (a config built in code has not loaded it).
        let mqtt = config::MqttConfig {
            ca_pem: ca_pem.clone(),
            ..config.mqtt.clone()
        };
        let commander = if mqtt.enabled() {
            let subscriber = fleet::subscriber::Subscriber::new(
                pool.clone(),
                mqtt.clone(),
                config.database_timeout,
                metrics.fleet.clone(),
                token.clone(),
            );
            tracker.spawn(subscriber.run());
            Some(fleet::Commander::new(
                pool.clone(),
                mqtt,
                metrics.fleet.clone(),
            ))
        } else {
            tracing::info!("MQTT_URL is not set: no fleet channel (presence, telemetry, commands)");
            None
        };
        let fleet_state = fleet::page::FleetState {
            pool: pool.clone(),
            commander,
            changes,
            token: token.clone(),
        };
        let limiter = Arc::new(http::RejectionLimiter::new(http::RejectionLimits {
            burst: config.rejected_burst,
            per_minute: config.rejected_per_minute,
            max_clients: config.rejected_max_clients,
        }));
        let in_flight = http::InFlight::new(config.max_inflight_webhooks);
        let admin_state = http::AdminState {
            pool: pool.clone(),
            otter_api: Arc::new(config.otter_api.clone()),
            metrics: metrics.clone(),
            limiter: limiter.clone(),
            in_flight: in_flight.clone(),
        };
        let state = http::AppState {
            ingest,
            verifier: config
                .otter_webhook_secret
                .clone()
                .filter(|_| !config.insecure_skip_signature)
                .map(|current| {
                    otter::WebhookVerifier::new(
                        current,
                        config.otter_webhook_secret_previous.clone(),
                    )
                }),
            metrics: metrics.clone(),
            limiter,
            in_flight,
            enroller: kitchens::enrol::Enroller::from_config(pool.clone(), &config)?,
        };
        tracing::info!(
            listen = %listener.local_addr()?,
            admin_listen = %admin_listener.local_addr()?,
            previous_secret = config.otter_webhook_secret_previous.is_some(),
            "relay listening"
        );
        let public_limits = Limits {
            max_connections: config.max_connections,
            header_read_timeout: config.header_timeout,
            request_timeout: config.request_timeout,
        };
        let admin_limits = Limits {
            max_connections: ADMIN_MAX_CONNECTIONS,
            ..public_limits
        };
        let public = spawn_server(
            listener,
            http::public_router(state),
            public_limits,
            metrics.public_server.clone(),
            &token,
        );
        let admin = spawn_server(
            admin_listener,
            http::admin_router(admin_state, fleet_state),
            admin_limits,
            metrics.admin_server.clone(),
            &token,
        );
        let mut servers = tokio::spawn(async move {
            let (public, admin) = tokio::join!(public, admin);
            public
                .context("public http server panicked")?
                .context("public http server failed")?;
            admin
                .context("admin http server panicked")?
                .context("admin http server failed")
        });
        token.cancelled().await;
        tracing::info!("shutting down: finishing in-flight requests and publishes");
        let served = match tokio::time::timeout(config.shutdown_grace, &mut servers).await {
            Ok(result) => result.context("http servers panicked")?,
            Err(_) => {
                tracing::warn!("in-flight requests did not finish in time");
                servers.abort();
                Ok(())
            }
        };
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
        served
    }
}

/// Serves `router` on `listener` until `token` is cancelled; a server that ends by itself
/// cancels it, stopping the relay.
fn spawn_server(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    stats: Arc<ServeStats>,
    token: &CancellationToken,
) -> JoinHandle<std::io::Result<()>> {
    let token = token.clone();
    tokio::spawn(async move {
        let result = serve(listener, router, limits, stats, token.clone()).await;
        token.cancel();
        result
    })
}
