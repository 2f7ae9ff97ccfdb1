//! A test double of Otter's public API (the facts of docs/otter.md's Sources table), on
//! 127.0.0.1 port 0: the OAuth2 token endpoint, the manager order actions, menu
//! suspend/unsuspend with asynchronous jobs and their status, each checked the way Otter
//! documents it (Bearer token, `X-Store-Id`, required body fields), with its own per-(store,
//! endpoint) rate limiter answering `429`, scripted failures, and a record of every request.
//!
//! ```no_run
//! # async fn example() {
//! use kitchen_testkit::otter::OtterDouble;
//! let otter = OtterDouble::start("client-id", "client-secret").await;
//! // point the relay at otter.url() ...
//! let calls = otter.wait_for_calls(1, std::time::Duration::from_secs(5)).await;
//! assert_eq!(calls[0].path, "/manager/order/v1/sources/ubereats/orders/o-1/confirm");
//! # }
//! ```
//!
//! Dropping the double stops its server.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use wire::{endpoint_of, missing_field, parse_form};

#[cfg(test)]
mod tests;
mod wire;

/// One request the double answered.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    pub method: String,
    pub path: String,
    /// `X-Store-Id`.
    pub store_id: Option<String>,
    /// `Authorization`.
    pub authorization: Option<String>,
    /// The JSON body (`None` when empty or not JSON; the token call's form is in `form`).
    pub body: Option<Value>,
    /// The token call's form fields.
    pub form: Vec<(String, String)>,
    /// The limiter's endpoint name: `token`, `order_created`, `confirm`, `ready`, `fulfill`,
    /// `cancel`, `prep_time`, `suspend`, `unsuspend`, `job_status`, or `unknown`.
    pub endpoint: String,
    /// The status the double answered.
    pub status: u16,
    pub at: Instant,
}

/// How a menu job ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    Success,
    Failed,
}

/// What the double does; changed through `OtterDouble`'s setters while it runs.
#[derive(Debug)]
struct Script {
    expires_in: u64,
    /// Per-(store, endpoint) limit within `window`; `None`: no limit.
    limit: Option<(u32, Duration)>,
    /// Per-endpoint overrides of the limit.
    endpoint_limits: HashMap<String, u32>,
    /// Seconds sent in `Retry-After` with a 429.
    retry_after: Option<u64>,
    /// Answer 500 to resource calls until then.
    fail_until: Option<Instant>,
    /// Answer this status to the next N resource calls.
    fail_next: Option<(u32, u16)>,
    /// Answer (status, body) to calls whose path ends with the key.
    fail_paths: Vec<(String, u16, Value)>,
    /// Polls answered PENDING before a job ends, and how it ends.
    job: (u32, JobEnd),
}

#[derive(Debug, Default)]
struct Live {
    calls: Vec<RecordedCall>,
    /// Tokens issued and when they expire.
    tokens: HashMap<String, Instant>,
    token_requests: u32,
    /// (store, endpoint) → times of the calls it let through.
    windows: HashMap<(String, String), Vec<Instant>>,
    /// job id → (PENDING polls left, end).
    jobs: HashMap<String, (u32, JobEnd)>,
    next_id: u64,
}

struct Inner {
    client_id: String,
    client_secret: String,
    script: Mutex<Script>,
    live: Mutex<Live>,
}

/// The running double.
pub struct OtterDouble {
    addr: SocketAddr,
    inner: Arc<Inner>,
    server: JoinHandle<()>,
}

impl Drop for OtterDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl OtterDouble {
    /// Starts the double; it issues tokens to `client_id` / `client_secret` only. Tokens last
    /// an hour, there is no rate limit, jobs succeed at once, nothing fails until told.
    pub async fn start(client_id: &str, client_secret: &str) -> Self {
        let inner = Arc::new(Inner {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            script: Mutex::new(Script {
                expires_in: 3600,
                limit: None,
                endpoint_limits: HashMap::new(),
                retry_after: None,
                fail_until: None,
                fail_next: None,
                fail_paths: Vec::new(),
                job: (0, JobEnd::Success),
            }),
            live: Mutex::new(Live::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the otter double");
        let addr = listener.local_addr().expect("local addr");
        let state = inner.clone();
        let router = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { state.answer(method, uri, headers, body) }
            },
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            addr,
            inner,
            server,
        }
    }

    /// The base URL (`OTTER_API_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `expires_in` of the tokens issued from now on (seconds).
    pub fn set_expires_in(&self, seconds: u64) {
        lock(&self.inner.script).expires_in = seconds;
    }

    /// At most `limit` calls per (store, endpoint) within any `window`; more are answered 429.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        lock(&self.inner.script).limit = Some((limit, window));
    }

