//! The ticket printers' states and the stations printing on the fallback printer: written by
//! the printer tasks, read by `/api/status` and the displays.

use std::{collections::BTreeMap, sync::Mutex};

use kitchen_daemon::sync::LockExt;
use serde::Serialize;

use crate::config::PrinterConfig;

/// One printer as `/api/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PrinterState {
    pub name: String,
    /// `tcp://host:port` or the device path.
    pub target: String,
    /// `ready`; a fault the printer reports (`paper_out`, `cover_open`, `cutter_error`,
    /// `unrecoverable_error`, `recoverable_error`, `offline`); or the link's: `unreachable`
    /// (cannot connect or open), `no_reply` (no answer to `DLE EOT`), `bad_reply` (an answer
    /// that is not a status byte), `error` (the link broke mid-ticket); `unknown` until the
    /// first ticket.
    pub state: String,
    /// When `state` last changed (ms since the epoch).
    pub since_ms: i64,
    pub last_error: Option<String>,
    /// The roll is nearly empty (it still prints).
    pub paper_near_end: bool,
    /// Jobs not printed yet.
    pub waiting: i64,
    /// Jobs printed since the agent started.
    pub printed: u64,
    /// Failed attempts since the agent started.
    pub failed: u64,
    pub last_printed_ms: Option<i64>,
}

/// A station printing on the fallback printer, or that did until its tablet came back.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Fallback {
    pub station: String,
    pub printer: String,
    /// Still without a tablet.
    pub active: bool,
    /// When its last tablet went (ms).
    pub since_ms: i64,
    /// When a tablet came back (ms).
    pub ended_ms: Option<i64>,
    /// Tickets printed on the fallback printer meanwhile (counted when it ended).
    pub tickets: i64,
}

/// Every printer's state, in config order, and the fallback stations.
#[derive(Debug, Default)]
pub struct Printers {
    entries: Vec<Mutex<PrinterState>>,
    fallback: Mutex<BTreeMap<String, Fallback>>,
}

impl Printers {
    pub fn new(configs: &[PrinterConfig], now_ms: i64) -> Self {
        let entries = configs
            .iter()
            .map(|config| {
                Mutex::new(PrinterState {
                    name: config.name.clone(),
                    target: config.target.to_string(),
                    state: "unknown".into(),
                    since_ms: now_ms,
                    last_error: None,
                    paper_near_end: false,
                    waiting: 0,
                    printed: 0,
                    failed: 0,
                    last_printed_ms: None,
                })
            })
            .collect();
        Self {
            entries,
            fallback: Mutex::default(),
        }
    }

    pub fn snapshot(&self) -> Vec<PrinterState> {
        self.entries
            .iter()
            .map(|entry| entry.lock_or_recover().clone())
            .collect()
    }

    /// Changes printer `index`'s state.
    pub fn update<T>(
        &self,
        index: usize,
        change: impl FnOnce(&mut PrinterState) -> T,
    ) -> Option<T> {
        let entry = self.entries.get(index)?;
        Some(change(&mut entry.lock_or_recover()))
    }

    /// Sets printer `index`'s state and error; whether the state changed (to log changes only).
    pub fn set_state(&self, index: usize, state: &str, error: Option<String>, now_ms: i64) -> bool {
        self.update(index, |printer| {
            let changed = printer.state != state;
            if changed {
                printer.since_ms = now_ms;
                printer.state = state.to_owned();
            }
            printer.last_error = error;
            changed
        })
        .unwrap_or(false)
    }

    /// The stations on the fallback printer now and lately, by station.
    pub fn fallback(&self) -> Vec<Fallback> {
        self.fallback.lock_or_recover().values().cloned().collect()
    }

    /// Replaces a station's fallback entry.
    pub fn set_fallback(&self, entry: Fallback) {
        self.fallback
            .lock_or_recover()
            .insert(entry.station.clone(), entry);
    }
}
