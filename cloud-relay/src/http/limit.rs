//! Per-client limits on rejected requests. Each client address has a token bucket that its
//! rejected (4xx) requests drain and that refills at `per_minute`; while it is empty the
//! address is answered `429` before its request is read or its signature computed. Requests
//! that succeed take nothing, so a client sending good webhooks is never limited by them.
//! The same table samples the log: the first rejection of an address in a minute is logged,
//! the rest counted and reported with the next line.
//!
//! The table is bounded (`max_clients`): addresses whose bucket is full again are forgotten
//! first, then the least recently rejected. IPv6 clients are keyed by their /64, the block one
//! machine typically holds.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{ConnectInfo, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use kitchen_daemon::sync::LockExt;
use serde_json::json;

use super::{AppState, webhook::RejectionNote};

/// How often each client's rejections are logged.
const LOG_WINDOW: Duration = Duration::from_secs(60);
/// Longest request path quoted in a log line.
const MAX_LOGGED_PATH: usize = 100;

/// The limits (`rejected_burst`, `rejected_per_minute`, `rejected_max_clients`).
#[derive(Debug, Clone, Copy)]
pub struct RejectionLimits {
    /// Rejections an address may have in a row; 0 turns the limit off (the log is still
    /// sampled).
    pub burst: u32,
    /// Rejections earned back per minute.
    pub per_minute: u32,
    /// Addresses remembered at most.
    pub max_clients: usize,
}

/// Whether a request may be handled.
#[derive(Debug, PartialEq)]
pub enum Admission {
    Allowed,
    /// Answer `429`; the address earns its next rejection back in this many seconds.
    Limited {
        retry_after_secs: u64,
    },
}

/// Whether a rejection is logged.
#[derive(Debug, PartialEq)]
pub enum LogSample {
    /// Log it, with how many of this client's rejections were not logged since its last line.
    Log {
        suppressed: u64,
    },
    Suppress,
}

#[derive(Debug)]
struct Client {
    /// Rejections left, as of `updated`.
    tokens: f64,
    updated: Instant,
    logged: Option<Instant>,
    suppressed: u64,
}

/// The per-address table; `now` comes in, so the tests drive the clock.
#[derive(Debug)]
pub struct RejectionLimiter {
    limits: RejectionLimits,
    clients: Mutex<HashMap<IpAddr, Client>>,
}

impl RejectionLimiter {
    pub fn new(limits: RejectionLimits) -> Self {
        Self {
            limits,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn per_second(&self) -> f64 {
        f64::from(self.limits.per_minute) / 60.0
    }

    fn tokens(&self, client: &Client, now: Instant) -> f64 {
        let earned =
            now.saturating_duration_since(client.updated).as_secs_f64() * self.per_second();
        (client.tokens + earned).min(f64::from(self.limits.burst))
    }

    /// Before a request from `ip` is read: may it be?
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Admission {
        if self.limits.burst == 0 {
            return Admission::Allowed;
        }
        let clients = self.clients.lock_or_recover();
        let Some(client) = clients.get(&client_key(ip)) else {
            return Admission::Allowed;
        };
        let tokens = self.tokens(client, now);
        if tokens >= 1.0 {
            Admission::Allowed
        } else {
            // `validate` makes `per_minute` at least 1 when the limit is on.
            let wait = (1.0 - tokens) / self.per_second();
            // Less a hair, so float error cannot round 6.000000001 s up to 7.
            Admission::Limited {
                retry_after_secs: ((wait - 1e-6).ceil() as u64).max(1),
            }
        }
    }

    /// A request from `ip` was rejected: it takes one of the address's rejections and is
    /// logged or counted.
    pub fn rejected(&self, ip: IpAddr, now: Instant) -> LogSample {
        let key = client_key(ip);
        let mut clients = self.clients.lock_or_recover();
        if !clients.contains_key(&key) && clients.len() >= self.limits.max_clients {
            self.evict(&mut clients, now);
        }
        let burst = f64::from(self.limits.burst);
        let client = clients.entry(key).or_insert(Client {
            tokens: burst,
            updated: now,
            logged: None,
            suppressed: 0,
        });
        client.tokens = (self.tokens(client, now) - 1.0).max(0.0);
        client.updated = now;
        match client.logged {
            Some(at) if now.saturating_duration_since(at) < LOG_WINDOW => {
                client.suppressed += 1;
                LogSample::Suppress
            }
            _ => {
                client.logged = Some(now);
                LogSample::Log {
                    suppressed: std::mem::take(&mut client.suppressed),
                }
            }
        }
    }

    /// Addresses remembered now.
    pub fn clients(&self) -> usize {
        self.clients.lock_or_recover().len()
    }

    /// Makes room for one more address: forgets those that lose nothing by it (bucket full
    /// again, log window over), and if that is not enough the least recently rejected eighth.
    fn evict(&self, clients: &mut HashMap<IpAddr, Client>, now: Instant) {
        let burst = f64::from(self.limits.burst);
        clients.retain(|_, client| {
            let refilled = self.tokens(client, now) >= burst;
            let log_over = client
                .logged
                .is_none_or(|at| now.saturating_duration_since(at) >= LOG_WINDOW);
            !(refilled && log_over)
        });
        if clients.len() < self.limits.max_clients {
            return;
        }
        let forget = (clients.len() / 8).max(1);
        let mut by_age: Vec<(Instant, IpAddr)> = clients
            .iter()
            .map(|(key, client)| (client.updated, *key))
            .collect();
        by_age.select_nth_unstable(forget - 1);
        for (_, key) in &by_age[..forget] {
            clients.remove(key);
        }
    }
}

/// The key an address is limited under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
        v4 => v4,
    }
}

