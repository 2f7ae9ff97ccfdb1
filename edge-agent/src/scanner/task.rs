//! One scanner's task: open the device, read it, frame the bytes and record each frame as a
//! scan through the store writer, one after the other; when the device is missing or goes
//! away, retry until it is back. Nothing the scanner sends can stop it or the agent: reads go
//! into a fixed buffer, frames are cut at `MAX_FRAME_LEN`, and every error is a state, not a
//! panic.

use std::{sync::Arc, time::Duration};

use kitchen_daemon::clock::now_ms;
use tokio::{io::AsyncReadExt, time::Instant};
use tokio_serial::SerialStream;
use tokio_util::sync::CancellationToken;

use super::{
    ScannerConfig, Suffix,
    frame::{Frame, Framer},
};
use crate::{
    status::{Link, Scanners},
    writer::{StoreWriter, WriteError},
};

/// Bytes read at once. A scanner sends tens of bytes per scan; a burst fills it in turn.
const READ_BUFFER: usize = 1024;

pub(super) struct Scanner {
    pub index: usize,
    pub config: ScannerConfig,
    pub retry: Duration,
    pub writer: StoreWriter,
    pub scanners: Arc<Scanners>,
    pub token: CancellationToken,
}

/// Why reading stopped.
enum Ended {
    /// The agent is shutting down.
    Cancelled,
    /// The device failed or went away: reopen it.
    Gone(String),
}

pub(super) async fn run(scanner: Scanner) {
    let name = scanner.config.name.as_str();
    let device = scanner.config.device.display().to_string();
    loop {
        match open(&scanner.config) {
            Ok(port) => {
                scanner
                    .scanners
                    .set_link(scanner.index, Link::Connected, None, now_ms());
                tracing::info!(scanner = name, %device, "scanner connected");
                match scanner.read(port).await {
                    Ended::Cancelled => return,
                    Ended::Gone(reason) => {
                        tracing::warn!(scanner = name, %device, %reason, "scanner disconnected");
                        scanner.scanners.set_link(
                            scanner.index,
                            Link::Disconnected,
                            Some(reason),
                            now_ms(),
                        );
                    }
                }
            }
            Err(reason) => {
                let changed = scanner.scanners.set_link(
                    scanner.index,
                    Link::Missing,
                    Some(reason.clone()),
                    now_ms(),
                );
                if changed {
                    tracing::warn!(scanner = name, %device, %reason,
                        "scanner missing; retrying every {:?}", scanner.retry);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(scanner.retry) => {}
            () = scanner.token.cancelled() => return,
        }
    }
}

/// Opens the device at its configured path (following a symlink to wherever it points now),
/// raw, 8N1, at the configured baud, for exclusive use.
fn open(config: &ScannerConfig) -> Result<SerialStream, String> {
    let builder = tokio_serial::new(config.device.to_string_lossy(), config.baud);
    SerialStream::open(&builder).map_err(|error| format!("cannot open: {error}"))
}

impl Scanner {
    /// Reads until the device goes away or the agent stops; each frame is recorded before the
    /// next read, so scans are recorded in the order scanned.
    async fn read(&self, mut port: SerialStream) -> Ended {
        let config = &self.config;
        let prefix = config.prefix.as_deref().unwrap_or_default();
        let mut framer = Framer::new(config.suffix, prefix.as_bytes());
        let mut buffer = [0u8; READ_BUFFER];
        let mut frames = Vec::new();
        let idle = Duration::from_millis(config.idle_ms);
        // When the frame held ends for quiet (the `none` suffix only).
        let mut quiet_at: Option<Instant> = None;
        loop {
            let quiet = async {
                match quiet_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = self.token.cancelled() => return Ended::Cancelled,
                () = quiet => {
                    quiet_at = None;
                    frames.extend(framer.flush());
                }
                read = port.read(&mut buffer) => match read {
                    Ok(0) => return Ended::Gone("end of file (hung up)".into()),
                    Ok(n) => {
                        framer.push(&buffer[..n], &mut frames);
                        quiet_at = (config.suffix == Suffix::None && framer.pending())
                            .then(|| Instant::now() + idle);
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(error) => return Ended::Gone(format!("read failed: {error}")),
                },
            }
            for frame in frames.drain(..) {
                if let Err(ended) = self.record(frame).await {
                    return ended;
                }
            }
        }
    }

    /// Records one frame as a scan and counts the outcome.
    async fn record(&self, frame: Frame) -> Result<(), Ended> {
        let overlong = frame.overlong();
        let scan = self.writer.scan(
            self.config.name.clone(),
            self.config.role.clone(),
            frame.bytes,
            frame.len,
        );
        let recorded = tokio::select! {
            recorded = scan => recorded,
            () = self.token.cancelled() => return Err(Ended::Cancelled),
        };
        let now = now_ms();
        let failure = match &recorded {
            Err(WriteError::Gone) => return Err(Ended::Cancelled),
            Err(error) => {
                tracing::error!(scanner = %self.config.name, %error, "cannot record a scan");
                Some(format!("scan not recorded: {error}"))
            }
            Ok(record) => {
                tracing::debug!(scanner = %self.config.name, code = %record.code,
                    accepted = record.accepted, reason = %record.reason, "scan");
                None
            }
        };
        self.scanners.update(self.index, |status| {
            status.frames += 1;
            status.last_scan_ms = Some(now);
            match &recorded {
                Ok(record) if record.accepted => status.accepted += 1,
                Ok(_) if overlong => status.overlong += 1,
                Ok(_) => status.rejected += 1,
                Err(_) => {
                    status.failed += 1;
                    status.last_error = failure;
                }
            }
        });
        Ok(())
    }
}
