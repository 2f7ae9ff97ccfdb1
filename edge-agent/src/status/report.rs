//! The shared state as one handle (`Live`), and the box's status document built from it: what
//! `/api/status` serves and what the fleet's `diagnostics` command sends head office. The store
//! reads it needs are made by the caller (`StoreFacts`): this layer has no store.

use std::sync::{Arc, atomic::Ordering};

use kitchen_daemon::sync::LockExt;
use serde_json::{Value, json};

use super::{
    ClockState, FeedStats, MqttStats, Printers, ReferenceCell, Scanners, StreamStats, SyncKick,
    SyncStats,
};

/// Every piece of live state, for the adapters that report on the box (HTTP, the fleet).
#[derive(Clone)]
pub struct Live {
    pub kitchen_id: String,
    pub provisioned: bool,
    /// Why the last `kitchen.toml` was refused (`provision`), shown by the displays.
    pub provision_error: Option<String>,
    /// The reference data in use, swapped when PostgreSQL has a new version.
    pub reference: Arc<ReferenceCell>,
    pub feed: Arc<FeedStats>,
    pub sync: Arc<SyncStats>,
    /// Records unsynced for longer than this raise the alarm.
    pub sync_alarm_ms: i64,
    /// The serial scanners' states.
    pub scanners: Arc<Scanners>,
    /// The tablets' live streams.
    pub streams: Arc<StreamStats>,
    /// The fleet channel.
    pub mqtt: Arc<MqttStats>,
    /// Work asked of the sync ahead of time.
    pub kick: Arc<SyncKick>,
    /// Whether the clock is known good.
    pub clock: Arc<ClockState>,
    /// Links the TLS rule refused at start: the agent runs without them.
    pub refused: Arc<RefusedLinks>,
    /// The ticket printers and the stations on the fallback printer.
    pub printers: Arc<Printers>,
}

/// Why a link is not opened (docs/security.md, "TLS off the box"): plaintext or unverified TLS
/// off the box, or a CA bundle that does not parse. Set once at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusedLinks {
    /// The broker (`amqp_url`): no feed.
    pub feed: Option<String>,
    /// PostgreSQL (`database_url`): no sync.
    pub sync: Option<String>,
    /// The fleet channel (`mqtt_url`): no MQTT.
    pub fleet: Option<String>,
}

impl RefusedLinks {
    pub fn reasons(&self) -> Vec<&str> {
        self.feed
            .iter()
            .chain(&self.sync)
            .chain(&self.fleet)
            .map(String::as_str)
            .collect()
    }
}

/// What the status document needs from the store, read by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreFacts {
    pub backlog: i64,
    pub oldest_unsynced_ms: Option<i64>,
    /// The open sequence gaps, as the store lists them.
    pub gaps: Value,
}

impl Live {
    /// `connected`, `disconnected`, `refused` (the TLS rule) or `not provisioned`.
    pub fn feed_state(&self) -> &'static str {
        if !self.provisioned {
            "not provisioned"
        } else if self.refused.feed.is_some() {
            "refused"
        } else if self.feed.connected.load(Ordering::Relaxed) {
            "connected"
        } else {
            "disconnected"
        }
    }

    /// `connected`, `disconnected`, `refused` (the TLS rule) or `not configured`.
    pub fn sync_state(&self) -> &'static str {
        if self.refused.sync.is_some() {
            "refused"
        } else if !self.sync.configured.load(Ordering::Relaxed) {
            "not configured"
        } else if self.sync.connected.load(Ordering::Relaxed) {
            "connected"
        } else {
            "disconnected"
        }
    }

    /// The fleet channel as `/api/status` shows it: `refused` (the TLS rule) with the reason,
    /// else the link's own state.
    pub fn mqtt_json(&self) -> Value {
        match &self.refused.fleet {
            Some(reason) => json!({"state": "refused", "last_error": reason, "since": null}),
            None => self.mqtt.json(),
        }
    }

    /// Where the reference data in use came from; while PostgreSQL (its source, once a sync is
    /// set up) is unreachable, says the copy in use is kept.
    pub fn reference_text(&self) -> String {
        let text = self.reference.describe();
        if self.sync.configured.load(Ordering::Relaxed)
            && !self.sync.connected.load(Ordering::Relaxed)
        {
            format!("{text}; postgresql unreachable: keeping this copy")
        } else {
            text
        }
    }

    /// Whether unsynced records are older than the alarm threshold (only when a sync is set
    /// up: without one, `state` says `not configured`).
    pub fn sync_alarm(&self, oldest: Option<i64>, now_ms: i64) -> bool {
        self.sync.configured.load(Ordering::Relaxed)
            && oldest.is_some_and(|at| now_ms - at > self.sync_alarm_ms)
    }

    /// The sync as `/readyz` and `/api/status` show it.
    pub fn sync_json(&self, backlog: i64, oldest: Option<i64>, now_ms: i64) -> Value {
        let sync = &self.sync;
        let last_error = sync.last_error.lock_or_recover().clone();
        json!({
            "state": self.sync_state(),
            "backlog": backlog,
            "oldest_unsynced_ms": oldest,
            "alarm": self.sync_alarm(oldest, now_ms),
            "last_error": last_error,
            "pushed": sync.pushed.load(Ordering::Relaxed),
            "reconciled": sync.reconciled.load(Ordering::Relaxed),
            "reference_version": sync.reference_version.load(Ordering::Relaxed),
            "recovery": sync.recovery_state(),
            "recovered_orders": sync.recovered_orders.load(Ordering::Relaxed),
        })
    }

    /// The status document: who this box is and how its links are.
    pub fn status_json(&self, facts: &StoreFacts, now_ms: i64) -> Value {
        json!({
            "sync": self.sync_json(facts.backlog, facts.oldest_unsynced_ms, now_ms),
            "kitchen_id": self.kitchen_id,
            "provisioned": self.provisioned,
            "provision_error": self.provision_error,
            "links_refused": self.refused.reasons(),
            "feed": self.feed_state(),
            "reference": self.reference_text(),
            "sequence_gaps": facts.gaps,
            "scanners": self.scanners.snapshot(),
            "mqtt": self.mqtt_json(),
            "clock": self.clock.json(),
            "printers": self.printers.snapshot(),
            "print_fallback": self.printers.fallback(),
            "version": env!("CARGO_PKG_VERSION"),
        })
    }
}
