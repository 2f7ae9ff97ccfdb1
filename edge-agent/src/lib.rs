//! The edge agent on each kitchen box: consumes its kitchen's orders into SQLite (`feed`,
//! `writer`, `kitchen`, `store`), calculates what each station must make (`batch`, against
//! `reference`) and serves the kitchen LAN: the REST API, the live event stream and the station
//! display (`http`); serial barcode scanners feed it scans (`scanner`); head office sees and
//! commands it over MQTT (`fleet`). docs/architecture.md has the map.

pub mod batch;
pub mod config;
pub mod device;
pub mod enrol;
pub mod feed;
pub mod fleet;
mod housekeeping;
mod http;
pub mod kitchen;
pub mod label;
pub mod otter;
pub mod pairing;
pub mod pdf;
pub mod prep;
pub mod printer;
pub mod provision;
pub mod receipt;
pub mod record;
pub mod scan;
pub mod scanner;
pub mod status;
pub mod store;
pub mod sync;
pub mod writer;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use kitchen_proto::reference;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "edge-agent.db";

/// A bound agent, ready to run: store open, reference loaded, listener bound.
pub struct App {
    config: Config,
    links: config::Links,
    listener: TcpListener,
    writer: writer::StoreWriter,
    checkpointer: store::Store,
    state: http::AppState,
    token: CancellationToken,
    /// The fleet channel, when `mqtt_url` is set.
    fleet: Option<fleet::FleetConfig>,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let started = std::time::Instant::now();
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let path = config.data_dir.join(STORE_FILE);
        let mut store = store::Store::open(&path)
            .with_context(|| format!("cannot open the store {}", path.display()))?;
        store
            .set_checkpoint_backstop()
            .context("cannot configure the store")?;
        let checkpointer = store::Store::open(&path).context("cannot open the checkpointer")?;
        // Where the sync resumes: a crash since it was written only makes it push again.
        let pushed_through = store
            .pushed_through()
            .context("cannot read the sync's cursor")?;
        // A store made on this card that has not recovered the kitchen yet (docs/sync.md).
        let new_card = store
            .recovery_pending()
            .context("cannot read the store's recovery mark")?;
        let (reference, reference_status) = resolve_reference(&config, &mut store)?;
        let reference = Arc::new(reference);
        let mut kitchen = kitchen::Kitchen::open(
            store,
            reference.clone(),
            config.schedule_horizon_ms(),
            kitchen_daemon::clock::now_ms(),
        )
        .context("cannot load the open orders")?;
        kitchen.set_otter_settings(config.otter_settings().context("invalid day_end")?);
        kitchen.set_print_routes(config.print_routes());
        // Read before the first scan can arrive; housekeeping keeps it current.
        let clock = Arc::new(status::ClockState::default());
        clock.set(kitchen_daemon::clock::synchronised(&config.timesync_dir));
        if !clock.trusted() {
            tracing::warn!("{}", status::clock::NOT_SYNCHRONISED);
        }
        kitchen.set_clock_trusted(clock.trusted());
        let (events, _) = tokio::sync::broadcast::channel(config.sse_lag_limit.max(16) as usize);
        let writer = writer::StoreWriter::spawn(kitchen, events.clone())
            .context("cannot start the store writer")?;
        let readers = store::Readers::new(path.clone());
        readers
            .with(|_| Ok(()))
            .await
            .context("cannot open a store reader")?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let token = CancellationToken::new();
        let scanners = Arc::new(status::Scanners::new(
            &config.scanners,
            kitchen_daemon::clock::now_ms(),
        ));
        for (index, scanner) in config.scanners.iter().enumerate() {
            if let Some(station) = scanner.role.station()
                && station != reference::UNASSIGNED_STATION
                && reference.station(station).is_none()
            {
                // Not fatal: the reference may be missing or refused today, and a kitchen must
                // not stop over menu data. The scans are recorded, as rejected.
                tracing::warn!(scanner = %scanner.name, %station,
                    "scanner's station is not in the reference data: its scans will be rejected");
                scanners.warn(
                    index,
                    format!("unknown station {station:?}: scans are rejected"),
                );
            }
        }
        // Read now so a bad file or credential stops the start with the reason. A link the
        // TLS rule refuses does not: the kitchen serves the LAN without it, and /api/status and
        // the displays say why (as for a refused kitchen.toml).
        let links = config.links().context("cannot read the database URL")?;
        let refused = refused_links(&config, &links);
        let fleet = match config
            .mqtt_target()
            .context("cannot read the MQTT settings")?
        {
            Some(target) if refused.fleet.is_none() => Some(fleet::FleetConfig {
                // The bundle was parsed with the links: only a failure of rustls itself is left.
                tls: target
                    .tls
                    .then(|| kitchen_daemon::links::tls_client_config(links.ca_pem().as_deref()))
                    .transpose()
                    .map_err(|reason| anyhow::anyhow!("mqtt_url: {reason}"))?,
                target,
                kitchen_id: config.kitchen_id.clone(),
                identity: fleet::Identity {
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    boot_id: fleet::boot_id(),
                },
                data_dir: config.data_dir.clone(),
                started,
            }),
            _ => None,
        };
        let live = status::Live {
            kitchen_id: config.kitchen_id.clone(),
            provisioned: config.provisioned(),
            provision_error: read_provision_error(&config),
            reference: Arc::new(status::ReferenceCell::new(reference, reference_status)),
            feed: Arc::new(status::FeedStats::default()),
            sync: Arc::new(status::SyncStats {
                pushed_through: pushed_through.into(),
                // Only with a sync to recover through: without one the mark waits.
                recovery_pending: (new_card
                    && config.provisioned()
                    && matches!(links.database, Some(Ok(_))))
                .into(),
                ..Default::default()
            }),
            sync_alarm_ms: i64::from(config.sync_alarm_minutes) * 60_000,
            scanners,
            streams: Arc::default(),
            mqtt: Arc::default(),
            kick: Arc::default(),
            clock,
            refused: Arc::new(refused),
            printers: Arc::new(status::Printers::new(
                &config.printers,
                kitchen_daemon::clock::now_ms(),
            )),
        };
        let state = http::AppState {
            readers: Arc::new(readers),
            live,
            events,
            token: token.clone(),
            writer: writer.clone(),
            horizon_ms: config.schedule_horizon_ms(),
            snapshots: Arc::default(),
            access: Arc::new(http::Access::new(&config)),
            connections: Arc::default(),
        };
        Ok(Self {
            config,
            links,
            listener,
            writer,
            checkpointer,
            state,
            token,
            fleet,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |addr| addr.port())
    }