    /// A different limit for one endpoint (`suspend`, `job_status`, ...), same window.
    pub fn set_endpoint_limit(&self, endpoint: &str, limit: u32) {
        lock(&self.inner.script)
            .endpoint_limits
            .insert(endpoint.to_owned(), limit);
    }

    /// `Retry-After: seconds` on 429 answers (`None`: no header, as Otter documents).
    pub fn set_retry_after(&self, seconds: Option<u64>) {
        lock(&self.inner.script).retry_after = seconds;
    }

    /// Answers 500 to every resource call for `duration` from now.
    pub fn fail_for(&self, duration: Duration) {
        lock(&self.inner.script).fail_until = Some(Instant::now() + duration);
    }

    /// Answers `status` to the next `count` resource calls (a 429 with `Retry-After` when
    /// [`set_retry_after`](Self::set_retry_after) gave one).
    pub fn fail_next(&self, count: u32, status: u16) {
        lock(&self.inner.script).fail_next = Some((count, status));
    }

    /// Answers `status` with `body` to every call whose path ends with `suffix`.
    pub fn fail_path(&self, suffix: &str, status: u16, body: Value) {
        lock(&self.inner.script)
            .fail_paths
            .push((suffix.to_owned(), status, body));
    }

    /// Jobs made from now on answer PENDING `pending_polls` times, then end as `end`.
    pub fn set_job(&self, pending_polls: u32, end: JobEnd) {
        lock(&self.inner.script).job = (pending_polls, end);
    }

    /// Every token issued so far is refused (401) from now on.
    pub fn revoke_tokens(&self) {
        lock(&self.inner.live).tokens.clear();
    }

    /// Token requests received (answered or not).
    pub fn token_requests(&self) -> u32 {
        lock(&self.inner.live).token_requests
    }

