//! ESC/POS ticket printers: one task per configured printer sends its jobs from the print
//! queue (`task.rs`) over its link (`link.rs`: raw TCP or a device); `fallback.rs` watches the
//! tablets' streams and switches stations without a tablet to the fallback printer. What to
//! print is decided by the kitchen in the transaction of each change; nothing here can hold
//! the kitchen up.

mod fallback;
mod link;
mod task;

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use link::{Link, LinkError};

use crate::{
    config::Config,
    status::{Printers, StreamStats},
    store::Readers,
    writer::StoreWriter,
};

/// What the printer tasks share.
pub struct PrinterSetup<'a> {
    pub config: &'a Config,
    pub printers: &'a Arc<Printers>,
    pub streams: &'a Arc<StreamStats>,
    pub readers: &'a Arc<Readers>,
    pub writer: &'a StoreWriter,
    pub token: &'a CancellationToken,
}

/// Starts a task per printer, and the fallback watch when a printer is the fallback.
pub fn spawn(setup: PrinterSetup<'_>) -> Vec<JoinHandle<()>> {
    let config = setup.config;
    let mut tasks: Vec<JoinHandle<()>> = config
        .printers
        .iter()
        .enumerate()
        .map(|(index, printer)| {
            tokio::spawn(
                task::PrinterTask {
                    config: printer.clone(),
                    index,
                    printers: setup.printers.clone(),
                    readers: setup.readers.clone(),
                    writer: setup.writer.clone(),
                    jobs: setup.writer.print_jobs(),
                    retry: Duration::from_millis(config.printer_retry_ms),
                    timeout: Duration::from_millis(config.printer_timeout_ms),
                    token: setup.token.clone(),
                }
                .run(),
            )
        })
        .collect();
    if let Some(fallback) = config.printers.iter().find(|p| p.fallback) {
        tasks.push(tokio::spawn(
            fallback::FallbackWatch {
                printer: fallback.name.clone(),
                after: Duration::from_secs(u64::from(config.printer_fallback_secs)),
                streams: setup.streams.clone(),
                printers: setup.printers.clone(),
                readers: setup.readers.clone(),
                writer: setup.writer.clone(),
                token: setup.token.clone(),
            }
            .run(),
        ));
    }
    tasks
}
