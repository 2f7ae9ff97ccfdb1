//! What the relay and the agent need to run as systemd services, shared by both binaries:
//! `logging` (to the journal with structured fields when systemd runs us, to stderr otherwise),
//! `notify` (the sd_notify protocol: readiness, watchdog pings, stopping) and `credentials`
//! (secrets from `LoadCredential=`).

pub mod credentials;
pub mod logging;
pub mod notify;
