//! The doors of the kitchen LAN (docs/security.md), checked on every request before a handler
//! runs: the URI's size, the `Host` it names (DNS rebinding), for writes the `Origin`, the
//! fetch site and the content type (CSRF), the paired device behind the token, the write rate
//! per device and the writes queued at the store writer. Every answer carries the security
//! headers (a Content-Security-Policy allowing only the box's own scripts).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use kitchen_daemon::{serve::LocalAddr, sync::LockExt};
use serde_json::json;

use crate::device::{self, Device};

use super::AppState;

/// The cookie a paired browser keeps its token in.
pub const COOKIE: &str = "kitchen_device";
/// Longest path and query accepted.
const MAX_PATH_BYTES: usize = 512;
const MAX_SEGMENT_BYTES: usize = 128;
const MAX_QUERY_BYTES: usize = 2048;
/// Writes waiting for (or in) the store writer at once; past it, `503` at once. A write then
/// never waits behind more than this many commits, so it is answered well within the request
/// timeout and never times out after it committed. (The watchdog's tick goes ahead of them
/// all: `StoreWriter::tick`.)
pub const MAX_PENDING_WRITES: usize = 32;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// What the guard knows beyond the app state: allowed host names, limiters, counters.
pub struct Access {
    /// Lower-case host names the box answers to (its host name, `.local`, `localhost`, and the
    /// configured ones); its IP addresses are checked per connection.
    hosts: Vec<String>,
    /// The provisioning pairing code, normalized (`device::normalize_code`).
    pub bootstrap_code: Option<String>,
    writes: RateLimiter,
    /// Failed pairing attempts per client address.
    pub pairing_failures: RateLimiter,
    pub pending_writes: tokio::sync::Semaphore,
    pub refused: Refused,
    pub streams: super::events::StreamSlots,
}

/// Requests refused at the door, by reason, for `/metrics`.
#[derive(Debug, Default)]
pub struct Refused {
    pub host: AtomicU64,
    pub origin: AtomicU64,
    pub content_type: AtomicU64,
    pub uri: AtomicU64,
    pub unpaired: AtomicU64,
    pub forbidden: AtomicU64,
    pub rate_limited: AtomicU64,
    pub busy: AtomicU64,
}

impl Access {
    pub fn new(config: &crate::Config) -> Self {
        let mut hosts = vec!["localhost".to_owned()];
        if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let name = name.trim().to_ascii_lowercase();
            if !name.is_empty() {
                hosts.push(format!("{name}.local"));
                hosts.push(name);
            }
        }
        hosts.extend(config.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()));
        let rate = f64::from(config.write_rate);
        Self {
            hosts,
            bootstrap_code: config
                .pairing_code
                .as_deref()
                .and_then(device::normalize_code),
            writes: RateLimiter::new(rate, rate * 4.0),
            // Ten wrong codes, then one a minute.
            pairing_failures: RateLimiter::new(1.0 / 60.0, 10.0),
            pending_writes: tokio::sync::Semaphore::new(MAX_PENDING_WRITES),
            refused: Refused::default(),
            streams: super::events::StreamSlots::new(
                config.max_streams,
                config.max_streams_per_device,
            ),
        }
    }

    /// Whether `host` (a `Host` header's value) names this box as reached at `local`.
    fn host_allowed(&self, host: &str, local: Option<IpAddr>) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return match local {
                Some(local) => same_ip(ip, local) || (ip.is_loopback() && local.is_loopback()),
                None => ip.is_loopback(),
            };
        }
        self.hosts.contains(&name)
    }
}

/// A token-bucket limiter per key (a device id, a client address), with a bounded table.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; `false` when it has none left.
    pub fn allow(&self, key: &str) -> bool {
        self.take(key, false)
    }

    /// Whether `key` has a token, without taking it.
    pub fn has(&self, key: &str) -> bool {
        self.take(key, true)
    }

    fn take(&self, key: &str, peek: bool) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock_or_recover();
        if buckets.len() >= 4096 && !buckets.contains_key(key) {
            // Full buckets carry no information: forget them first.
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
            if buckets.len() >= 4096 {
                buckets.clear();
            }
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens < 1.0 {
            return false;
        }
        if !peek {
            *tokens -= 1.0;
        }
        true
    }
}

