//! HTTP clients for tests: JSON requests and a reader of server-sent events. Every request
//! carries `Authorization: Bearer TEST_TOKEN`: the agent's test harnesses pair a manager
//! device with that token (the relay ignores it). Tests of unpaired or other devices build
//! their own requests.

use std::{
    pin::Pin,
    time::{Duration, Instant},
};

use futures_util::{Stream, StreamExt};

/// The token of the manager device test agents are paired with (only its hash is stored).
pub const TEST_TOKEN: &str = "kd1_test-manager-token-for-the-test-harness-only";
/// The name of that device, as records name it.
pub const TEST_DEVICE: &str = "test-manager";

/// A client builder, with ring installed as the process's rustls provider first (reqwest has
/// none of its own in this workspace; see the workspace Cargo.toml). Every client a test or
/// tool builds comes from here.
pub fn builder() -> reqwest::ClientBuilder {
    // Already installed (by an earlier call, or the relay in process): the same provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A client without the test device's token (a stranger, an unpaired tablet, the relay).
pub fn bare() -> reqwest::Client {
    builder().build().expect("client")
}

/// A client that presents [`TEST_TOKEN`].
pub fn client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_str(&format!("Bearer {TEST_TOKEN}"))
                    .expect("ascii"),
            );
            builder().default_headers(headers).build().expect("client")
        })
        .clone()
}

/// `GET url` as the test manager device.
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    client().get(url).send().await
}

/// `GET url` and its JSON body (whatever the status).
pub async fn get_json(url: &str) -> serde_json::Value {
    let response = get(url).await.expect("answers");
    response.json().await.expect("json")
}

/// `POST url` without a body, and its JSON body (whatever the status).
pub async fn post_json(url: &str) -> serde_json::Value {
    let response = client().post(url).send().await.expect("answers");
    response.json().await.expect("json")
}

/// Polls `{base}/readyz` until it answers 200, for at most `timeout` (the service is expected
/// to be listening already: a refused connection fails at once).
pub async fn wait_ready(base: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while get(format!("{base}/readyz"))
        .await
        .expect("answers")
        .status()
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "{base} never became ready within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads SSE frames `(id, event, data)` from a streaming response.
pub struct SseReader {
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    /// Opens `url` (sending `Last-Event-ID` if given) and checks it is an event stream.
    pub async fn open(url: &str, last_event_id: Option<&str>) -> Self {
        let mut request = client().get(url);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("sse answers");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().expect("ascii"),
            "text/event-stream"
        );
        Self {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event `(id, event, data)` (keep-alive comments skipped), within 10 s.
    pub async fn next(&mut self) -> (String, String, serde_json::Value) {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
    }

    /// The next event within `timeout`, or `None`.
    pub async fn next_within(
        &mut self,
        timeout: Duration,
    ) -> Option<(String, String, serde_json::Value)> {
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let frame: String = self.buffer.drain(..end + 2).collect();
                    let field = |name: &str| {
                        frame
                            .lines()
                            .find_map(|l| l.strip_prefix(&format!("{name}:")))
                            .map(|v| v.trim_start().to_owned())
                    };
                    let Some(data) = field("data") else { continue };
                    return (
                        field("id").unwrap_or_default(),
                        field("event").unwrap_or_default(),
                        serde_json::from_str(&data).expect("json data"),
                    );
                }
                let chunk = self
                    .stream
                    .next()
                    .await
                    .expect("stream open")
                    .expect("bytes");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .ok()
    }
}
