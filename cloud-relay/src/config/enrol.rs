//! The `[enrol]` section: what the relay needs to answer `POST /enrol`, where a new kitchen box
//! exchanges its one-time enrolment token for its own credentials (docs/security.md,
//! "Enrolment"). Enrolment needs `[broker_admin] url` (otherwise `/enrol` answers 503 and says
//! so); without `box_database_url` the box gets no database login (no cloud sync).

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// Longest validity `kitchen enrol-token --valid-hours` accepts: a token is meant to travel on
/// a card for days at most.
pub const MAX_TOKEN_VALID_HOURS: u32 = 24 * 14;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrolConfig {
    /// The PostgreSQL URL a box syncs to, without user or password
    /// (`ENROL_BOX_DATABASE_URL`, e.g. `postgres://db.example.com/kitchen?sslmode=verify-full`):
    /// enrolment fills in the kitchen's role and its new password. Unset: no database login is
    /// issued.
    pub box_database_url: Option<String>,
    /// Mosquitto's password file (`ENROL_MQTT_PASSWORD_FILE`): enrolment also gives the box a
    /// new fleet-channel password and writes its hash there. Unset: no MQTT login is issued.
    pub mqtt_password_file: Option<PathBuf>,
    /// How long a token from `kitchen enrol-token` stays valid unless told otherwise.
    pub token_valid_hours: u32,
}

impl Default for EnrolConfig {
    fn default() -> Self {
        Self {
            box_database_url: None,
            mqtt_password_file: None,
            token_valid_hours: 24,
        }
    }
}

impl EnrolConfig {
    pub fn apply_env(&mut self, lookup: &impl Fn(&str) -> Option<String>) {
        if let Some(url) = lookup("ENROL_BOX_DATABASE_URL") {
            self.box_database_url = Some(url.trim().to_owned()).filter(|url| !url.is_empty());
        }
        if let Some(path) = lookup("ENROL_MQTT_PASSWORD_FILE") {
            self.mqtt_password_file =
                Some(PathBuf::from(path.trim())).filter(|p| !p.as_os_str().is_empty());
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| Err(ConfigError::Invalid(reason));
        if self.token_valid_hours == 0 || self.token_valid_hours > MAX_TOKEN_VALID_HOURS {
            return invalid(format!(
                "[enrol] token_valid_hours must be 1..={MAX_TOKEN_VALID_HOURS}"
            ));
        }
        if let Some(url) = &self.box_database_url {
            let (_, rest) = url
                .split_once("://")
                .filter(|(scheme, _)| matches!(*scheme, "postgres" | "postgresql"))
                .ok_or_else(|| {
                    ConfigError::Invalid(
                        "[enrol] box_database_url must be a postgres:// URL".into(),
                    )
                })?;
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            if authority.contains('@') {
                return invalid(
                    "[enrol] box_database_url must not hold a user or password: enrolment fills \
                     in the kitchen's own"
                        .into(),
                );
            }
            // The box will refuse anything but verify-full off its own machine: say so here.
            kitchen_cloud_schema::connect::checked_options("[enrol] box_database_url", url)
                .map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }
}
