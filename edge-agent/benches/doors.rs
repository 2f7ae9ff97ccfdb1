//! What the LAN's doors cost (docs/security.md): requests per second and latency through the
//! guard — an open path (`/healthz`, no token looked up), a paired read (`/api/stations`: the
//! token's hash looked up in SQLite, then the handler), a refusal (`401`, no token), and paired
//! writes (`POST /api/scans`, a rejected scan: one SQLite transaction each). The agent runs in
//! process, unprovisioned (no broker needed), on loopback; one client connection, sequential,
//! so the figures are per request, not the box's capacity.
//!
//! `cargo bench -p edge-agent --bench doors`; `BENCH_REQUESTS` (default 3000) per kind.

use std::time::{Duration, Instant};

use edge_agent::{App, Config};
use kitchen_testkit::{
    bench::{env_or, ms, percentile},
    dir::TempDir,
    http::{TEST_DEVICE, TEST_TOKEN},
};

const REFERENCE: &str = include_str!("../tests/fixtures/sample_kitchen.toml");

#[tokio::main]
async fn main() {
    let requests = env_or("BENCH_REQUESTS", 3000);
    let data_dir = TempDir::new("bench-doors");
    let reference_file = data_dir.path().join("reference.toml");
    std::fs::write(&reference_file, REFERENCE).expect("reference written");
    let app = App::build(Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data_dir.path().to_owned(),
        reference_file: Some(reference_file),
        write_rate: 1_000_000,
        ..Config::default()
    })
    .await
    .expect("agent builds");
    edge_agent::pairing::pair_with_token(data_dir.path(), "manager", TEST_DEVICE, None, TEST_TOKEN)
        .expect("paired");
    let base = format!("http://127.0.0.1:{}", app.port());
    let token = app.shutdown_token();
    let agent = tokio::spawn(app.run_until_stopped());

    let paired = kitchen_testkit::http::client();
    let stranger = kitchen_testkit::http::bare();
    println!(
        "edge-agent doors benchmark: {requests} sequential requests per kind, one connection, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let kinds: [(&str, &reqwest::Client, reqwest::Method, &str, u16); 4] = [
        (
            "open: GET /healthz",
            &stranger,
            reqwest::Method::GET,
            "/healthz",
            200,
        ),
        (
            "paired read: GET /api/stations",
            &paired,
            reqwest::Method::GET,
            "/api/stations",
            200,
        ),
        (
            "refused: GET /api/stations, no token",
            &stranger,
            reqwest::Method::GET,
            "/api/stations",
            401,
        ),
        (
            "paired write: POST /api/scans (rejected scan)",
            &paired,
            reqwest::Method::POST,
            "/api/scans",
            422,
        ),
    ];
    for (name, client, method, path, expected) in kinds {
        let mut latencies = Vec::with_capacity(requests);
        let started = Instant::now();
        for n in 0..requests {
            let mut request = client.request(method.clone(), format!("{base}{path}"));
            if method == reqwest::Method::POST {
                request = request.json(
                    &serde_json::json!({"code": format!("ORDER:none-{n}"), "station": "fry"}),
                );
            }
            let sent = Instant::now();
            let response = request.send().await.expect("answers");
            assert_eq!(response.status().as_u16(), expected, "{name}");
            let _ = response.bytes().await;
            latencies.push(sent.elapsed());
        }
        let elapsed = started.elapsed();
        latencies.sort();
        println!(
            "{name:<48} {:>7.0} req/s  p50 {}  p99 {}  max {}",
            requests as f64 / elapsed.as_secs_f64(),
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        );
    }
    token.cancel();
    let _ = agent.await;
}
