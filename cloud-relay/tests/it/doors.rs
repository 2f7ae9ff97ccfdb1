//! The public endpoint under abuse: slow clients cut off, rotation of the webhook secret,
//! per-address limits on rejected requests, load shedding, and the insecure mode kept to
//! loopback.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use cloud_relay::otter::WebhookSigner;
use secrecy::SecretString;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use super::harness::*;

/// A client whose connections come from `ip` (any of 127.0.0.0/8 reaches the relay on
/// 127.0.0.1), so one machine can play several client addresses; it keeps no idle
/// connections, so none is cut under it by the header timeout.
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    kitchen_testkit::http::builder()
        .local_address(IpAddr::V4(ip))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// A raw connection to `addr` from `ip`.
async fn connect_from(ip: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((ip, 0)))
        .expect("bind a loopback address");
    socket.connect(addr).await.expect("relay accepts")
}

async fn post(
    client: &reqwest::Client,
    app: &TestApp,
    body: &[u8],
    signature: &str,
) -> (u16, String) {
    let response = client
        .post(app.url("/webhooks/otter"))
        .header("content-type", "application/json")
        .header("x-hmac-sha256", signature)
        .body(body.to_vec())
        .send()
        .await
        .expect("relay answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

fn metric_lines(metrics: &str, family: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|line| line.starts_with(family) && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

async fn stored_event_ids(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT event_id FROM otter.webhook_events ORDER BY event_id")
        .fetch_all(&app.db.pool)
        .await
        .expect("query")
}

fn order(n: usize) -> (String, Vec<u8>) {
    let event_id = format!("e{n:02}");
    let body = new_order(&event_id, "s1", &format!("o{n:02}"), "2025-03-14T18:00:00Z");
    (event_id, body)
}

#[tokio::test]
async fn slow_clients_are_cut_off_within_the_header_timeout_while_signed_webhooks_are_accepted() {
    const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);
    const SLOW_CLIENTS: usize = 20;
    let app = spawn_app_with(|config| {
        config.header_timeout = HEADER_TIMEOUT;
        config.ingest_timeout = Duration::from_secs(3);
        config.request_timeout = Duration::from_secs(4);
    })
    .await;

    // Each slow client sends a request head one byte every 100 ms, never finishing it.
    let started = Instant::now();
    let mut slow_clients = Vec::new();
    for _ in 0..SLOW_CLIENTS {
        let mut stream = TcpStream::connect(app.addr).await.expect("connects");
        stream
            .write_all(b"POST /webhooks/otter HTTP/1.1\r\nHost: relay\r\nX-Slow: ")
            .await
            .expect("writes");
        slow_clients.push(tokio::spawn(async move {
            let (mut reader, mut writer) = stream.into_split();
            let drip = async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if writer.write_all(b"x").await.is_err() {
                        return std::future::pending::<()>().await;
                    }
                }
            };
            let mut answer = Vec::new();
            let read = async { reader.read_to_end(&mut answer).await };
            let outcome = tokio::select! {
                read = read => read.map(|_| ()).map_err(|error| error.kind()),
                () = drip => unreachable!("the drip never ends by itself"),
            };
            (started.elapsed(), outcome, answer)
        }));
    }

    // Meanwhile, signed webhooks are accepted at once.
    let client = client_from(Ipv4Addr::LOCALHOST);
    for n in 1..=5 {
        let (_, body) = order(n);
        let answer = post(&client, &app, &body, &app.signer.sign(&body)).await;
        assert_eq!(answer, (200, String::new()));
    }
    let webhooks_done = started.elapsed();
    assert!(
        webhooks_done < HEADER_TIMEOUT,
        "the webhooks took {webhooks_done:?}"
    );

    for slow in slow_clients {
        let (cut_after, outcome, answer) =
            tokio::time::timeout(HEADER_TIMEOUT + Duration::from_secs(3), slow)
                .await
                .expect("the server cuts the slow client off")
                .expect("slow client joins");
        // The server closes the connection without an answer (a reset when a dripped byte
        // was still unread).
        assert!(
            matches!(outcome, Ok(()) | Err(std::io::ErrorKind::ConnectionReset)),
            "{outcome:?}"
        );
        assert_eq!(answer, Vec::<u8>::new());
        assert!(
            cut_after >= HEADER_TIMEOUT && cut_after < HEADER_TIMEOUT + Duration::from_secs(1),
            "cut off after {cut_after:?}"
        );
    }
    assert_eq!(
        stored_event_ids(&app).await,
        ["e01", "e02", "e03", "e04", "e05"]
    );

    // A head sent in full but a body that never comes: 408 once request_timeout passes.
    let mut slow_body = TcpStream::connect(app.addr).await.expect("connects");
    let sent = Instant::now();
    slow_body
        .write_all(
            b"POST /webhooks/otter HTTP/1.1\r\nHost: relay\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{",
        )
        .await
        .expect("writes");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(6), slow_body.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("reads");
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );
    let answer = String::from_utf8(answer).expect("utf-8");
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\nrequest timed out\n"), "{answer}");

    let metrics = app.metrics().await;
    assert_eq!(
        metric_lines(&metrics, "relay_http_request_timeouts_total"),
        [
            "relay_http_request_timeouts_total{listener=\"public\"} 1",
            "relay_http_request_timeouts_total{listener=\"admin\"} 0",
        ]
    );
    assert_eq!(
        metric_lines(&metrics, "relay_http_connections_open{listener=\"public\"}"),
        ["relay_http_connections_open{listener=\"public\"} 0"]
    );
    // 20 slow clients, 5 webhooks on connections of their own, 1 slow body.
    assert_eq!(
        metric_lines(
            &metrics,
            "relay_http_connections_total{listener=\"public\"}"
        ),
        ["relay_http_connections_total{listener=\"public\"} 26"]
    );
}

