//! The edge agent on each kitchen box: consumes its kitchen's orders into SQLite and serves the
//! kitchen LAN. So far: the feed (`feed`, `writer`, `store`), the batch-item calculation
//! (`batch`, `reference`) and the HTTP endpoints in `http`; SSE and the station display come
//! with the rest of the agent issue.

pub mod batch;
pub mod config;
pub mod feed;
mod http;
pub mod reference;
pub mod store;
pub mod writer;

use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "edge-agent.db";

/// A bound agent, ready to run: store open, reference loaded, listener bound.
pub struct App {
    config: Config,
    listener: TcpListener,
    writer: writer::StoreWriter,
    state: http::AppState,
    token: CancellationToken,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let path = config.data_dir.join(STORE_FILE);
        let store = store::Store::open(&path)
            .with_context(|| format!("cannot open the store {}", path.display()))?;
        let last_seq = store.last_event_seq()?;
        let (log_seq, log_updates) = tokio::sync::watch::channel(last_seq);
        let writer =
            writer::StoreWriter::spawn(store, log_seq).context("cannot start the store writer")?;
        let reader = store::Store::open(&path).context("cannot open a store reader")?;
        let reference = match &config.reference_file {
            Some(file) => reference::Reference::load(file)?,
            None => {
                tracing::warn!("no REFERENCE_FILE: every order line counts as unassigned");
                reference::Reference::default()
            }
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let token = CancellationToken::new();
        let state = http::AppState {
            reader: Arc::new(Mutex::new(reader)),
            log_updates,
            token: token.clone(),
            writer: writer.clone(),
            reference: Arc::new(reference),
            feed: Arc::new(feed::FeedStats::default()),
            provisioned: config.provisioned(),
        };
        Ok(Self {
            config,
            listener,
            writer,
            state,
            token,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |addr| addr.port())
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            config,
            listener,
            writer,
            state,
            token,
        } = self;
        let feed = if config.provisioned() {
            let feed_config = feed::FeedConfig {
                amqp_url: config.amqp_url.clone(),
                kitchen_id: config.kitchen_id.clone(),
                store_ids: config.store_ids.clone(),
                exchange: config.order_exchange.clone(),
                prefetch: config.prefetch,
                timeout: config.amqp_timeout(),
                delivery_limit: 20,
            };
            let feed = feed::Feed::new(feed_config, writer, state.feed.clone(), token.clone());
            Some(tokio::spawn(feed.run()))
        } else {
            tracing::warn!(
                "not provisioned (KITCHEN_ID and STORE_IDS unset): serving the LAN from SQLite only"
            );
            None
        };
        tracing::info!(listen = %listener.local_addr()?, kitchen_id = %config.kitchen_id,
            "edge agent listening");
        axum::serve(listener, http::router(state))
            .with_graceful_shutdown(token.clone().cancelled_owned())
            .await
            .context("http server failed")?;
        token.cancel();
        if let Some(feed) = feed {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), feed).await;
        }
        Ok(())
    }
}
