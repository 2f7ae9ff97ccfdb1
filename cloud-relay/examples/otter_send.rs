//! Sends Otter webhook files to a relay, signed as Otter signs them, and prints each answer.
//!
//! `cargo run -p cloud-relay --example otter_send -- [--url URL] FILE...`; the secret comes
//! from `OTTER_WEBHOOK_SECRET`. Exits non-zero if any answer is not 2xx.

use cloud_relay::otter::WebhookSigner;
use secrecy::SecretString;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let mut url = "http://127.0.0.1:8001/webhooks/otter".to_owned();
    if args.peek().map(String::as_str) == Some("--url") {
        args.next();
        url = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("--url needs a value"))?;
    }
    let secret = std::env::var("OTTER_WEBHOOK_SECRET").unwrap_or_default();
    let signer = WebhookSigner::new(SecretString::from(secret));
    let client = kitchen_testkit::http::bare();
    let mut failed = false;
    for path in args {
        let body = std::fs::read(&path)?;
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hmac-sha256", signer.sign(&body))
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        println!("{path}: {status} {text}");
        failed |= !status.is_success();
    }
    if failed {
        eprintln!("some webhooks were not accepted");
        std::process::exit(1);
    }
    Ok(())
}
