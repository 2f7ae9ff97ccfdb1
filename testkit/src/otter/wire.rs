//! The double's reading of requests: which limiter endpoint a request is, the token call's
//! form, and the body fields Otter requires.

use axum::http::Method;
use serde_json::Value;

/// The limiter's name for a request, and for order actions the order path's action.
pub(super) fn endpoint_of(method: &Method, path: &str) -> &'static str {
    let last = path.rsplit('/').next().unwrap_or_default();
    match (method.as_str(), path) {
        ("POST", "/v1/auth/token") => "token",
        ("POST", "/manager/order/v1/orders/order-created") => "order_created",
        ("GET", p) if p.starts_with("/v1/menus/jobs/") => "job_status",
        ("POST", "/manager/menu/v1/menus/entities/availability/suspend") => "suspend",
        ("POST", "/manager/menu/v1/menus/entities/availability/unsuspend") => "unsuspend",
        ("POST", p) if p.starts_with("/manager/order/v1/sources/") && p.contains("/orders/") => {
            match last {
                "confirm" => "confirm",
                "ready-to-pickup" => "ready",
                "fulfill" => "fulfill",
                "cancel" => "cancel",
                "prep-time" => "prep_time",
                _ => "unknown",
            }
        }
        _ => "unknown",
    }
}

/// `application/x-www-form-urlencoded` fields, percent- and plus-decoded.
pub(super) fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(byte) => {
                            out.push(byte);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                other => out.push(other),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// The body field Otter requires that `body` lacks, if any (otter-api.md §2a, §3).
pub(super) fn missing_field(endpoint: &str, body: Option<&Value>) -> Option<&'static str> {
    let has = |field: &str| body.and_then(|body| body.get(field)).is_some();
    match endpoint {
        "cancel" if !has("cancellationReason") => Some("cancellationReason"),
        "prep_time" if !has("prepTimeMinutes") => Some("prepTimeMinutes"),
        "suspend" if !(has("entityIds") && has("note") && has("status")) => {
            Some("entityIds, note and status")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_endpoints_are_read() {
        assert_eq!(
            parse_form(b"grant_type=client_credentials&scope=a+b%2Ec&x"),
            [
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                ("scope".to_owned(), "a b.c".to_owned()),
                ("x".to_owned(), String::new()),
            ]
        );
        let post = Method::POST;
        assert_eq!(
            endpoint_of(
                &post,
                "/manager/order/v1/sources/ubereats/orders/o1/ready-to-pickup"
            ),
            "ready"
        );
        assert_eq!(endpoint_of(&Method::GET, "/v1/menus/jobs/j1"), "job_status");
        assert_eq!(endpoint_of(&post, "/v1/orders/o1/status"), "unknown");
    }
}
