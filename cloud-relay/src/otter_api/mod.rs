//! Calling Otter's API (issue 15, docs/otter.md): the kitchen's intents arrive as rows of
//! `otter.callbacks` (made by triggers on what the boxes push, in the same transaction); the
//! dispatcher sends each once, in order per order (and per item at a store), within the rate
//! budgets every relay shares through PostgreSQL, and records Otter's answer.
//!
//! `client.rs` speaks HTTP (OAuth2 client credentials, one call → one [`client::Answer`]);
//! `store.rs` holds the queries (claims, budgets, results, recovery, the alarm, the admin
//! lists); `dispatch.rs` is the task; `stamp.rs` gives new calls their change number;
//! `alarm.rs` is the unconfirmed-order alarm; `metrics.rs` what they count.

pub mod alarm;
pub mod client;
pub mod dispatch;
pub mod metrics;
pub mod stamp;
pub mod store;

use crate::config::{OtterApiConfig, OtterLimits};

/// The calls the relay makes, as `otter.callbacks.kind` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    Confirm,
    Ready,
    Fulfill,
    Cancel,
    PrepTime,
    Suspend,
    Unsuspend,
}

/// Every kind, for metrics.
pub const CALL_KINDS: [CallKind; 7] = [
    CallKind::Confirm,
    CallKind::Ready,
    CallKind::Fulfill,
    CallKind::Cancel,
    CallKind::PrepTime,
    CallKind::Suspend,
    CallKind::Unsuspend,
];

/// The rate-budget endpoint of job status calls (the others are their kind's name).
pub const JOB_ENDPOINT: &str = "job_status";

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Confirm => "confirm",
            CallKind::Ready => "ready",
            CallKind::Fulfill => "fulfill",
            CallKind::Cancel => "cancel",
            CallKind::PrepTime => "prep_time",
            CallKind::Suspend => "suspend",
            CallKind::Unsuspend => "unsuspend",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        CALL_KINDS.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether the call names an order (`{source}`, `{orderId}` in its path).
    pub fn is_order_call(self) -> bool {
        !matches!(self, CallKind::Suspend | CallKind::Unsuspend)
    }

    /// Calls per window at one store.
    pub fn limit(self, limits: &OtterLimits) -> u32 {
        match self {
            CallKind::Confirm => limits.confirm,
            CallKind::Ready => limits.ready,
            CallKind::Fulfill => limits.fulfill,
            CallKind::Cancel => limits.cancel,
            CallKind::PrepTime => limits.prep_time,
            CallKind::Suspend => limits.suspend,
            CallKind::Unsuspend => limits.unsuspend,
        }
    }

    /// The configured path template.
    pub fn template(self, config: &OtterApiConfig) -> &str {
        let paths = &config.paths;
        match self {
            CallKind::Confirm => &paths.confirm,
            CallKind::Ready => &paths.ready,
            CallKind::Fulfill => &paths.fulfill,
            CallKind::Cancel => &paths.cancel,
            CallKind::PrepTime => &paths.prep_time,
            CallKind::Suspend => &paths.suspend,
            CallKind::Unsuspend => &paths.unsuspend,
        }
    }

    /// What a cook reads once Otter took it.
    pub fn accepted_detail(self) -> &'static str {
        match self {
            CallKind::Confirm => "accepted on Otter",
            CallKind::Ready => "Otter told: ready for pickup",
            CallKind::Fulfill => "Otter told: handed off",
            CallKind::Cancel => "cancelled on Otter",
            CallKind::PrepTime => "prep time changed on Otter",
            CallKind::Suspend => "86'd on Otter",
            CallKind::Unsuspend => "back on Otter's menu",
        }
    }
}

/// `template` with `{name}` replaced by each value, percent-encoded as a path segment.
pub fn render_path(template: &str, values: &[(&str, &str)]) -> String {
    let mut path = template.to_owned();
    for (name, value) in values {
        path = path.replace(&format!("{{{name}}}"), &encode_segment(value));
    }
    path
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_segment(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_rendered_with_encoded_segments() {
        let check = |template: &str, values: &[(&str, &str)], expected: &str| {
            assert_eq!(render_path(template, values), expected);
        };
        let config = OtterApiConfig::default();
        check(
            CallKind::Confirm.template(&config),
            &[("source", "ubereats"), ("orderId", "0f1e-22")],
            "/manager/order/v1/sources/ubereats/orders/0f1e-22/confirm",
        );
        check("/a/{orderId}", &[("orderId", "x/y z")], "/a/x%2Fy%20z");
        check(
            "/v1/menus/jobs/{jobId}",
            &[("jobId", "j-1")],
            "/v1/menus/jobs/j-1",
        );
        for kind in CALL_KINDS {
            assert_eq!(CallKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(CallKind::from_name("reject"), None);
    }
}