    /// The LAN router, for driving the agent in process (fuzzing); requests need the same
    /// tokens as on the network.
    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            config,
            links,
            listener,
            writer,
            checkpointer,
            state,
            token,
            fleet,
        } = self;
        let feed = if config.provisioned() && state.live.refused.feed.is_some() {
            None
        } else if config.provisioned() {
            let feed_config = feed::FeedConfig {
                amqp_url: config.amqp_url.clone(),
                kitchen_id: config.kitchen_id.clone(),
                prefetch: config.prefetch,
                timeout: config.amqp_timeout(),
                ca_pem: links.ca_pem(),
            };
            let feed = feed::Feed::new(
                feed_config,
                writer.clone(),
                state.live.feed.clone(),
                token.clone(),
            )
            .hold_for(state.live.sync.clone());
            Some(tokio::spawn(feed.run()))
        } else {
            tracing::warn!(
                "not provisioned (KITCHEN_ID and STORE_IDS unset): serving the LAN from SQLite only"
            );
            None
        };
        let sync = match (links.database, config.provisioned()) {
            (Some(Ok(options)), true) => {
                let sync = sync::SyncTask {
                    kitchen_id: config.kitchen_id.clone(),
                    agent_version: env!("CARGO_PKG_VERSION").to_owned(),
                    pool: sync::pool(options),
                    store_path: config.data_dir.join(STORE_FILE),
                    writer: writer.clone(),
                    feed: state.live.feed.clone(),
                    stats: state.live.sync.clone(),
                    reference: state.live.reference.clone(),
                    push_limit: i64::from(config.sync_batch),
                    reference_poll: Duration::from_secs(u64::from(config.reference_poll_secs)),
                    reconcile_every: Duration::from_secs(u64::from(config.reconcile_secs)),
                    kick: state.live.kick.clone(),
                    token: token.clone(),
                };
                Some(tokio::spawn(sync.run()))
            }
            (Some(Err(_)), true) => None,
            (Some(_), false) => {
                tracing::warn!("not provisioned: not syncing with postgresql");
                None
            }
            (None, _) => {
                tracing::warn!(
                    "no database_url: records wait in the event log until one is configured"
                );
                None
            }
        };
        let scanner_tasks = scanner::spawn(
            &config.scanners,
            config.scanner_retry(),
            &writer,
            &state.live.scanners,
            &token,
        );
        let printer_tasks = printer::spawn(printer::PrinterSetup {
            config: &config,
            printers: &state.live.printers,
            streams: &state.live.streams,
            readers: &state.readers,
            writer: &writer,
            token: &token,
        });
        // The fleet channel: head office's view of the box; the kitchen never waits on it.
        let fleet = fleet.map(|config| {
            tokio::spawn(
                fleet::Fleet {
                    config,
                    live: state.live.clone(),
                    readers: state.readers.clone(),
                    token: token.clone(),
                }
                .run(),
            )
        });
        let housekeeping = tokio::spawn(housekeeping::run(
            writer.clone(),
            checkpointer,
            housekeeping::Clock {
                state: state.live.clock.clone(),
                timesync_dir: config.timesync_dir.clone(),
            },
            i64::from(config.event_log_keep),
            kitchen_daemon::notify::Watchdog::from_env(),
            token.clone(),
        ));
        tracing::info!(listen = %listener.local_addr()?, kitchen_id = %config.kitchen_id,
            "edge agent listening");
        let connections = state.connections.clone();
        kitchen_daemon::serve::serve(
            listener,
            http::router(state),
            config.serve_limits(),
            connections,
            token.clone(),
        )
        .await
        .context("http server failed")?;
        token.cancel();
        if let Some(feed) = feed {
            let _ = tokio::time::timeout(Duration::from_secs(5), feed).await;
        }
        let _ = housekeeping.await;
        if let Some(sync) = sync {
            let _ = tokio::time::timeout(Duration::from_secs(5), sync).await;
        }
        for task in scanner_tasks.into_iter().chain(printer_tasks) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Some(fleet) = fleet {
            let _ = tokio::time::timeout(Duration::from_secs(5), fleet).await;
        }
        Ok(())
    }
}

