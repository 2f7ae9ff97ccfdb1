//! Serial barcode scanners: one task per `[[scanners]]` entry reads its device (`task`), cuts
//! the bytes into frames (`frame`, pure) and hands each frame to the store writer as a scan,
//! in order. Each task keeps its scanner's state in `status::Scanners`, which `/readyz`,
//! `/api/status`, `/metrics` and the display read. docs/scanners.md describes it all.

pub mod frame;
mod task;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use crate::config::{ScannerConfig, Suffix};

use crate::{status::Scanners, writer::StoreWriter};

/// Starts a task per scanner; each ends when `token` is cancelled. `retry` is how long a
/// scanner waits before reopening a device that is missing or went away.
pub fn spawn(
    configs: &[ScannerConfig],
    retry: Duration,
    writer: &StoreWriter,
    scanners: &std::sync::Arc<Scanners>,
    token: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    configs
        .iter()
        .enumerate()
        .map(|(index, config)| {
            tokio::spawn(task::run(task::Scanner {
                index,
                config: config.clone(),
                retry,
                writer: writer.clone(),
                scanners: scanners.clone(),
                token: token.clone(),
            }))
        })
        .collect()
}
