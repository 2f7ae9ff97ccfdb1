//! The live event streams open to the tablets: counted by HTTP, read by `/metrics` and the
//! fleet telemetry (`tablets`).

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicI64, AtomicU64},
    },
};

use kitchen_daemon::sync::LockExt;

/// Counters of the live streams.
#[derive(Debug, Default)]
pub struct StreamStats {
    pub clients: AtomicI64,
    pub lagging_disconnects: AtomicU64,
    /// Streams refused at the caps.
    pub refused: AtomicU64,
    /// Per station (streams with `?station=`): how many are open, and since when that number
    /// last went to or from zero (ms). A station appears once a tablet has opened its stream.
    stations: Mutex<BTreeMap<String, (u32, i64)>>,
}

impl StreamStats {
    /// A stream of `station` opened.
    pub fn station_opened(&self, station: &str, now_ms: i64) {
        let mut stations = self.stations.lock_or_recover();
        let entry = stations.entry(station.to_owned()).or_insert((0, now_ms));
        if entry.0 == 0 {
            entry.1 = now_ms;
        }
        entry.0 += 1;
    }

    /// A stream of `station` closed.
    pub fn station_closed(&self, station: &str, now_ms: i64) {
        let mut stations = self.stations.lock_or_recover();
        if let Some(entry) = stations.get_mut(station) {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 == 0 {
                entry.1 = now_ms;
            }
        }
    }

    /// Every station a tablet has streamed: (station, streams open, since when that count
    /// last went to or from zero).
    pub fn stations(&self) -> Vec<(String, u32, i64)> {
        self.stations
            .lock_or_recover()
            .iter()
            .map(|(station, (open, since))| (station.clone(), *open, *since))
            .collect()
    }
}