/// The reference data to start with: the file when it is valid (and then cached in SQLite);
/// when it is refused or there is none, the cached copy. A bad file must not stop the kitchen:
/// orders still arrive, and /readyz, /api/status and the displays say what is wrong.
fn resolve_reference(
    config: &Config,
    store: &mut store::Store,
) -> anyhow::Result<(reference::Reference, status::ReferenceStatus)> {
    use status::ReferenceStatus;
    let cached = store
        .cached_reference()
        .context("cannot read the cached reference data")?;
    let Some(file) = &config.reference_file else {
        return Ok(match cached {
            Some((reference, source, at)) => {
                tracing::info!(%source, "no REFERENCE_FILE: using the cached reference data");
                (reference, ReferenceStatus::Cached { at_ms: at })
            }
            None => {
                tracing::warn!("no REFERENCE_FILE: every order line counts as unassigned");
                (reference::Reference::default(), ReferenceStatus::None)
            }
        });
    };
    match reference::Reference::load(file) {
        Ok(reference) => {
            let saved = store.save_reference(
                &reference,
                &file.display().to_string(),
                kitchen_daemon::clock::now_ms(),
            );
            match saved {
                Ok(()) => {}
                // The copy is only the fallback for a file gone bad: a full disk must not keep
                // the kitchen dark when the file itself is fine (found by the chaos suite).
                Err(error) if error.is_disk_full() => {
                    tracing::error!(%error, "the disk is full: the reference file is used without caching it");
                }
                Err(error) => return Err(error).context("cannot cache the reference data"),
            }
            Ok((reference, ReferenceStatus::Loaded))
        }
        Err(error) => {
            let reason = error.to_string();
            Ok(match cached {
                Some((reference, _, at)) => {
                    tracing::error!(%reason, "reference file refused: using the cached copy");
                    (
                        reference,
                        ReferenceStatus::Refused {
                            reason,
                            cached_at_ms: Some(at),
                        },
                    )
                }
                None => {
                    tracing::error!(%reason,
                        "reference file refused and nothing cached: every order line counts as unassigned");
                    (
                        reference::Reference::default(),
                        ReferenceStatus::Refused {
                            reason,
                            cached_at_ms: None,
                        },
                    )
                }
            })
        }
    }
}

