//! Wall-clock time as both services store and compare it: UNIX milliseconds.

/// Milliseconds since the UNIX epoch; 0 if the clock reads before 1970 (a box without RTC
/// before NTP has set it), so a bad clock never panics.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where systemd-timesyncd keeps its state: `synchronized` appears there once it has set the
/// clock from a time server since boot.
pub const TIMESYNC_DIR: &str = "/run/systemd/timesync";

/// Whether the clock is known good: `Some(true)` when systemd-timesyncd (its state in
/// `timesync_dir`) has synchronised it since boot, `Some(false)` when timesyncd runs and has not
/// (a box without a battery-backed clock boots with the last time it saved), `None` when there
/// is no timesyncd to ask (a machine whose clock something else keeps).
pub fn synchronised(timesync_dir: &std::path::Path) -> Option<bool> {
    if timesync_dir.join("synchronized").exists() {
        Some(true)
    } else if timesync_dir.exists() {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_synchronised_only_when_timesyncd_says_so() {
        let dir = std::env::temp_dir().join(format!("timesync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(synchronised(&dir), None);
        std::fs::create_dir_all(&dir).expect("dir");
        assert_eq!(synchronised(&dir), Some(false));
        std::fs::write(dir.join("synchronized"), "").expect("file");
        assert_eq!(synchronised(&dir), Some(true));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn is_unix_milliseconds() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        let now = now_ms();
        // 2020-01-01 in ms: a seconds or microseconds clock would be far off either way.
        assert!(now >= before && now > 1_577_836_800_000 && now < 1_577_836_800_000_000);
    }
}
