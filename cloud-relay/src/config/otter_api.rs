//! The `[otter_api]` section: how the relay calls Otter's API (docs/otter.md). Every path and
//! limit is configurable because the facts behind them are not all certain (otter-api.md §7).

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{ConfigError, millis};

/// Otter's API: where, who, and within what limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtterApiConfig {
    /// Base URL Otter gave this integration, e.g. `https://partner.example.com`
    /// (`OTTER_API_URL`). Unset: the client is off, calls wait `pending`.
    pub url: Option<String>,
    /// OAuth2 client id, the Application ID (`OTTER_CLIENT_ID`, or credential
    /// `otter_client_id`).
    pub client_id: Option<SecretString>,
    /// OAuth2 client secret (`OTTER_CLIENT_SECRET`, or credential `otter_client_secret`).
    pub client_secret: Option<SecretString>,
    /// Space-separated scopes asked for at token time.
    pub scopes: String,
    /// Path templates, appended to `url`.
    pub paths: OtterPaths,
    /// Calls per `rate_window` per (store, endpoint).
    pub limits: OtterLimits,
    /// The rate-limit window (60 s as Otter documents it; shorter only in tests).
    #[serde(with = "millis")]
    pub rate_window: Duration,
    /// Added to `rate_window` when the relay counts its own calls, so that requests delayed on
    /// the way never land more than the limit inside one of Otter's windows.
    #[serde(with = "millis")]
    pub rate_margin: Duration,
    /// Timeout of each HTTP request to Otter, token included.
    #[serde(with = "millis")]
    pub request_timeout: Duration,
    /// A token is renewed this long before its `expires_in` runs out (at half its life when
    /// that is shorter).
    #[serde(with = "millis")]
    pub token_refresh_before: Duration,
    /// Backoff after a 5xx, a network error or a 429 without `Retry-After`: doubling from
    /// `retry_initial` to `retry_max`, jittered.
    #[serde(with = "millis")]
    pub retry_initial: Duration,
    #[serde(with = "millis")]
    pub retry_max: Duration,
    /// A call still failing transiently this long after it was made is parked as failed.
    #[serde(with = "millis")]
    pub give_up_after: Duration,
    /// How long a relay holds a call it is sending; a call found `sent` past it (the relay
    /// died mid-request) is sent again. Longer than `request_timeout`.
    #[serde(with = "millis")]
    pub lease: Duration,
    /// Time between two looks at a menu job (suspend/unsuspend).
    #[serde(with = "millis")]
    pub job_poll_interval: Duration,
    /// A menu job not finished after this long is parked as failed.
    #[serde(with = "millis")]
    pub job_timeout: Duration,
    /// Requests to Otter in flight at once from this relay.
    pub max_in_flight: usize,
    /// An Otter order not cancelled or finished with no confirm call this long after it
    /// arrived raises the unconfirmed-order alarm (runs also with the client off).
    #[serde(with = "millis")]
    pub confirm_alarm_after: Duration,
    /// Orders older than this are not looked at by the alarm.
    #[serde(with = "millis")]
    pub confirm_alarm_lookback: Duration,
    /// Bytes of Otter's answer kept with a call.
    pub answer_max_bytes: usize,
}

/// Path templates. `{source}`, `{orderId}` and `{jobId}` are replaced (percent-encoded).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtterPaths {
    pub token: String,
    pub confirm: String,
    pub ready: String,
    pub fulfill: String,
    pub cancel: String,
    pub prep_time: String,
    pub suspend: String,
    pub unsuspend: String,
    pub job: String,
}

/// Calls per window per (store, endpoint) (otter-api.md §6).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtterLimits {
    pub confirm: u32,
    pub ready: u32,
    pub fulfill: u32,
    pub cancel: u32,
    pub prep_time: u32,
    pub suspend: u32,
    pub unsuspend: u32,
    pub job_status: u32,
}

impl Default for OtterApiConfig {
    fn default() -> Self {
        Self {
            url: None,
            client_id: None,
            client_secret: None,
            scopes: "manager.orders orders.update manager.menus menus.async_job.read".into(),
            paths: OtterPaths::default(),
            limits: OtterLimits::default(),
            rate_window: Duration::from_secs(60),
            rate_margin: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            token_refresh_before: Duration::from_secs(300),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
            lease: Duration::from_secs(60),
            job_poll_interval: Duration::from_secs(8),
            job_timeout: Duration::from_secs(600),
            max_in_flight: 16,
            confirm_alarm_after: Duration::from_secs(180),
            confirm_alarm_lookback: Duration::from_secs(24 * 3600),
            answer_max_bytes: 2048,
        }
    }
}