    /// Every request so far, in arrival order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.inner.live).calls.clone()
    }

    /// The requests other than token requests.
    pub fn resource_calls(&self) -> Vec<RecordedCall> {
        self.calls()
            .into_iter()
            .filter(|call| call.endpoint != "token")
            .collect()
    }

    /// Waits until at least `count` resource calls were answered 2xx, at most `timeout`, and
    /// returns those calls (panics on timeout, listing what arrived).
    pub async fn wait_for_calls(&self, count: usize, timeout: Duration) -> Vec<RecordedCall> {
        self.wait_until(timeout, |calls| {
            let ok: Vec<RecordedCall> = calls
                .iter()
                .filter(|call| call.endpoint != "token" && (200..300).contains(&call.status))
                .cloned()
                .collect();
            (ok.len() >= count).then_some(ok)
        })
        .await
    }

    /// Polls the record until `check` returns `Some`, at most `timeout`.
    pub async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[RecordedCall]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check(&lock(&self.inner.live).calls) {
                return value;
            }
            if Instant::now() >= deadline {
                let calls = self.calls();
                let seen: Vec<(String, String, u16)> = calls
                    .iter()
                    .map(|c| (c.method.clone(), c.path.clone(), c.status))
                    .collect();
                panic!(
                    "the otter double did not see what was awaited within {timeout:?}: {seen:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json_answer(status, json!({"message": message, "details": []}))
}

impl Inner {
    fn answer(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let path = uri.path().to_owned();
        let endpoint = endpoint_of(&method, &path);
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let store_id = headers
            .get("x-store-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let authorization = text(header::AUTHORIZATION);
        let json_body: Option<Value> = serde_json::from_slice(&body).ok();
        let form = if endpoint == "token" {
            parse_form(&body)
        } else {
            Vec::new()
        };
        let response = if endpoint == "token" {
            self.token(&form, authorization.as_deref())
        } else if endpoint == "order_created" && !headers.contains_key("x-event-id") {
            error(StatusCode::BAD_REQUEST, "X-Event-Id is required")
        } else {
            self.resource(
                endpoint,
                &path,
                store_id.as_deref(),
                authorization.as_deref(),
                json_body.as_ref(),
            )
        };
        lock(&self.live).calls.push(RecordedCall {
            method: method.to_string(),
            path,
            store_id,
            authorization,
            body: json_body,
            form,
            endpoint: endpoint.to_owned(),
            status: response.status().as_u16(),
            at: Instant::now(),
        });
        response
    }

    /// `POST /v1/auth/token`: client credentials in the form or in Basic auth.
    fn token(&self, form: &[(String, String)], authorization: Option<&str>) -> Response {
        let field = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let mut live = lock(&self.live);
        live.token_requests += 1;
        if field("grant_type").as_deref() != Some("client_credentials") {
            return error(
                StatusCode::BAD_REQUEST,
                "grant_type must be client_credentials",
            );
        }
        let basic = authorization
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
            })
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|pair| {
                pair.split_once(':')
                    .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
            });
        let (id, secret) = match basic {
            Some(pair) => pair,
            None => (
                field("client_id").unwrap_or_default(),
                field("client_secret").unwrap_or_default(),
            ),
        };
        if id != self.client_id || secret != self.client_secret {
            return error(StatusCode::UNAUTHORIZED, "invalid client credentials");
        }
        let Some(scope) = field("scope") else {
            return error(StatusCode::BAD_REQUEST, "scope is required");
        };
        let expires_in = lock(&self.script).expires_in;
        live.next_id += 1;
        let token = format!("token-{}", live.next_id);
        live.tokens.insert(
            token.clone(),
            Instant::now() + Duration::from_secs(expires_in),
        );
        json_answer(
            StatusCode::OK,
            json!({"access_token": token, "expires_in": expires_in, "scope": scope,
                   "token_type": "bearer"}),
        )
    }

    fn resource(
        &self,
        endpoint: &'static str,
        path: &str,
        store_id: Option<&str>,
        authorization: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let bearer = authorization.and_then(|value| value.strip_prefix("Bearer "));
        {
            let live = lock(&self.live);
            let valid = bearer
                .and_then(|token| live.tokens.get(token))
                .is_some_and(|expires| *expires > Instant::now());
            if !valid {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "missing, expired or unknown token",
                );
            }
        }
        if endpoint == "unknown" {
            return error(StatusCode::NOT_FOUND, "no such endpoint");
        }
        let Some(store_id) = store_id.filter(|id| !id.is_empty() && id.len() <= 255) else {
            return error(StatusCode::BAD_REQUEST, "X-Store-Id is required");
        };
        let mut script = lock(&self.script);
        if let Some((_, status, body)) = script
            .fail_paths
            .iter()
            .find(|(suffix, _, _)| path.ends_with(suffix.as_str()))
        {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
            return json_answer(status, body.clone());
        }
        if script
            .fail_until
            .is_some_and(|until| Instant::now() < until)
        {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "scripted outage");
        }
        if let Some((count, status)) = script.fail_next
            && count > 0
        {
            script.fail_next = (count > 1).then_some((count - 1, status));
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = error(status, "scripted failure");
            if let (StatusCode::TOO_MANY_REQUESTS, Some(seconds)) = (status, script.retry_after) {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            }
            return response;
        }
        if let Some((limit, window)) = script.limit {
            let limit = script
                .endpoint_limits
                .get(endpoint)
                .copied()
                .unwrap_or(limit);
            let mut live = lock(&self.live);
            let now = Instant::now();
            let times = live
                .windows
                .entry((store_id.to_owned(), endpoint.to_owned()))
                .or_default();
            times.retain(|at| now.duration_since(*at) < window);
            if times.len() >= limit as usize {
                let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
                if let Some(seconds) = script.retry_after {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
                }
                return response;
            }
            times.push(now);
        }
        let job = script.job;
        drop(script);
        if let Some(missing) = missing_field(endpoint, body) {
            return error(StatusCode::BAD_REQUEST, &format!("{missing} is required"));
        }
        let mut live = lock(&self.live);
        match endpoint {
            "suspend" | "unsuspend" => {
                live.next_id += 1;
                let id = format!("job-{}", live.next_id);
                live.jobs.insert(id.clone(), job);
                json_answer(
                    StatusCode::ACCEPTED,
                    json!({"jobReference": {"id": id, "status": "PENDING"},
                           "jobType": "UPDATE_AVAILABILITY"}),
                )
            }
            "job_status" => {
                let id = path.rsplit('/').next().unwrap_or_default().to_owned();
                let Some((pending, end)) = live.jobs.get_mut(&id) else {
                    return error(StatusCode::NOT_FOUND, "no such job");
                };
                let status = if *pending > 0 {
                    *pending -= 1;
                    "PENDING"
                } else if *end == JobEnd::Success {
                    "SUCCESS"
                } else {
                    "FAILED"
                };
                json_answer(
                    StatusCode::OK,
                    json!({"jobReference": {"id": id, "status": status},
                           "jobType": "UPDATE_AVAILABILITY"}),
                )
            }
            // Otter documents 200 (and no body) for this one, 202 for the order actions.
            "order_created" => StatusCode::OK.into_response(),
            _ => StatusCode::ACCEPTED.into_response(),
        }
    }
}