#[tokio::test]
async fn both_webhook_secrets_are_accepted_during_a_rotation_and_a_third_is_refused() {
    let app = spawn_app_with(|config| {
        config.otter_webhook_secret_previous = Some(SecretString::from("the-old-secret"));
    })
    .await;
    let previous = WebhookSigner::new(SecretString::from("the-old-secret"));
    let third = WebhookSigner::new(SecretString::from("a-third-secret"));
    let client = client_from(Ipv4Addr::LOCALHOST);

    let (_, current_body) = order(1);
    let (_, previous_body) = order(2);
    let (_, third_body) = order(3);
    assert_eq!(
        post(
            &client,
            &app,
            &current_body,
            &app.signer.sign(&current_body)
        )
        .await,
        (200, String::new())
    );
    assert_eq!(
        post(
            &client,
            &app,
            &previous_body,
            &previous.sign(&previous_body)
        )
        .await,
        (200, String::new())
    );
    assert_eq!(
        post(&client, &app, &third_body, &third.sign(&third_body)).await,
        (
            401,
            r#"{"error":"invalid signature: X-HMAC-SHA256 does not match the body"}"#.to_owned()
        )
    );
    assert_eq!(stored_event_ids(&app).await, ["e01", "e02"]);

    let metrics = app.metrics().await;
    assert_eq!(
        metric_lines(&metrics, "relay_webhook_signatures_total"),
        [
            "relay_webhook_signatures_total{secret=\"current\"} 1",
            "relay_webhook_signatures_total{secret=\"previous\"} 1",
        ]
    );
    assert_eq!(
        metric_lines(&metrics, "relay_webhook_signature_failures_total"),
        [
            "relay_webhook_signature_failures_total{reason=\"missing\"} 0",
            "relay_webhook_signature_failures_total{reason=\"malformed\"} 0",
            "relay_webhook_signature_failures_total{reason=\"mismatch\"} 1",
        ]
    );
}

