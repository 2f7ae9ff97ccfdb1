//! The state of every serial scanner: written by the scanner tasks, read by `/readyz`,
//! `/api/status`, `/metrics` and the display.

use std::sync::Mutex;

use kitchen_daemon::sync::LockExt;
use serde::Serialize;

use crate::config::ScannerConfig;

/// Whether a scanner's device is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// Open and being read.
    Connected,
    /// The device cannot be opened (not plugged in, no such path, no permission); retried.
    Missing,
    /// It was open and reading failed or hit end of file (unplugged); reopened after the
    /// retry interval.
    Disconnected,
}

/// One scanner as `/api/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ScannerStatus {
    pub name: String,
    pub device: String,
    /// `station`, `prep` or `receiving`.
    pub role: &'static str,
    pub station: Option<String>,
    pub state: Link,
    /// When `state` last changed (ms since the epoch).
    pub since_ms: i64,
    /// Why the device is not connected, or the last scan that could not be recorded.
    pub last_error: Option<String>,
    /// A configuration problem that does not stop the scanner (an unknown station).
    pub warning: Option<String>,
    /// Frames received: `accepted` + `rejected` + `overlong` + `failed`.
    pub frames: u64,
    /// Recorded and accepted by the kitchen.
    pub accepted: u64,
    /// Recorded as rejected (not parsed, or nothing to do), over-long ones aside.
    pub rejected: u64,
    /// Longer than a scan may be (recorded as rejected).
    pub overlong: u64,
    /// Not recorded: the store failed.
    pub failed: u64,
    pub last_scan_ms: Option<i64>,
}

/// The state of every configured scanner, in config order.
#[derive(Debug, Default)]
pub struct Scanners {
    entries: Vec<Mutex<ScannerStatus>>,
}

impl Scanners {
    /// Every scanner `missing` until its task first opens it.
    pub fn new(configs: &[ScannerConfig], now_ms: i64) -> Self {
        let entries = configs
            .iter()
            .map(|config| {
                Mutex::new(ScannerStatus {
                    name: config.name.clone(),
                    device: config.device.display().to_string(),
                    role: config.role.name(),
                    station: config.role.station().map(str::to_owned),
                    state: Link::Missing,
                    since_ms: now_ms,
                    last_error: Some("not opened yet".into()),
                    warning: None,
                    frames: 0,
                    accepted: 0,
                    rejected: 0,
                    overlong: 0,
                    failed: 0,
                    last_scan_ms: None,
                })
            })
            .collect();
        Self { entries }
    }

    /// A copy of every scanner's state.
    pub fn snapshot(&self) -> Vec<ScannerStatus> {
        self.entries
            .iter()
            .map(|entry| entry.lock_or_recover().clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Changes scanner `index`'s state (a panic elsewhere cannot poison it for good).
    pub fn update<T>(
        &self,
        index: usize,
        change: impl FnOnce(&mut ScannerStatus) -> T,
    ) -> Option<T> {
        let entry = self.entries.get(index)?;
        Some(change(&mut entry.lock_or_recover()))
    }

    /// Notes a configuration problem on scanner `index`.
    pub fn warn(&self, index: usize, warning: String) {
        self.update(index, |status| status.warning = Some(warning));
    }

    /// Sets scanner `index`'s link state and error; whether either changed (to log changes
    /// only, not every retry).
    pub fn set_link(&self, index: usize, state: Link, error: Option<String>, now_ms: i64) -> bool {
        self.update(index, |status| {
            let changed = status.state != state || status.last_error != error;
            if status.state != state {
                status.since_ms = now_ms;
            }
            status.state = state;
            status.last_error = error;
            changed
        })
        .unwrap_or(false)
    }
}