impl Default for OtterPaths {
    fn default() -> Self {
        let order = "/manager/order/v1/sources/{source}/orders/{orderId}";
        Self {
            token: "/v1/auth/token".into(),
            confirm: format!("{order}/confirm"),
            ready: format!("{order}/ready-to-pickup"),
            fulfill: format!("{order}/fulfill"),
            cancel: format!("{order}/cancel"),
            prep_time: format!("{order}/prep-time"),
            suspend: "/manager/menu/v1/menus/entities/availability/suspend".into(),
            unsuspend: "/manager/menu/v1/menus/entities/availability/unsuspend".into(),
            job: "/v1/menus/jobs/{jobId}".into(),
        }
    }
}

impl Default for OtterLimits {
    fn default() -> Self {
        Self {
            confirm: 32,
            ready: 32,
            fulfill: 32,
            cancel: 32,
            prep_time: 32,
            suspend: 16,
            unsuspend: 16,
            job_status: 8,
        }
    }
}

impl OtterApiConfig {
    /// `OTTER_API_URL`, `OTTER_CLIENT_ID`, `OTTER_CLIENT_SECRET` (an empty URL turns it off).
    pub fn apply_env(&mut self, lookup: &impl Fn(&str) -> Option<String>) {
        if let Some(url) = lookup("OTTER_API_URL") {
            self.url = Some(url).filter(|url| !url.trim().is_empty());
        }
        if let Some(id) = lookup("OTTER_CLIENT_ID") {
            self.client_id = Some(SecretString::from(id));
        }
        if let Some(secret) = lookup("OTTER_CLIENT_SECRET") {
            self.client_secret = Some(SecretString::from(secret));
        }
    }

    /// Whether the client is on (`url` set).
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let invalid = |reason: String| Err(ConfigError::Invalid(reason));
        if let Some(url) = &self.url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return invalid(format!(
                    "OTTER_API_URL {url:?} must start with https:// (or http:// for a test double)"
                ));
            }
            let missing = |value: &Option<SecretString>| {
                value
                    .as_ref()
                    .is_none_or(|value| value.expose_secret().is_empty())
            };
            if missing(&self.client_id) || missing(&self.client_secret) {
                return invalid(
                    "OTTER_API_URL is set: OTTER_CLIENT_ID and OTTER_CLIENT_SECRET are required"
                        .into(),
                );
            }
        }
        let limits = &self.limits;
        let counts = [
            limits.confirm,
            limits.ready,
            limits.fulfill,
            limits.cancel,
            limits.prep_time,
            limits.suspend,
            limits.unsuspend,
            limits.job_status,
        ];
        if counts.contains(&0) || self.max_in_flight == 0 || self.answer_max_bytes == 0 {
            return invalid("otter_api limits and max_in_flight must be at least 1".into());
        }
        if self.rate_window.is_zero() || self.request_timeout.is_zero() {
            return invalid("otter_api rate_window and request_timeout must be positive".into());
        }
        if self.lease <= self.request_timeout {
            return invalid(format!(
                "otter_api lease ({} ms) must be longer than request_timeout ({} ms)",
                self.lease.as_millis(),
                self.request_timeout.as_millis()
            ));
        }
        let paths = &self.paths;
        let order_paths = [
            &paths.confirm,
            &paths.ready,
            &paths.fulfill,
            &paths.cancel,
            &paths.prep_time,
        ];
        for path in order_paths {
            if !path.contains("{orderId}") {
                return invalid(format!("otter_api path {path:?} has no {{orderId}}"));
            }
        }
        if !paths.job.contains("{jobId}") {
            return invalid(format!("otter_api path {:?} has no {{jobId}}", paths.job));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_reads_from_toml_and_the_environment() {
        let mut config: OtterApiConfig = toml::from_str(
            "rate_window = 2000\n[limits]\nconfirm = 5\n[paths]\njob = \"/v2/jobs/{jobId}\"",
        )
        .expect("valid");
        assert_eq!(config.rate_window, Duration::from_secs(2));
        assert_eq!((config.limits.confirm, config.limits.suspend), (5, 16));
        assert_eq!(config.paths.job, "/v2/jobs/{jobId}");
        assert!(!config.enabled());
        config.validate().expect("off is valid");
        let env = |name: &str| match name {
            "OTTER_API_URL" => Some("https://otter.example".to_owned()),
            "OTTER_CLIENT_ID" => Some("id".to_owned()),
            _ => None,
        };
        config.apply_env(&env);
        assert!(config.enabled());
        let error = config.validate().expect_err("no secret");
        assert!(error.to_string().contains("OTTER_CLIENT_SECRET"), "{error}");
        config.client_secret = Some(SecretString::from("s"));
        config.validate().expect("valid");
        config.paths.confirm = "/confirm".into();
        assert!(config.validate().is_err());
    }
}
