//! The Otter API client: OAuth2 client credentials (the token cached and renewed before it
//! runs out; a 401 gets one fresh token and one retry), `Authorization: Bearer` and
//! `X-Store-Id` on each call, a timeout on each request, and every answer sorted into what the
//! dispatcher does with it ([`Answer`]). No retry loop here: retries are the outbox's
//! (`next_attempt_at`), so they survive restarts and share the rate budgets.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::metrics::OtterMetrics;
use crate::config::OtterApiConfig;

/// After a failed token request, calls fail fast for this long instead of asking again
/// (Otter allows 3 unauthenticated requests a minute per address, otter-api.md §6).
const TOKEN_RETRY: Duration = Duration::from_secs(20);

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Success { status: u16, body: String },
    /// 429: wait `Retry-After` when given, else back off.
    RateLimited {
        retry_after: Option<Duration>,
        body: String,
    },
    /// 5xx, a network error or timeout, no token, or 401 again with a fresh token: retry later.
    Transient {
        status: Option<u16>,
        reason: String,
        body: Option<String>,
    },
    /// Any other 4xx: Otter will never take it; parked, never retried.
    Rejected { status: u16, body: String },
}

/// A token and when to renew it.
struct Token {
    value: SecretString,
    renew_at: Instant,
}

#[derive(Default)]
struct TokenState {
    token: Option<Token>,
    /// When the last token request failed, and why.
    failed: Option<(Instant, String)>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

pub struct OtterClient {
    http: reqwest::Client,
    base: String,
    client_id: SecretString,
    client_secret: SecretString,
    scopes: String,
    token_path: String,
    refresh_before: Duration,
    answer_max_bytes: usize,
    token: Mutex<TokenState>,
    metrics: Arc<OtterMetrics>,
}

impl OtterClient {
    /// `None` when the client is off (no `OTTER_API_URL`).
    pub fn new(
        config: &OtterApiConfig,
        metrics: Arc<OtterMetrics>,
    ) -> Result<Option<Self>, reqwest::Error> {
        let (Some(url), Some(client_id), Some(client_secret)) =
            (&config.url, &config.client_id, &config.client_secret)
        else {
            return Ok(None);
        };
        // One crypto provider in the process (ring, as sqlx and lapin use); an error only
        // means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .tcp_nodelay(true)
            .build()?;
        Ok(Some(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            scopes: config.scopes.clone(),
            token_path: config.paths.token.clone(),
            refresh_before: config.token_refresh_before,
            answer_max_bytes: config.answer_max_bytes,
            token: Mutex::new(TokenState::default()),
            metrics,
        }))
    }