/// The public listener's outermost layer: answers a limited client `429` at once, and counts
/// (and logs, sampled) every 4xx the routes give.
pub async fn limit_rejections(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(ip) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
    else {
        return next.run(request).await;
    };
    if let Admission::Limited { retry_after_secs } = state.limiter.admit(ip, Instant::now()) {
        state.metrics.rate_limited();
        tracing::debug!(client = %ip, retry_after_secs, "client over its rejection limit");
        return too_many_rejections(retry_after_secs);
    }
    let method = request.method().clone();
    let path: String = request.uri().path().chars().take(MAX_LOGGED_PATH).collect();
    let response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        let sample = state.limiter.rejected(ip, Instant::now());
        if let LogSample::Log { suppressed } = sample {
            let error = response
                .extensions()
                .get::<RejectionNote>()
                .map_or("", |note| note.0.as_str());
            tracing::warn!(
                client = %ip,
                %method,
                path,
                status = status.as_u16(),
                error,
                suppressed,
                "request rejected (further rejections from this client are counted, not \
                 logged, for a minute)"
            );
        }
    }
    response
}

fn too_many_rejections(retry_after_secs: u64) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::RETRY_AFTER, retry_after_secs.to_string()),
            // The body, if any, is not read: the connection cannot be reused.
            (header::CONNECTION, "close".to_owned()),
        ],
        Json(json!({"error": "too many rejected requests from this address; retry later"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, per_minute: u32, max_clients: usize) -> RejectionLimiter {
        RejectionLimiter::new(RejectionLimits {
            burst,
            per_minute,
            max_clients,
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn a_client_is_limited_after_its_burst_and_earns_rejections_back() {
        let limiter = limiter(3, 6, 100);
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let bad = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(limiter.admit(bad, start), Admission::Allowed);
            limiter.rejected(bad, start);
        }
        // Empty: the next rejection comes back after 60 / 6 = 10 s.
        assert_eq!(
            limiter.admit(bad, start),
            Admission::Limited {
                retry_after_secs: 10
            }
        );
        assert_eq!(
            limiter.admit(bad, at(4)),
            Admission::Limited {
                retry_after_secs: 6
            }
        );
        assert_eq!(limiter.admit(bad, at(10)), Admission::Allowed);
        limiter.rejected(bad, at(10));
        assert_eq!(
            limiter.admit(bad, at(10)),
            Admission::Limited {
                retry_after_secs: 10
            }
        );
        // Others are not affected; an unknown address takes no room.
        assert_eq!(limiter.admit(ip("192.0.2.2"), start), Admission::Allowed);
        assert_eq!(limiter.clients(), 1);
        // A full minute refills the burst (3 × 10 s), no more.
        assert_eq!(limiter.admit(bad, at(100)), Admission::Allowed);
        for _ in 0..3 {
            limiter.rejected(bad, at(100));
        }
        assert!(matches!(
            limiter.admit(bad, at(100)),
            Admission::Limited { .. }
        ));
    }

    #[test]
    fn a_burst_of_zero_turns_the_limit_off_but_the_log_is_still_sampled() {
        let limiter = limiter(0, 0, 100);
        let now = Instant::now();
        let bad = ip("192.0.2.1");
        assert_eq!(limiter.rejected(bad, now), LogSample::Log { suppressed: 0 });
        assert_eq!(limiter.rejected(bad, now), LogSample::Suppress);
        assert_eq!(limiter.admit(bad, now), Admission::Allowed);
    }

    #[test]
    fn the_first_rejection_a_minute_is_logged_with_the_count_of_the_others() {
        let limiter = limiter(1000, 60, 100);
        let start = Instant::now();
        let bad = ip("192.0.2.1");
        let check = |seconds: u64, expected: LogSample| {
            assert_eq!(
                limiter.rejected(bad, start + Duration::from_secs(seconds)),
                expected,
                "at {seconds} s"
            );
        };
        check(0, LogSample::Log { suppressed: 0 });
        check(1, LogSample::Suppress);
        check(59, LogSample::Suppress);
        check(60, LogSample::Log { suppressed: 2 });
        check(61, LogSample::Suppress);
        check(200, LogSample::Log { suppressed: 1 });
        // Each address has its own window.
        assert_eq!(
            limiter.rejected(ip("192.0.2.2"), start + Duration::from_secs(200)),
            LogSample::Log { suppressed: 0 }
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        let check = |address: &str, key: &str| assert_eq!(client_key(ip(address)), ip(key));
        check("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::");
        check("2001:db8:1:2::1", "2001:db8:1:2::");
        check("2001:db8:1:3::1", "2001:db8:1:3::");
        check("::ffff:192.0.2.7", "192.0.2.7");
        check("192.0.2.7", "192.0.2.7");
        let limiter = limiter(1, 1, 100);
        let now = Instant::now();
        limiter.rejected(ip("2001:db8:1:2::1"), now);
        assert!(matches!(
            limiter.admit(ip("2001:db8:1:2::ffff"), now),
            Admission::Limited { .. }
        ));
        assert_eq!(
            limiter.admit(ip("2001:db8:1:3::1"), now),
            Admission::Allowed
        );
    }

    #[test]
    fn the_table_stays_bounded_forgetting_idle_then_least_recent_clients() {
        let limiter = limiter(2, 60, 8);
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let address = |n: u32| IpAddr::from(std::net::Ipv4Addr::from(0xc000_0200 + n));
        for n in 0..8 {
            let seconds = if n < 3 { n } else { 30 + n };
            limiter.rejected(address(n), at(u64::from(seconds)));
        }
        assert_eq!(limiter.clients(), 8);
        // At 70 s the first three have refilled and their log window is over: they go.
        limiter.rejected(address(100), at(70));
        assert_eq!(limiter.clients(), 6);
        // Now every one is recent: the least recently rejected eighth goes (here one).
        for n in 200..202 {
            limiter.rejected(address(n), at(70));
        }
        assert_eq!(limiter.clients(), 8);
        limiter.rejected(address(300), at(70));
        assert_eq!(limiter.clients(), 8);
        let clients = limiter.clients.lock_or_recover();
        assert!(!clients.contains_key(&address(3)), "the oldest went");
        assert!(clients.contains_key(&address(4)));
        assert!(clients.contains_key(&address(300)));
        drop(clients);
        for n in 1000..1100 {
            limiter.rejected(address(n), at(71));
        }
        assert_eq!(limiter.clients(), 8);
    }
}
