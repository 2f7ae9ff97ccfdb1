//! The agent's housekeeping loop: scheduled orders entering the count, the clock's state, WAL
//! checkpoints, log trimming, and the systemd watchdog pulse that proves the writer still makes
//! progress.

use std::{path::PathBuf, sync::Arc, time::Duration};

use kitchen_daemon::sync::LockExt;
use tokio_util::sync::CancellationToken;

use crate::{status::ClockState, store, writer};

/// Where the clock's state is read from and kept.
pub struct Clock {
    pub state: Arc<ClockState>,
    pub timesync_dir: PathBuf,
}

/// How often the clock is checked for scheduled orders entering the count.
const TICK: Duration = Duration::from_secs(5);
/// How often the WAL is checkpointed into the database file: rarely, so that a page many
/// commits write (the event log's last page, the orders' pages) is copied
/// back once per interval rather than once per commit — on an SD card that halved the bytes
/// written per order (docs/benchmarks.md, "storage writes"). Durability does not depend on it:
/// every commit is in the WAL, fsynced, before it is acknowledged. The writer's own
/// `wal_autocheckpoint` (`Store::set_checkpoint_backstop`) bounds the WAL under a burst.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(300);
/// How often the event log and the de-duplication record are trimmed.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How long processed event ids are kept: far longer than any redelivery.
const PROCESSED_KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

/// Moves scheduled orders into the count when their time comes, tells the kitchen whether the
/// clock can be trusted (systemd-timesyncd's verdict, read every tick), checkpoints the WAL (off the
/// writer's thread, so no commit waits for it) and trims the log.
///
/// It is also the agent's pulse for systemd's watchdog: `WATCHDOG=1` goes out only after a
/// clock tick made the round trip through the store writer, so a wedged writer thread, a stuck
/// runtime or a stuck loop here stops the pings and systemd restarts the agent. The tick comes
/// at least twice per watchdog timeout. The tick goes ahead of queued writes, so a flood of LAN
/// writes cannot hold the pings back; a writer stuck in one transaction still does.
pub async fn run(
    writer: writer::StoreWriter,
    checkpointer: store::Store,
    clock: Clock,
    log_keep: i64,
    watchdog: Option<kitchen_daemon::notify::Watchdog>,
    token: CancellationToken,
) {
    let checkpointer = Arc::new(std::sync::Mutex::new(checkpointer));
    let tick_every = watchdog.map_or(TICK, |watchdog| watchdog.interval().min(TICK));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checkpoint = tokio::time::interval(CHECKPOINT_EVERY);
    checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = checkpoint.tick() => {
                let checkpointer = checkpointer.clone();
                let done = tokio::task::spawn_blocking(move || {
                    checkpointer.lock_or_recover().checkpoint()
                })
                .await;
                if let Ok(Err(error)) = done {
                    tracing::warn!(%error, "WAL checkpoint failed");
                }
                continue;
            }
            _ = tick.tick() => {}
            () = token.cancelled() => return,
        }
        let synchronised = kitchen_daemon::clock::synchronised(&clock.timesync_dir);
        if clock.state.set(synchronised) {
            match synchronised {
                Some(false) => tracing::warn!("{}", crate::status::clock::NOT_SYNCHRONISED),
                _ => tracing::info!(?synchronised, "the clock can be trusted"),
            }
        }
        match writer.tick(clock.state.trusted()).await {
            Ok(()) => {
                if let Some(watchdog) = &watchdog {
                    watchdog.ping();
                }
            }
            Err(error) => tracing::error!(%error, "cannot recalculate scheduled orders"),
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = tokio::time::Instant::now();
            match writer.prune(log_keep, PROCESSED_KEEP_MS).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "event log trimmed"),
                Err(error) => tracing::error!(%error, "cannot trim the event log"),
            }
        }
    }
}
