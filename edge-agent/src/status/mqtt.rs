//! The fleet channel's link to the MQTT broker and what came over it: written by the fleet
//! task, read by `/api/status`, `/metrics` and the display's Cloud pill.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
};

use kitchen_daemon::sync::LockExt;
use serde_json::{Value, json};

/// The MQTT link and the command counters.
#[derive(Debug, Default)]
pub struct MqttStats {
    /// `mqtt_url` is set: the fleet task runs.
    pub configured: AtomicBool,
    pub connected: AtomicBool,
    /// When `connected` last changed (ms since the epoch; 0: not yet).
    pub since_ms: AtomicI64,
    pub last_error: Mutex<Option<String>>,
    /// Successful connections (a reconnect counts again).
    pub connects: AtomicU64,
    /// Commands run and answered `ok: true` / `ok: false`.
    pub commands_ok: AtomicU64,
    pub commands_failed: AtomicU64,
    /// Deliveries of a command already run, answered with its reply again.
    pub commands_repeated: AtomicU64,
    /// Messages on a command topic with no id to answer to: dropped.
    pub commands_dropped: AtomicU64,
}

impl MqttStats {
    /// The link came up.
    pub fn up(&self, now_ms: i64) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        if !self.connected.swap(true, Ordering::Relaxed) {
            self.since_ms.store(now_ms, Ordering::Relaxed);
        }
    }

    /// The link is down for `error`; whether it was up (to log the change only).
    pub fn down(&self, error: String, now_ms: i64) -> bool {
        let was = self.connected.swap(false, Ordering::Relaxed);
        if was || self.since_ms.load(Ordering::Relaxed) == 0 {
            self.since_ms.store(now_ms, Ordering::Relaxed);
        }
        *self.last_error.lock_or_recover() = Some(error);
        was
    }

    pub fn state(&self) -> &'static str {
        if !self.configured.load(Ordering::Relaxed) {
            "not configured"
        } else if self.connected.load(Ordering::Relaxed) {
            "connected"
        } else {
            "disconnected"
        }
    }

    /// As `/api/status` shows it.
    pub fn json(&self) -> Value {
        let since = self.since_ms.load(Ordering::Relaxed);
        json!({
            "state": self.state(),
            "last_error": *self.last_error.lock_or_recover(),
            "since": (since > 0).then_some(since),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_reports_its_state_and_since_when() {
        let stats = MqttStats::default();
        assert_eq!(
            stats.json(),
            json!({"state": "not configured", "last_error": null, "since": null})
        );
        stats.configured.store(true, Ordering::Relaxed);
        assert!(!stats.down("connection refused".into(), 1000));
        assert_eq!(
            stats.json(),
            json!({"state": "disconnected", "last_error": "connection refused", "since": 1000})
        );
        stats.up(2000);
        assert_eq!(stats.json()["state"], "connected");
        assert_eq!(stats.json()["since"], 2000);
        assert!(stats.down("keep-alive timeout".into(), 3000));
        assert!(!stats.down("refused".into(), 4000));
        assert_eq!(stats.json()["since"], 3000);
        assert_eq!(stats.connects.load(Ordering::Relaxed), 1);
    }
}