/// The paired device behind a request (handlers that change something take it).
#[derive(Debug, Clone)]
pub struct Caller(pub Device);

/// Who is asking, as far as the guard could tell; `/api/me` answers with it.
#[derive(Debug, Clone)]
pub enum Identity {
    Paired(Device),
    Revoked(Device),
    Unpaired,
}

/// The client's address, when the server loop recorded it.
pub fn peer(request_extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}

pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let access = &state.access;
    let mut response = match check(&state, &mut request).await {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(refusal) => {
            refusal.count(&access.refused);
            refusal.into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Paths anyone on the LAN may use: liveness, and pairing (page, its script, the call).
fn open_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/pair" | "/api/pair" | "/api/me") || path.starts_with("/static/")
}

/// The pages a browser opens: an unpaired one gets the pairing page instead.
fn page_path(path: &str) -> bool {
    matches!(path, "/" | "/prep" | "/devices" | "/reports")
}

/// Checks everything that does not depend on the handler; on success the request carries
/// its [`Identity`] (and [`Caller`] when paired), and writes hold a pending-write permit.
async fn check<'a>(
    state: &'a AppState,
    request: &mut Request,
) -> Result<Option<tokio::sync::SemaphorePermit<'a>>, Refusal> {
    let access = &state.access;
    let uri = request.uri();
    let path = uri.path().to_owned();
    if path.len() > MAX_PATH_BYTES
        || path
            .split('/')
            .any(|segment| segment.len() > MAX_SEGMENT_BYTES)
        || uri.query().is_some_and(|q| q.len() > MAX_QUERY_BYTES)
    {
        return Err(Refusal::Uri);
    }
    let headers = request.headers();
    let local = request
        .extensions()
        .get::<LocalAddr>()
        .map(|LocalAddr(addr)| addr.ip());
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !access.host_allowed(&host, local) {
        return Err(Refusal::Host(host));
    }
    let write = !matches!(*request.method(), Method::GET | Method::HEAD);
    if write {
        check_write_headers(headers, &host)?;
    }
    // Open paths need no device (only `/api/me` says who the caller is): no store read for
    // liveness probes and scripts.
    if open_path(&path) && path != "/api/me" {
        return Ok(None);
    }
    let identity = identify(state, headers).await?;
    request.extensions_mut().insert(identity.clone());
    if open_path(&path) {
        return Ok(None);
    }
    let loopback = peer(request.extensions()).is_some_and(|addr| addr.ip().is_loopback());
    let device = match identity {
        Identity::Paired(device) => device,
        // Local monitoring (systemd, a health check on the box) needs no token for these.
        _ if loopback && matches!(path.as_str(), "/readyz" | "/metrics") => return Ok(None),
        Identity::Revoked(_) | Identity::Unpaired if page_path(&path) && !write => {
            return Err(Refusal::PairingPage);
        }
        Identity::Revoked(device) => return Err(Refusal::Revoked(device.name)),
        Identity::Unpaired => return Err(Refusal::Unpaired),
    };
    if matches!(path.as_str(), "/readyz" | "/metrics")
        && !loopback
        && !device.may(device::Action::Manage)
    {
        return Err(Refusal::Forbidden(format!(
            "{path} is for a manager device or the box itself"
        )));
    }
    let permit = if write {
        if !access.writes.allow(&device.id) {
            return Err(Refusal::RateLimited);
        }
        Some(
            access
                .pending_writes
                .try_acquire()
                .map_err(|_| Refusal::Busy)?,
        )
    } else {
        None
    };
    request.extensions_mut().insert(Caller(device));
    Ok(permit)
}

