//! The telemetry document (docs/fleet.md): counts, states and versions only — never customer
//! data. `document` is pure; `System::read` reads the box (the store's file system, memory,
//! temperature, clock sync); `Fingerprint` is what, when it changes, is sent at once.

use std::{path::Path, sync::atomic::Ordering};

use serde_json::{Value, json};

use crate::status::{Link, Live, ReferenceStatus};

/// Who is reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub version: String,
    pub boot_id: String,
}

/// What the telemetry reads from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub backlog: i64,
    pub oldest_unsynced_ms: Option<i64>,
    pub gaps: usize,
    pub open_orders: i64,
    pub late_orders: i64,
}

/// What the telemetry reads from the box; `None` where it cannot tell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct System {
    /// Free (to the agent) and total bytes of the store's file system.
    pub disk: Option<(u64, u64)>,
    pub rss_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    pub cpu_temp_c: Option<f64>,
    pub clock_synced: Option<bool>,
}

/// The telemetry document.
pub fn document(
    live: &Live,
    identity: &Identity,
    store: &StoreCounts,
    system: &System,
    now_ms: i64,
    uptime_s: u64,
) -> Value {
    let scanners = live.scanners.snapshot();
    let connected = scanners
        .iter()
        .filter(|s| s.state == Link::Connected)
        .count();
    let feed = match live.feed_state() {
        "not provisioned" => "not configured",
        state => state,
    };
    let (free, total) = system.disk.unzip();
    json!({
        "at": now_ms,
        "version": identity.version,
        "boot_id": identity.boot_id,
        "uptime_s": uptime_s,
        "feed": feed,
        "sync": {
            "state": live.sync_state(),
            "backlog": store.backlog,
            "oldest_unsynced_ms": store.oldest_unsynced_ms,
        },
        "sequence_gaps": store.gaps,
        "reference": {
            "version": reference_version(&live.reference.status()),
            "status": live.reference_text(),
        },
        "scanners": {"connected": connected, "configured": scanners.len()},
        "orders": {"open": store.open_orders, "late": store.late_orders},
        "tablets": live.streams.clients.load(Ordering::Relaxed).max(0),
        "disk": {"free_bytes": free, "total_bytes": total},
        "memory": {"rss_bytes": system.rss_bytes, "available_bytes": system.available_bytes},
        "cpu_temp_c": system.cpu_temp_c,
        "clock_synced": system.clock_synced,
    })
}

/// The PostgreSQL version of the reference data in use, if it came from there.
fn reference_version(status: &ReferenceStatus) -> Option<i64> {
    match status {
        ReferenceStatus::Synced { version, .. } => Some(*version),
        _ => None,
    }
}

/// What, when it changes, is worth telemetry at once: the feed and sync links, the reference
/// data, the scanners connected, sequence gaps found, the MQTT link coming up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    feed: &'static str,
    sync: &'static str,
    reference: String,
    scanners_connected: usize,
    gaps_found: u64,
    connects: u64,
}

impl Fingerprint {
    pub fn of(live: &Live) -> Self {
        Self {
            feed: live.feed_state(),
            sync: live.sync_state(),
            reference: live.reference.describe(),
            scanners_connected: live
                .scanners
                .snapshot()
                .iter()
                .filter(|s| s.state == Link::Connected)
                .count(),
            gaps_found: live.feed.gaps.load(Ordering::Relaxed),
            connects: live.mqtt.connects.load(Ordering::Relaxed),
        }
    }
}

impl System {
    /// Reads the box: `data_dir`'s file system, this process's and the box's memory, the first
    /// thermal zone; the clock's state is the one the agent keeps (`status::ClockState`).
    pub fn read(data_dir: &Path, clock_synced: Option<bool>) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        Self {
            disk: disk(data_dir),
            rss_bytes: read("/proc/self/status").and_then(|t| kib_field(&t, "VmRSS")),
            available_bytes: read("/proc/meminfo").and_then(|t| kib_field(&t, "MemAvailable")),
            cpu_temp_c: read("/sys/class/thermal/thermal_zone0/temp")
                .and_then(|t| millidegrees(&t)),
            clock_synced,
        }
    }
}

/// Bytes free to an unprivileged writer, and the size, of the file system holding `dir`.
// `c_ulong` and `fsblkcnt_t` are u64 on the 64-bit box and this machine, u32 on 32-bit ones.
#[allow(clippy::useless_conversion)]
fn disk(dir: &Path) -> Option<(u64, u64)> {
    let stats = nix::sys::statvfs::statvfs(dir).ok()?;
    let fragment = u64::from(stats.fragment_size());
    Some((
        u64::from(stats.blocks_available()).saturating_mul(fragment),
        u64::from(stats.blocks()).saturating_mul(fragment),
    ))
}

/// `Name:   1234 kB` in a /proc file → bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        let kib: u64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// A thermal zone's `temp` (millidegrees Celsius) → degrees, to a tenth.
fn millidegrees(text: &str) -> Option<f64> {
    let milli: i64 = text.trim().parse().ok()?;
    Some((milli as f64 / 100.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_and_sys_files_are_read() {
        let status = "Name:\tedge-agent\nVmPeak:\t  99 kB\nVmRSS:\t   24576 kB\nThreads:\t9\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(24576 * 1024));
        assert_eq!(kib_field(status, "VmSwap"), None);
        let meminfo = "MemTotal:        3930000 kB\nMemAvailable:    3145728 kB\n";
        assert_eq!(kib_field(meminfo, "MemAvailable"), Some(3_221_225_472));
        assert_eq!(kib_field(meminfo, "Mem"), None);
        assert_eq!(millidegrees("51540\n"), Some(51.5));
        assert_eq!(millidegrees("-2000"), Some(-2.0));
        assert_eq!(millidegrees("hot"), None);
    }

    #[test]
    fn the_disk_of_a_directory_is_measured() {
        let (free, total) = disk(&std::env::temp_dir()).expect("statvfs");
        assert!(total > 0 && free <= total, "{free} / {total}");
    }
}
