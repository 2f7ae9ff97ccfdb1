//! Settings derived from the config for the parts that use them.

use std::time::Duration;

use super::Config;

impl Config {
    /// What the kitchen tells Otter with: the estimate's bounds, when the day ends.
    pub fn otter_settings(&self) -> Result<crate::otter::Settings, chrono::ParseError> {
        Ok(crate::otter::Settings {
            bounds: crate::otter::Bounds {
                min_minutes: self.prep_estimate_min_minutes,
                max_minutes: self.prep_estimate_max_minutes,
            },
            day_end: chrono::NaiveTime::parse_from_str(self.day_end.trim(), "%H:%M")?,
        })
    }

    /// What the LAN listener tolerates.
    pub fn serve_limits(&self) -> kitchen_daemon::serve::Limits {
        kitchen_daemon::serve::Limits {
            max_connections: self.max_connections as usize,
            header_read_timeout: Duration::from_secs(u64::from(self.header_timeout_secs)),
            request_timeout: Duration::from_secs(u64::from(self.request_timeout_secs)),
        }
    }
}