/// A write must come from the box's own pages (or a client that is not a browser) and carry
/// JSON: a form post from another site has a foreign `Origin`, a cross-site fetch mode and a
/// form content type, and is refused on each.
fn check_write_headers(headers: &HeaderMap, host: &str) -> Result<(), Refusal> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let same = ["http://", "https://"].iter().any(|scheme| {
            origin
                .strip_prefix(scheme)
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
        });
        if !same {
            return Err(Refusal::Origin(origin.to_owned()));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site")
        && matches!(site.as_bytes(), b"cross-site" | b"same-site")
    {
        return Err(Refusal::Origin(format!(
            "Sec-Fetch-Site: {}",
            site.to_str().unwrap_or_default()
        )));
    }
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0")
        || headers.contains_key(header::TRANSFER_ENCODING);
    match headers.get(header::CONTENT_TYPE) {
        Some(kind) => {
            let kind = kind.to_str().unwrap_or_default();
            let essence = kind.split(';').next().unwrap_or_default().trim();
            if !essence.eq_ignore_ascii_case("application/json") {
                return Err(Refusal::ContentType(kind.to_owned()));
            }
        }
        None if has_body => return Err(Refusal::ContentType(String::new())),
        None => {}
    }
    Ok(())
}

/// The device behind the request's token (`Authorization: Bearer`, else the cookie).
async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Identity, Refusal> {
    let Some(token) = token(headers) else {
        return Ok(Identity::Unpaired);
    };
    // Anything that long is not one of ours; do not hash megabytes.
    if token.len() > 128 {
        return Ok(Identity::Unpaired);
    }
    let hash = device::token_hash(token);
    match state
        .readers
        .with(|store| store.device_by_token(&hash))
        .await
    {
        Ok(Some(device)) if device.revoked_at_ms.is_some() => Ok(Identity::Revoked(device)),
        Ok(Some(device)) => Ok(Identity::Paired(device)),
        Ok(None) => Ok(Identity::Unpaired),
        Err(error) => {
            tracing::error!(%error, "cannot read the paired devices");
            Err(Refusal::Internal)
        }
    }
}

/// The token a request presents.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

/// Why the guard answered instead of the handler.
enum Refusal {
    Uri,
    Host(String),
    Origin(String),
    ContentType(String),
    PairingPage,
    Unpaired,
    Revoked(String),
    Forbidden(String),
    RateLimited,
    Busy,
    Internal,
}

impl Refusal {
    fn count(&self, refused: &Refused) {
        let counter = match self {
            Refusal::Uri => &refused.uri,
            Refusal::Host(_) => &refused.host,
            Refusal::Origin(_) => &refused.origin,
            Refusal::ContentType(_) => &refused.content_type,
            Refusal::PairingPage | Refusal::Unpaired | Refusal::Revoked(_) => &refused.unpaired,
            Refusal::Forbidden(_) => &refused.forbidden,
            Refusal::RateLimited => &refused.rate_limited,
            Refusal::Busy | Refusal::Internal => &refused.busy,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let json = |status: StatusCode, message: String| {
            (status, axum::Json(json!({ "error": message }))).into_response()
        };
        match self {
            Refusal::Uri => json(StatusCode::URI_TOO_LONG, "path or query too long".into()),
            Refusal::Host(host) => json(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this box does not answer to the host name {host:?} (allowed_hosts in docs/agent.md)"
                ),
            ),
            Refusal::Origin(origin) => json(
                StatusCode::FORBIDDEN,
                format!("cross-origin write refused ({origin})"),
            ),
            Refusal::ContentType(kind) => json(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("send application/json, not {kind:?}"),
            ),
            Refusal::PairingPage => super::pairing::page(),
            Refusal::Unpaired => with_header(
                json(
                    StatusCode::UNAUTHORIZED,
                    "this device is not paired: pair it at /pair, or send Authorization: Bearer <token>".into(),
                ),
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"kitchen\"",
            ),
            Refusal::Revoked(name) => json(
                StatusCode::UNAUTHORIZED,
                format!("the pairing of {name:?} was revoked by a manager: pair it again at /pair"),
            ),
            Refusal::Forbidden(reason) => json(StatusCode::FORBIDDEN, reason),
            Refusal::RateLimited => with_header(
                json(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many writes from this device: slow down".into(),
                ),
                header::RETRY_AFTER,
                "1",
            ),
            Refusal::Busy => with_header(
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the kitchen is busy writing: try again".into(),
                ),
                header::RETRY_AFTER,
                "1",
            ),
            Refusal::Internal => json(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()),
        }
    }
}