#[tokio::test]
async fn an_address_over_its_rejection_limit_gets_429_unread_while_other_addresses_are_served() {
    let app = spawn_app_with(|config| {
        config.rejected_burst = 3;
        config.rejected_per_minute = 1;
    })
    .await;
    let wrong = WebhookSigner::new(SecretString::from("guessed"));
    let attacker_ip = Ipv4Addr::new(127, 0, 0, 2);
    let attacker = client_from(attacker_ip);
    let otter = client_from(Ipv4Addr::LOCALHOST);
    let neighbour = client_from(Ipv4Addr::new(127, 0, 0, 3));
    let scanner = client_from(Ipv4Addr::new(127, 0, 0, 4));
    let mismatch =
        r#"{"error":"invalid signature: X-HMAC-SHA256 does not match the body"}"#.to_owned();
    let limited =
        r#"{"error":"too many rejected requests from this address; retry later"}"#.to_owned();

    // Three bad signatures are answered; the fourth request is not.
    let (_, body) = order(90);
    for _ in 0..3 {
        assert_eq!(
            post(&attacker, &app, &body, &wrong.sign(&body)).await,
            (401, mismatch.clone())
        );
    }
    let response = attacker
        .post(app.url("/webhooks/otter"))
        .header("content-type", "application/json")
        .header("x-hmac-sha256", wrong.sign(&body))
        .body(body.clone())
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 429);
    // One rejection a minute is earned back: the next in a minute, less the time the test
    // took since the third.
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((58..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(response.headers()["connection"], "close");
    assert_eq!(response.text().await.expect("body"), limited);
    // The address is shut out whatever it sends, until it has earned a rejection back.
    let (_, good_body) = order(91);
    assert_eq!(
        post(&attacker, &app, &good_body, &app.signer.sign(&good_body)).await,
        (429, limited.clone())
    );
    // Answered before the body is read: a head announcing 1 MiB gets its 429 at once.
    let mut raw = connect_from(attacker_ip, app.addr).await;
    let asked = Instant::now();
    raw.write_all(
        b"POST /webhooks/otter HTTP/1.1\r\nHost: relay\r\ncontent-type: application/json\r\n\
          content-length: 1048576\r\nx-hmac-sha256: AAAA\r\n\r\n",
    )
    .await
    .expect("writes");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), raw.read_to_end(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .expect("reads");
    assert!(asked.elapsed() < Duration::from_secs(1));
    let answer = String::from_utf8(answer).expect("utf-8");
    assert!(
        answer.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with(&format!("\r\n\r\n{limited}")), "{answer}");

    // Otter's address: good webhooks pass and take nothing from its allowance, so two
    // rejections among them leave it under the limit.
    let mut accepted = Vec::new();
    for n in 1..=6 {
        let (event_id, body) = order(n);
        assert_eq!(
            post(&otter, &app, &body, &app.signer.sign(&body)).await,
            (200, String::new())
        );
        accepted.push(event_id);
        if n % 3 == 0 {
            assert_eq!(
                post(&otter, &app, &body, &wrong.sign(&body)).await,
                (401, mismatch.clone())
            );
        }
    }
    // Another address has an allowance of its own.
    assert_eq!(
        post(&neighbour, &app, &body, &wrong.sign(&body)).await,
        (401, mismatch.clone())
    );
    // Probing paths counts too: three 404s, then 429 even for /healthz.
    for path in ["/wp-login.php", "/.env", "/readyz"] {
        let response = scanner.get(app.url(path)).send().await.expect("answers");
        assert_eq!(response.status(), 404, "{path}");
    }
    let response = scanner
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 429);
    assert_eq!(stored_event_ids(&app).await, accepted);

    let metrics = app.metrics().await;
    for (family, expected) in [
        ("relay_rate_limited_total", "relay_rate_limited_total 4"),
        ("relay_rejecting_clients", "relay_rejecting_clients 4"),
        (
            "relay_webhook_signatures_total{secret=\"current\"}",
            "relay_webhook_signatures_total{secret=\"current\"} 6",
        ),
        (
            "relay_webhook_signature_failures_total{reason=\"mismatch\"}",
            "relay_webhook_signature_failures_total{reason=\"mismatch\"} 6",
        ),
        (
            "relay_webhooks_total{event_type=\"unknown\",outcome=\"unauthorized\"}",
            "relay_webhooks_total{event_type=\"unknown\",outcome=\"unauthorized\"} 6",
        ),
    ] {
        assert_eq!(metric_lines(&metrics, family), [expected], "{metrics}");
    }
}

