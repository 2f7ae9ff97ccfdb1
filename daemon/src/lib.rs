//! What the relay and the agent need to run as systemd services, shared by both binaries:
//! `logging` (to the journal with structured fields when systemd runs us, to stderr otherwise),
//! `notify` (the sd_notify protocol: readiness, watchdog pings, stopping), `credentials`
//! (secrets from `LoadCredential=`), `metrics` (the Prometheus text both `/metrics` serve), and
//! `serve` (the HTTP server loop with timeouts and a connection cap), `links` (the TLS rule
//! for links off the machine: `amqps` and `sslmode=verify-full` unless loopback), and
//! the small helpers both services repeat: `backoff` (capped, jittered exponential backoff),
//! `clock` (UNIX milliseconds) and `sync` (a mutex lock that survives poisoning).

pub mod backoff;
pub mod clock;
pub mod credentials;
pub mod links;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod serve;
pub mod sync;