fn with_header(mut response: Response, name: header::HeaderName, value: &'static str) -> Response {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
    response
}

/// The host part of a `Host` header value (`name`, `1.2.3.4`, `[::1]`), without the port.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// IPv4 addresses also arrive IPv4-mapped on a dual-stack socket.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    canonical(a) == canonical(b)
}

/// Refuses a request a device's role does not allow, saying what it may not do.
pub fn forbid(device: &Device, action: device::Action<'_>, what: &str) -> Option<Response> {
    if device.may(action) {
        return None;
    }
    let who = match &device.station {
        Some(station) => format!("{} ({} at {station})", device.name, device.role),
        None => format!("{} ({})", device.name, device.role),
    };
    Some(
        (
            StatusCode::FORBIDDEN,
            axum::Json(json!({ "error": format!("{who} may not {what}") })),
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_without_ports() {
        assert_eq!(host_name("box.local:8080"), "box.local");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
        assert_eq!(host_name("10.0.0.5"), "10.0.0.5");
        assert_eq!(host_name(""), "");
    }

    #[test]
    fn hosts_the_box_answers_to() {
        let access = Access::new(&crate::Config {
            allowed_hosts: vec!["KDS.Example".into()],
            ..crate::Config::default()
        });
        let lan: IpAddr = "192.168.1.20".parse().expect("ip");
        let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(access.host_allowed("192.168.1.20:8080", Some(lan)));
        assert!(access.host_allowed("[::ffff:192.168.1.20]:8080", Some(lan)));
        assert!(!access.host_allowed("192.168.1.21:8080", Some(lan)));
        assert!(access.host_allowed("127.0.0.2:8080", Some(loopback)));
        assert!(!access.host_allowed("127.0.0.1:8080", Some(lan)));
        assert!(access.host_allowed("localhost:8080", Some(lan)));
        assert!(access.host_allowed("kds.example", Some(lan)));
        assert!(!access.host_allowed("attacker.example:8080", Some(lan)));
        assert!(!access.host_allowed("", Some(lan)));
    }

    #[test]
    fn tokens_from_the_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; kitchen_device=kd1_x"),
        );
        assert_eq!(token(&headers), Some("kd1_x"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer kd1_y"),
        );
        assert_eq!(token(&headers), Some("kd1_y"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(token(&headers), None);
    }

    #[test]
    fn writes_need_the_same_origin_and_json() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        let host = "192.168.1.20:8080";
        assert!(check_write_headers(&headers(&[]), host).is_ok());
        assert!(
            check_write_headers(&headers(&[("origin", "http://192.168.1.20:8080")]), host).is_ok()
        );
        assert!(check_write_headers(&headers(&[("origin", "http://evil.example")]), host).is_err());
        assert!(check_write_headers(&headers(&[("origin", "null")]), host).is_err());
        assert!(check_write_headers(&headers(&[("sec-fetch-site", "cross-site")]), host).is_err());
        assert!(
            check_write_headers(
                &headers(&[
                    ("content-type", "application/json; charset=utf-8"),
                    ("content-length", "2")
                ]),
                host
            )
            .is_ok()
        );
        assert!(check_write_headers(&headers(&[("content-type", "text/plain")]), host).is_err());
        assert!(
            check_write_headers(
                &headers(&[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("content-length", "0")
                ]),
                host
            )
            .is_err()
        );
        assert!(check_write_headers(&headers(&[("content-length", "5")]), host).is_err());
    }

    #[test]
    fn the_rate_limiter_refills() {
        let limiter = RateLimiter::new(1000.0, 2.0);
        assert!(limiter.allow("a"));
        assert!(limiter.allow("a"));
        assert!(!limiter.allow("a"));
        assert!(limiter.allow("b"));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(limiter.allow("a"));
    }
}