#[tokio::test]
async fn webhooks_past_the_in_flight_limit_are_shed_at_once_with_503() {
    let app = spawn_app_with(|config| {
        config.max_inflight_webhooks = 1;
        config.ingest_timeout = Duration::from_secs(5);
    })
    .await;
    let client = client_from(Ipv4Addr::LOCALHOST);

    // A transaction holding the events table: the first webhook waits for its commit,
    // holding the only place.
    let mut blocker = app.db.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE otter.webhook_events IN EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let (_, first_body) = order(1);
    let first = {
        let client = client.clone();
        let signature = app.signer.sign(&first_body);
        let url = app.url("/webhooks/otter");
        let body = first_body.clone();
        tokio::spawn(async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .header("x-hmac-sha256", signature)
                .body(body)
                .send()
                .await
                .expect("answers");
            let status = response.status().as_u16();
            (status, response.text().await.expect("body"))
        })
    };
    eventually(
        "the first webhook in flight",
        Duration::from_secs(4),
        || async {
            let metrics = app.metrics().await;
            metrics
                .lines()
                .any(|line| line == "relay_webhooks_in_flight 1")
                .then_some(())
        },
    )
    .await;

    let (_, second_body) = order(2);
    let asked = Instant::now();
    let response = client
        .post(app.url("/webhooks/otter"))
        .header("content-type", "application/json")
        .header("x-hmac-sha256", app.signer.sign(&second_body))
        .body(second_body.clone())
        .send()
        .await
        .expect("answers");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"error":"too many webhooks in flight; retry later"}"#
    );
    // The first is answered when its commit wait (ingest_timeout) runs out.
    assert_eq!(
        first.await.expect("joins"),
        (
            503,
            r#"{"error":"temporarily unable to store the event; retry later"}"#.to_owned()
        )
    );

    // Both come again once the table is free, and are stored.
    blocker.rollback().await.expect("rollback");
    for body in [&first_body, &second_body] {
        assert_eq!(
            post(&client, &app, body, &app.signer.sign(body)).await,
            (200, String::new())
        );
    }
    assert_eq!(stored_event_ids(&app).await, ["e01", "e02"]);
    let metrics = app.metrics().await;
    for (family, expected) in [
        (
            "relay_webhooks_total{event_type=\"unknown\",outcome=\"shed\"}",
            "relay_webhooks_total{event_type=\"unknown\",outcome=\"shed\"} 1",
        ),
        (
            "relay_webhooks_total{event_type=\"orders.new_order\",outcome=\"unavailable\"}",
            "relay_webhooks_total{event_type=\"orders.new_order\",outcome=\"unavailable\"} 1",
        ),
        ("relay_webhooks_in_flight", "relay_webhooks_in_flight 0"),
    ] {
        assert_eq!(metric_lines(&metrics, family), [expected], "{metrics}");
    }
}

/// The real binary, configured from the environment only.
fn relay_command(listen: &str, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-relay"));
    command
        .args(args)
        .env_clear()
        .env("RELAY_LISTEN", listen)
        // Nothing listens there: a run that got past the config check would fail differently.
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("RUST_LOG", "warn");
    command
}

#[tokio::test]
async fn insecure_skip_signature_is_refused_unless_the_listener_is_loopback() {
    for listen in ["0.0.0.0:8001", "[::]:8001", "192.0.2.10:8001"] {
        for args in [
            &["--insecure-skip-signature", "check-config"][..],
            &["--insecure-skip-signature", "run"][..],
            &["--insecure-skip-signature"][..],
        ] {
            let output = relay_command(listen, args).output().expect("runs");
            assert_eq!(output.status.code(), Some(1), "{listen} {args:?}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                stderr.trim_end(),
                format!(
                    "Error: invalid config: --insecure-skip-signature is only allowed on a \
                     loopback listen address (RELAY_LISTEN=127.0.0.1:8001), not {listen}: \
                     anyone who can reach it could inject orders"
                ),
                "{listen} {args:?}"
            );
        }
    }
    let mut environment_only = relay_command("0.0.0.0:8001", &["check-config"]);
    environment_only.env("RELAY_INSECURE_SKIP_SIGNATURE", "true");
    let output = environment_only.output().expect("runs");
    assert_eq!(output.status.code(), Some(1));

    for listen in ["127.0.0.1:8001", "[::1]:8001"] {
        let output = relay_command(listen, &["--insecure-skip-signature", "check-config"])
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(0), "{listen}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("config ok (listen {listen}, admin 127.0.0.1:8002)\n")
        );
    }
}
