//! Stands in for Otter's API in the demo: the test double from `kitchen-testkit` (token
//! endpoint, order actions, menu suspend/unsuspend with jobs, as docs/otter.md describes them)
//! on 127.0.0.1, printing every request it answers.
//!
//! `cargo run -p cloud-relay --example otter_double` (the client id and secret it accepts from
//! `OTTER_CLIENT_ID` / `OTTER_CLIENT_SECRET`). Its first line is `otter double on <url>`: the
//! relay's `OTTER_API_URL`.

use std::time::Duration;

use kitchen_testkit::otter::OtterDouble;

#[tokio::main]
async fn main() {
    let id = std::env::var("OTTER_CLIENT_ID").unwrap_or_else(|_| "demo-client".into());
    let secret = std::env::var("OTTER_CLIENT_SECRET").unwrap_or_else(|_| "demo-secret".into());
    let otter = OtterDouble::start(&id, &secret).await;
    println!("otter double on {}", otter.url());
    let mut printed = 0;
    loop {
        let calls = otter.calls();
        for call in calls.iter().skip(printed) {
            let body = call
                .body
                .as_ref()
                .map(|b| b.to_string())
                .unwrap_or_default();
            println!(
                "{} {} {} (X-Store-Id: {}) {body}",
                call.status,
                call.method,
                call.path,
                call.store_id.as_deref().unwrap_or("-")
            );
        }
        printed = calls.len();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