    /// One call: `method path` at `store_id`'s budget, with `body` as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        store_id: &str,
        body: Option<&serde_json::Value>,
    ) -> Answer {
        for fresh in [false, true] {
            let token = match self.token(fresh).await {
                Ok(token) => token,
                Err(reason) => {
                    return Answer::Transient {
                        status: None,
                        reason,
                        body: None,
                    };
                }
            };
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(token.expose_secret())
                .header("X-Store-Id", store_id);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    return Answer::Transient {
                        status: None,
                        reason: describe(&error),
                        body: None,
                    };
                }
            };
            let status = response.status();
            let retry_after = retry_after(response.headers());
            let text = self.read_body(response).await;
            if status == StatusCode::UNAUTHORIZED && !fresh {
                // Otter warns of spurious 401s: one fresh token, one retry.
                self.forget_token(&token).await;
                continue;
            }
            return self.sort(status, retry_after, text);
        }
        Answer::Transient {
            status: Some(401),
            reason: "Otter answered 401 to a fresh token too".into(),
            body: None,
        }
    }

    fn sort(&self, status: StatusCode, retry_after: Option<Duration>, body: String) -> Answer {
        let code = status.as_u16();
        if status.is_success() {
            Answer::Success { status: code, body }
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            Answer::RateLimited { retry_after, body }
        } else if status.is_client_error() && status != StatusCode::UNAUTHORIZED {
            Answer::Rejected { status: code, body }
        } else {
            Answer::Transient {
                status: Some(code),
                reason: format!("Otter answered {code}"),
                body: Some(body),
            }
        }
    }

    async fn read_body(&self, response: reqwest::Response) -> String {
        let bytes = response.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        truncate(&text, self.answer_max_bytes).to_owned()
    }

    /// The cached token, or a new one when there is none, it is due for renewal, or `fresh`.
    async fn token(&self, fresh: bool) -> Result<SecretString, String> {
        let mut state = self.token.lock().await;
        if let Some(token) = &state.token
            && !fresh
            && Instant::now() < token.renew_at
        {
            return Ok(token.value.clone());
        }
        if let Some((at, reason)) = &state.failed
            && at.elapsed() < TOKEN_RETRY
        {
            return Err(reason.clone());
        }
        match self.fetch_token().await {
            Ok(token) => {
                self.metrics.token_fetches[0].fetch_add(1, Ordering::Relaxed);
                let value = token.value.clone();
                state.token = Some(token);
                state.failed = None;
                Ok(value)
            }
            Err(reason) => {
                self.metrics.token_fetches[1].fetch_add(1, Ordering::Relaxed);
                tracing::error!(%reason, "cannot get an Otter API token; calls wait");
                state.token = None;
                state.failed = Some((Instant::now(), reason.clone()));
                Err(reason)
            }
        }
    }

    /// Drops `used` if it is still the cached token (another call may have renewed it).
    async fn forget_token(&self, used: &SecretString) {
        let mut state = self.token.lock().await;
        if state
            .token
            .as_ref()
            .is_some_and(|token| token.value.expose_secret() == used.expose_secret())
        {
            state.token = None;
        }
    }

    async fn fetch_token(&self) -> Result<Token, String> {
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", self.scopes.as_str()),
            ("client_id", self.client_id.expose_secret()),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        let response = self
            .http
            .post(format!("{}{}", self.base, self.token_path))
            .form(&form)
            .send()
            .await
            .map_err(|error| format!("token request: {}", describe(&error)))?;
        let status = response.status();
        if !status.is_success() {
            let body = self.read_body(response).await;
            return Err(format!(
                "token request answered {}: {}",
                status.as_u16(),
                otter_message(&body)
            ));
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|error| format!("token answer unreadable: {}", describe(&error)))?;
        let lifetime = Duration::from_secs(answer.expires_in);
        let early = self.refresh_before.min(lifetime / 2);
        Ok(Token {
            value: SecretString::from(answer.access_token),
            renew_at: Instant::now() + lifetime - early,
        })
    }
}

/// `Retry-After` in seconds (an HTTP date is not honoured: backoff applies).
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A reqwest error with its cause, without the URL's query (there is none) or secrets.
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        error.to_string()
    };
    if let Some(source) = error.source() {
        text.push_str(&format!(": {source}"));
    }
    text
}

/// The `message` of Otter's error body (`{"message": ..., "details": [...]}`), else the body.
pub fn otter_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorMessage {
        message: Option<String>,
    }
    serde_json::from_str::<ErrorMessage>(body)
        .ok()
        .and_then(|error| error.message)
        .filter(|message| !message.trim().is_empty())
        .unwrap_or_else(|| truncate(body.trim(), 200).to_owned())
}

/// At most `max` bytes, cut on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_and_headers_are_read_leniently() {
        assert_eq!(
            otter_message(r#"{"message":"order already cancelled","details":[]}"#),
            "order already cancelled"
        );
        assert_eq!(otter_message("  gateway down "), "gateway down");
        assert_eq!(otter_message(r#"{"message":""}"#), r#"{"message":""}"#);
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("hello", 10), "hello");
        let mut headers = header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, "3".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            header::RETRY_AFTER,
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().expect("header"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
