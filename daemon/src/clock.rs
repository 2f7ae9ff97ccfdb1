//! Wall-clock time as both services store and compare it: UNIX milliseconds.

/// Milliseconds since the UNIX epoch; 0 if the clock reads before 1970 (a box without RTC
/// before NTP has set it), so a bad clock never panics.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

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
