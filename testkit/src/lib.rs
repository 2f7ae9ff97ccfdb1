//! Test support shared by the relay's and the agent's integration tests and benchmarks, so that
//! no helper is copied between crates: throwaway PostgreSQL databases and roles (`db`), broker
//! objects removed after the test (`amqp`), unique names (`names`), temporary directories
//! (`dir`), a TCP proxy a test cuts (`proxy`), pseudo-terminals as serial scanners (`pty`),
//! HTTP and SSE clients (`http`), headless Chromium over the DevTools pipe (`browser`),
//! `OrderEvent` builders (`events`), a test double of Otter's API (`otter`), a Mosquitto broker
//! of the test's own with the shipped ACL (`mqtt`), TLS made in the test — a CA, server
//! certificates and a TLS-terminating proxy (`tls`) — and a PostgreSQL cluster of the test's
//! own with TLS on (`pg_cluster`), and the benchmarks' knobs and statistics (`bench`).
//!
//! Every resource a test makes here is removed when its guard drops, also when the test fails.
//! This crate depends on neither `cloud-relay` nor `edge-agent` (see its `Cargo.toml`).

pub mod amqp;
pub mod bench;
pub mod browser;
pub mod db;
pub mod dir;
pub mod events;
pub mod http;
pub mod mqtt;
pub mod names;
pub mod otter;
pub mod pg_cluster;
pub mod printer;
pub mod proxy;
pub mod pty;
pub mod tls;

use std::future::Future;

/// Runs `future` to completion from a `Drop`, on a thread and runtime of its own: the test's
/// runtime may be the one blocked in the drop, or already gone.
pub(crate) fn run_blocking(future: impl Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(future);
        }
    })
    .join();
}