/// The links the TLS rule refuses (the broker's only matters once provisioned), each logged
/// once.
fn refused_links(config: &Config, links: &config::Links) -> status::RefusedLinks {
    fn refusal<T>(link: Option<&Result<T, String>>) -> Option<String> {
        link.and_then(|l| l.as_ref().err().cloned())
    }
    let refused = status::RefusedLinks {
        feed: refusal(Some(&links.amqp)).filter(|_| config.provisioned()),
        sync: refusal(links.database.as_ref()),
        fleet: refusal(links.mqtt.as_ref()),
    };
    for reason in refused.reasons() {
        tracing::error!(%reason, "link refused: the agent runs without it");
    }
    refused
}

/// Why the last `kitchen.toml` was refused, if `edge-agent provision` recorded a reason.
fn read_provision_error(config: &Config) -> Option<String> {
    let text = std::fs::read_to_string(config.provision_error_file.as_ref()?).ok()?;
    let reason = text.trim();
    if reason.is_empty() {
        return None;
    }
    tracing::error!(%reason, "the kitchen.toml on the boot partition was refused");
    Some(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{Config, resolve_reference, status::ReferenceStatus, store::Store};

    /// Found by the chaos suite (docs/reliability.md): an agent restarted while its disk was
    /// full stopped at once (`cannot cache the reference data`) and was restarted again and
    /// again, the kitchen's screens dark until there was room. The file is valid: it is used.
    #[test]
    fn a_full_disk_does_not_stop_the_agent_starting_from_its_reference_file() {
        let dir = std::env::temp_dir().join(format!("agent-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("reference.toml");
        // Enough stations that caching them needs pages the file does not have yet.
        let stations: String = (0..200)
            .map(|n| format!("[[stations]]\nid = \"station-{n}\"\nname = \"Station {n}\"\n"))
            .collect();
        std::fs::write(&file, stations).expect("reference file");
        let mut store = Store::open_in_memory().expect("opens");
        // A full disk as SQLite meets it: the file may not grow by a page (SQLITE_FULL, the
        // error ENOSPC gives).
        {
            let tx = store.transaction().expect("tx");
            let pages: i64 = tx
                .query_row("PRAGMA page_count", [], |row| row.get(0))
                .expect("page count");
            tx.pragma_update(None, "max_page_count", pages)
                .expect("max_page_count");
            tx.commit().expect("commit");
        }
        let config = Config {
            reference_file: Some(file),
            ..Config::default()
        };
        let (reference, status) = resolve_reference(&config, &mut store).expect("starts");
        assert!(matches!(status, ReferenceStatus::Loaded), "{status:?}");
        assert_eq!(reference.stations.len(), 200);
        assert_eq!(reference.stations[199].id, "station-199");
        // And nothing was cached: the disk really was full.
        assert!(store.cached_reference().expect("reads").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
