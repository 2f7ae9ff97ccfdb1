//! RabbitMQ's HTTP management API, as the `[broker_admin]` user: users, their permissions on a
//! vhost, the bindings of a queue, connections, deleting queues. Every name is one
//! percent-encoded path segment (a kitchen id may hold `/` or `%`).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

/// What a vhost permission grants: three regular expressions over resource names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Permissions {
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// A management API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("rabbitmq management api {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("rabbitmq management api {method} {url}: {status} {body}")]
    Status {
        method: &'static str,
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("rabbitmq management api url {0:?} is not a base url")]
    BadUrl(String),
}

/// A client of the management API.
#[derive(Debug, Clone)]
pub struct BrokerAdmin {
    http: reqwest::Client,
    base: reqwest::Url,
    username: String,
    password: SecretString,
}

#[derive(Deserialize)]
struct Binding {
    routing_key: String,
}

#[derive(Deserialize)]
struct ConnectionInfo {
    name: String,
    #[serde(default)]
    user: String,
}

impl BrokerAdmin {
    pub fn new(
        url: &str,
        username: &str,
        password: SecretString,
        timeout: Duration,
    ) -> Result<Self, AdminError> {
        let base = reqwest::Url::parse(url).map_err(|_| AdminError::BadUrl(url.to_owned()))?;
        if base.cannot_be_a_base() {
            return Err(AdminError::BadUrl(url.to_owned()));
        }
        // reqwest has no crypto provider of its own here (the workspace's is ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|source| AdminError::Http {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            http,
            base,
            username: username.to_owned(),
            password,
        })
    }

    /// `<base>/api/<segments…>`, each segment percent-encoded on its own.
    fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("api").extend(segments);
        }
        url
    }

    /// Sends a request; a `404` is `Ok(None)` when `missing_ok`.
    async fn send(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        body: Option<serde_json::Value>,
        missing_ok: bool,
    ) -> Result<Option<reqwest::Response>, AdminError> {
        let url = self.url(segments);
        let method_name = match method {
            reqwest::Method::GET => "GET",
            reqwest::Method::PUT => "PUT",
            reqwest::Method::POST => "POST",
            _ => "DELETE",
        };
        let mut request = self
            .http
            .request(method, url.clone())
            .basic_auth(&self.username, Some(self.password.expose_secret()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|source| AdminError::Http {
            url: url.to_string(),
            source,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(Some(response));
        }
        if status == reqwest::StatusCode::NOT_FOUND && missing_ok {
            return Ok(None);
        }
        let body = response.text().await.unwrap_or_default();
        Err(AdminError::Status {
            method: method_name,
            url: url.to_string(),
            status,
            body: body.chars().take(300).collect(),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<Option<T>, AdminError> {
        let url = self.url(segments).to_string();
        match self
            .send(reqwest::Method::GET, segments, None, true)
            .await?
        {
            Some(response) => response
                .json()
                .await
                .map(Some)
                .map_err(|source| AdminError::Http { url, source }),
            None => Ok(None),
        }
    }

    /// Whether `user` exists.
    pub async fn user_exists(&self, user: &str) -> Result<bool, AdminError> {
        Ok(self
            .get_json::<serde_json::Value>(&["users", user])
            .await?
            .is_some())
    }

    /// Creates `user` with no tags (no management access), or sets its password.
    pub async fn put_user(&self, user: &str, password: &SecretString) -> Result<(), AdminError> {
        let body = json!({ "password": password.expose_secret(), "tags": "" });
        self.send(reqwest::Method::PUT, &["users", user], Some(body), false)
            .await?;
        Ok(())
    }

    /// Deletes `user`; `false` if there was none.
    pub async fn delete_user(&self, user: &str) -> Result<bool, AdminError> {
        Ok(self
            .send(reqwest::Method::DELETE, &["users", user], None, true)
            .await?
            .is_some())
    }

    /// Sets what `user` may do on `vhost` (replacing what it had).
    pub async fn set_permissions(
        &self,
        vhost: &str,
        user: &str,
        permissions: &Permissions,
    ) -> Result<(), AdminError> {
        let body = json!({
            "configure": permissions.configure,
            "write": permissions.write,
            "read": permissions.read,
        });
        self.send(
            reqwest::Method::PUT,
            &["permissions", vhost, user],
            Some(body),
            false,
        )
        .await?;
        Ok(())
    }

    /// What `user` may do on `vhost`, if anything.
    pub async fn permissions(
        &self,
        vhost: &str,
        user: &str,
    ) -> Result<Option<Permissions>, AdminError> {
        self.get_json(&["permissions", vhost, user]).await
    }

    /// The routing keys `queue` is bound to `exchange` with. A missing queue or exchange has
    /// none.
    pub async fn bindings(
        &self,
        vhost: &str,
        exchange: &str,
        queue: &str,
    ) -> Result<Vec<String>, AdminError> {
        let bindings: Option<Vec<Binding>> = self
            .get_json(&["bindings", vhost, "e", exchange, "q", queue])
            .await?;
        Ok(bindings
            .unwrap_or_default()
            .into_iter()
            .map(|binding| binding.routing_key)
            .collect())
    }

    /// Messages ready in `queue`, `None` if there is no such queue.
    pub async fn queue_messages(
        &self,
        vhost: &str,
        queue: &str,
    ) -> Result<Option<u64>, AdminError> {
        let queue: Option<serde_json::Value> = self.get_json(&["queues", vhost, queue]).await?;
        Ok(queue.map(|queue| queue["messages"].as_u64().unwrap_or(0)))
    }

    /// Deletes `queue` (with its messages); `false` if there was none.
    pub async fn delete_queue(&self, vhost: &str, queue: &str) -> Result<bool, AdminError> {
        Ok(self
            .send(
                reqwest::Method::DELETE,
                &["queues", vhost, queue],
                None,
                true,
            )
            .await?
            .is_some())
    }

    /// Deletes `exchange`; `false` if there was none.
    pub async fn delete_exchange(&self, vhost: &str, exchange: &str) -> Result<bool, AdminError> {
        Ok(self
            .send(
                reqwest::Method::DELETE,
                &["exchanges", vhost, exchange],
                None,
                true,
            )
            .await?
            .is_some())
    }

    /// Closes every connection `user` has open (after its password changed or it was deleted,
    /// so a leaked credential stops working now, not at the next reconnect). Returns how many.
    pub async fn close_connections(&self, user: &str) -> Result<usize, AdminError> {
        let connections: Vec<ConnectionInfo> =
            self.get_json(&["connections"]).await?.unwrap_or_default();
        let mut closed = 0;
        for connection in connections.iter().filter(|c| c.user == user) {
            if self
                .send(
                    reqwest::Method::DELETE,
                    &["connections", &connection.name],
                    None,
                    true,
                )
                .await?
                .is_some()
            {
                closed += 1;
            }
        }
        Ok(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_one_encoded_segment() {
        let admin = BrokerAdmin::new(
            "http://127.0.0.1:15672/",
            "admin",
            SecretString::from("pw"),
            Duration::from_secs(1),
        )
        .expect("client");
        assert_eq!(
            admin.url(&["permissions", "/", "edge.bk/01%"]).as_str(),
            "http://127.0.0.1:15672/api/permissions/%2F/edge.bk%2F01%25"
        );
        let prefixed = BrokerAdmin::new(
            "https://ops.example.com/rabbitmq",
            "admin",
            SecretString::from("pw"),
            Duration::from_secs(1),
        )
        .expect("client");
        assert_eq!(
            prefixed.url(&["users", "edge.a b"]).as_str(),
            "https://ops.example.com/rabbitmq/api/users/edge.a%20b"
        );
    }
}
