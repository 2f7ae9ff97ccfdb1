//! The `[broker_admin]` section: RabbitMQ's HTTP management API and the administrator user the
//! `kitchen add|rotate|remove` and `reference import` subcommands use to make the kitchens'
//! broker users, queues and bindings (docs/relay.md). The running relay never uses it.

use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerAdminConfig {
    /// The management API, `http://host:15672` (`RABBITMQ_ADMIN_URL`), without credentials.
    /// Unset: the subcommands leave the broker alone and say so.
    pub url: Option<String>,
    /// A management user with the `administrator` tag (`RABBITMQ_ADMIN_USERNAME`).
    pub username: String,
    /// Its password (`RABBITMQ_ADMIN_PASSWORD`, `RABBITMQ_ADMIN_PASSWORD_FILE`, or the
    /// credential `rabbitmq_admin_password`).
    pub password: Option<SecretString>,
    /// The broker address printed into a box's `amqp_url`, without credentials
    /// (`RABBITMQ_BOX_URL`, e.g. `amqps://broker.example.com:5671/%2f`). Default: the relay's
    /// `AMQP_URL` with its credentials left out.
    pub box_url: Option<String>,
}

impl Default for BrokerAdminConfig {
    fn default() -> Self {
        Self {
            url: None,
            username: "kitchen-provisioner".into(),
            password: None,
            box_url: None,
        }
    }
}

impl BrokerAdminConfig {
    pub fn apply_env(
        &mut self,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(url) = lookup("RABBITMQ_ADMIN_URL") {
            self.url = Some(url.trim().to_owned()).filter(|url| !url.is_empty());
        }
        if let Some(user) = lookup("RABBITMQ_ADMIN_USERNAME") {
            self.username = user;
        }
        if let Some(path) = lookup("RABBITMQ_ADMIN_PASSWORD_FILE") {
            let text = std::fs::read_to_string(&path).map_err(|error| ConfigError::Env {
                name: "RABBITMQ_ADMIN_PASSWORD_FILE",
                reason: format!("cannot read {path}: {error}"),
            })?;
            self.password = Some(SecretString::from(text.trim().to_owned()));
        }
        if let Some(password) = lookup("RABBITMQ_ADMIN_PASSWORD") {
            self.password = Some(SecretString::from(password));
        }
        if let Some(url) = lookup("RABBITMQ_BOX_URL") {
            self.box_url = Some(url.trim().to_owned()).filter(|url| !url.is_empty());
        }
        Ok(())
    }

    /// Whether the subcommands manage the broker (`url` set).
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    /// Checked only by the subcommands that use it: the relay runs without it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let invalid = |reason: String| Err(ConfigError::Invalid(reason));
        let Some(url) = &self.url else {
            return Ok(());
        };
        let Some(rest) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        else {
            return invalid(format!(
                "RABBITMQ_ADMIN_URL {url:?} must start with http:// or https://"
            ));
        };
        if rest.split('/').next().unwrap_or_default().contains('@') {
            return invalid(format!(
                "RABBITMQ_ADMIN_URL {url:?} must not hold credentials: put the user in \
                 RABBITMQ_ADMIN_USERNAME and the password in RABBITMQ_ADMIN_PASSWORD_FILE"
            ));
        }
        if self.username.is_empty() {
            return invalid("[broker_admin] username must not be empty".into());
        }
        if self
            .password
            .as_ref()
            .is_none_or(|password| password.expose_secret().is_empty())
        {
            return invalid(
                "RABBITMQ_ADMIN_URL is set: RABBITMQ_ADMIN_PASSWORD_FILE (or \
                 RABBITMQ_ADMIN_PASSWORD, or the rabbitmq_admin_password credential) is required"
                    .into(),
            );
        }
        if let Some(box_url) = &self.box_url
            && let Err(reason) = box_url.parse::<lapin::uri::AMQPUri>()
        {
            return invalid(format!("RABBITMQ_BOX_URL {box_url:?} is invalid: {reason}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_needs_a_password_and_no_credentials_in_it() {
        let check = |url: &str, password: Option<&str>, expected: Option<&str>| {
            let config = BrokerAdminConfig {
                url: Some(url.into()),
                password: password.map(SecretString::from),
                ..BrokerAdminConfig::default()
            };
            let error = config.validate().err().map(|error| error.to_string());
            assert_eq!(error.as_deref(), expected, "{url}");
        };
        BrokerAdminConfig::default()
            .validate()
            .expect("off is valid");
        check("http://127.0.0.1:15672", Some("pw"), None);
        check("https://broker.example.com/", Some("pw"), None);
        check(
            "http://127.0.0.1:15672",
            None,
            Some(
                "invalid config: RABBITMQ_ADMIN_URL is set: RABBITMQ_ADMIN_PASSWORD_FILE (or \
                 RABBITMQ_ADMIN_PASSWORD, or the rabbitmq_admin_password credential) is required",
            ),
        );
        check(
            "amqp://127.0.0.1:5672",
            Some("pw"),
            Some(
                "invalid config: RABBITMQ_ADMIN_URL \"amqp://127.0.0.1:5672\" must start with \
                 http:// or https://",
            ),
        );
        check(
            "http://guest:guest@127.0.0.1:15672",
            Some("pw"),
            Some(
                "invalid config: RABBITMQ_ADMIN_URL \"http://guest:guest@127.0.0.1:15672\" must \
                 not hold credentials: put the user in RABBITMQ_ADMIN_USERNAME and the password \
                 in RABBITMQ_ADMIN_PASSWORD_FILE",
            ),
        );
    }

    #[test]
    fn the_environment_sets_every_key() {
        let dir = std::env::temp_dir().join(format!("relay-broker-admin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("password");
        std::fs::write(&file, "from-file\n").expect("write");
        let file_name = file.display().to_string();
        let mut config = BrokerAdminConfig::default();
        config
            .apply_env(&|name: &str| match name {
                "RABBITMQ_ADMIN_URL" => Some(" http://10.0.0.5:15672 ".into()),
                "RABBITMQ_ADMIN_USERNAME" => Some("ops".into()),
                "RABBITMQ_ADMIN_PASSWORD_FILE" => Some(file_name.clone()),
                "RABBITMQ_BOX_URL" => Some("amqps://broker.example.com:5671/%2f".into()),
                _ => None,
            })
            .expect("valid env");
        use secrecy::ExposeSecret;
        assert_eq!(config.url.as_deref(), Some("http://10.0.0.5:15672"));
        assert_eq!(config.username, "ops");
        assert_eq!(
            config.password.as_ref().map(|p| p.expose_secret()),
            Some("from-file")
        );
        assert_eq!(
            config.box_url.as_deref(),
            Some("amqps://broker.example.com:5671/%2f")
        );
        config.validate().expect("valid");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
