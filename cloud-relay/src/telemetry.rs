//! Logging setup: to the journal under systemd, else `tracing` to stderr, filtered by `RUST_LOG`
//! (default `info`); see `kitchen_daemon::logging`.

/// Installs the global subscriber; `json` switches stderr to one JSON object per line.
pub fn init(json: bool) {
    kitchen_daemon::logging::init(json);
}
