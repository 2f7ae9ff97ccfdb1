//! Enrolment (docs/security.md, "Enrolment"): a new box's card carries a one-time token instead
//! of the kitchen's secrets. `kitchen enrol-token` makes the token (32 random bytes; only its
//! SHA-256 is stored, with the kitchen and an expiry); `POST /enrol` exchanges it once for
//! credentials made at that moment: a new broker password for the kitchen's user (its queue
//! and bindings made as `kitchen add` makes them), a new password for its database role, and
//! optionally a new MQTT password. Whatever the previous box held stops working: its broker
//! connections are closed, its database sessions ended, its passwords replaced.
//!
//! The token row is locked for the whole exchange and marked used in the same transaction as
//! the role's new password, so two boxes racing with one token get one set of credentials
//! between them; a failure anywhere before the commit leaves the token usable (a broker
//! password already changed is simply changed again by the retry).

use std::{path::PathBuf, sync::Arc};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::{
    broker::{self, Broker, BrokerError},
    scram,
};
use crate::{config::Config, fleet::passwd};

/// What the operator carries to the card (`enrol_token` in `kitchen.toml`).
pub struct EnrolToken {
    pub kitchen_id: String,
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
    /// Unused tokens of the kitchen this one replaced.
    pub replaced: u64,
}

impl std::fmt::Display for EnrolToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "enrolment token for kitchen {:?}: valid once, until {}{}",
            self.kitchen_id,
            self.expires_at.to_rfc3339(),
            if self.replaced > 0 {
                format!(" ({} unused earlier token(s) revoked)", self.replaced)
            } else {
                String::new()
            }
        )?;
        writeln!(
            f,
            "# the box's kitchen.toml (with kitchen_id, store_ids, enrol_url):"
        )?;
        write!(f, "enrol_token = {:?}", self.token.expose_secret())
    }
}

/// Why an enrolment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The token cannot be used; the box should not try it again (403).
    #[error("{0}")]
    Refused(String),
    /// The relay is not set up for enrolment (503).
    #[error("enrolment is not set up on this relay: {0}")]
    NotConfigured(&'static str),
    /// Something the relay depends on failed; the token is still usable (503).
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    #[error("mqtt password file: {0}")]
    Mqtt(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What the box receives: the kitchen's credentials, for its credential store only.
#[derive(Serialize)]
pub struct Credentials {
    pub kitchen_id: String,
    pub amqp_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("kitchen_id", &self.kitchen_id)
            .finish_non_exhaustive()
    }
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

/// `kitchen enrol-token`: a new token for `kitchen_id`, valid for `valid_hours`. Unused earlier
/// tokens of the kitchen are deleted: only the newest card can enrol.
pub async fn make_token(
    pool: &PgPool,
    kitchen_id: &str,
    valid_hours: u32,
) -> Result<EnrolToken, super::KitchenError> {
    let mut connection = pool.acquire().await?;
    if !super::kitchen_exists(&mut connection, kitchen_id).await? {
        return Err(super::KitchenError::UnknownKitchen {
            kitchen_id: kitchen_id.to_owned(),
        });
    }
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    drop(connection);
    let mut tx = pool.begin().await?;
    let replaced = sqlx::query(
        "DELETE FROM kitchen.enrolment_tokens WHERE kitchen_id = $1 AND used_at IS NULL",
    )
    .bind(kitchen_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO kitchen.enrolment_tokens (token_sha256, kitchen_id, expires_at) \
         VALUES ($1, $2, now() + make_interval(hours => $3)) RETURNING expires_at",
    )
    .bind(token_hash(&token))
    .bind(kitchen_id)
    .bind(i32::try_from(valid_hours).unwrap_or(i32::MAX))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(EnrolToken {
        kitchen_id: kitchen_id.to_owned(),
        token: SecretString::from(token),
        expires_at,
        replaced,
    })
}

/// Answers `POST /enrol`.
pub struct Enroller {
    pool: PgPool,
    /// `None`: `[broker_admin] url` is unset.
    broker: Option<Broker>,
    /// `[enrol] box_database_url`; `None`: the box gets no database login (no cloud sync).
    box_database_url: Option<String>,
    mqtt_password_file: Option<PathBuf>,
}

/// An enrolment token's row: its kitchen, expiry, use, and whether it has expired.
type TokenRow = (String, DateTime<Utc>, Option<DateTime<Utc>>, bool);
impl Enroller {
    pub fn from_config(pool: PgPool, config: &Config) -> Result<Arc<Self>, BrokerError> {
        Ok(Arc::new(Self {
            pool,
            broker: Broker::from_config(config)?,
            box_database_url: config.enrol.box_database_url.clone(),
            mqtt_password_file: config.enrol.mqtt_password_file.clone(),
        }))
    }

    /// Exchanges `token` for kitchen `kitchen_id`'s new credentials. `peer` is recorded with
    /// the token (who used it).
    pub async fn enrol(
        &self,
        kitchen_id: &str,
        token: &str,
        peer: &str,
    ) -> Result<Credentials, EnrolError> {
        let broker = self
            .broker
            .as_ref()
            .ok_or(EnrolError::NotConfigured("[broker_admin] url is not set"))?;
        let mut tx = self.pool.begin().await?;
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT kitchen_id, expires_at, used_at, expires_at <= now() \
             FROM kitchen.enrolment_tokens WHERE token_sha256 = $1 FOR UPDATE",
        )
        .bind(token_hash(token))
        .fetch_optional(&mut *tx)
        .await?;
        let refused = |reason: String| Err(EnrolError::Refused(reason));
        let Some((token_kitchen, expires_at, used_at, expired)) = row else {
            return refused(
                "unknown enrolment token (ask for a new one: cloud-relay kitchen enrol-token)"
                    .into(),
            );
        };
        if token_kitchen != kitchen_id {
            return refused(format!(
                "this enrolment token is not for kitchen {kitchen_id:?}"
            ));
        }
        if let Some(used_at) = used_at {
            return refused(format!(
                "this enrolment token was already used at {} (a token works once; ask for a \
                 new one)",
                used_at.to_rfc3339()
            ));
        }
        if expired {
            return refused(format!(
                "this enrolment token expired at {} (ask for a new one)",
                expires_at.to_rfc3339()
            ));
        }
        // The database login first, in the transaction: it commits with the token's use.
        let database = match &self.box_database_url {
            Some(url) => Some(set_database_password(&mut tx, kitchen_id, url).await?),
            None => None,
        };
        let stores = broker::kitchen_stores(&self.pool, kitchen_id).await?;
        let (login, closed) = broker.enrol(kitchen_id, &stores).await?;
        let mqtt_password = match &self.mqtt_password_file {
            Some(file) => {
                let password = passwd::new_password();
                passwd::set_user(file, kitchen_id, &passwd::hash(&password))
                    .map_err(|error| EnrolError::Mqtt(error.to_string()))?;
                Some(password)
            }
            None => None,
        };
        sqlx::query(
            "UPDATE kitchen.enrolment_tokens SET used_at = now(), used_from = $2 \
             WHERE token_sha256 = $1",
        )
        .bind(token_hash(token))
        .bind(peer)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // The old box's sessions, now that its password no longer logs in.
        let mut ended = 0;
        if let Some((role, _)) = &database {
            ended = sqlx::query_scalar(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE usename = $1",
            )
            .bind(role)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|error: sqlx::Error| {
                tracing::warn!(%error, role, "enrolment: cannot end the previous box's sessions");
                0
            });
        }
        tracing::info!(
            kitchen_id,
            peer,
            broker_connections_closed = closed,
            database_sessions_ended = ended,
            mqtt = mqtt_password.is_some(),
            "kitchen box enrolled"
        );
        Ok(Credentials {
            kitchen_id: kitchen_id.to_owned(),
            amqp_url: login.amqp_url.expose_secret().to_owned(),
            database_url: database.map(|(_, url)| url),
            mqtt_password: mqtt_password.map(|p| p.expose_secret().to_owned()),
        })
    }
}

/// Gives kitchen `kitchen_id`'s database role a new password (as a SCRAM verifier, in `tx`):
/// the role and the box's `database_url` (`url` with the role and password in it).
async fn set_database_password(
    tx: &mut sqlx::PgConnection,
    kitchen_id: &str,
    url: &str,
) -> Result<(String, String), EnrolError> {
    let role: Option<String> = sqlx::query_scalar(
        "SELECT role_name FROM kitchen.agent_roles WHERE kitchen_id = $1 ORDER BY role_name \
         LIMIT 1",
    )
    .bind(kitchen_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(role) = role else {
        return Err(EnrolError::Refused(format!(
            "kitchen {kitchen_id:?} has no database role (cloud-relay kitchen add --role)"
        )));
    };
    let password = passwd::new_password();
    let statement: String =
        sqlx::query_scalar("SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)")
            .bind(&role)
            .bind(scram::new_verifier(password.expose_secret()))
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(&statement).execute(&mut *tx).await?;
    let url = with_login(url, &role, &password);
    Ok((role, url))
}

/// `postgres://host/db?…` with `user:password@` put in, both percent-encoded.
fn with_login(url: &str, user: &str, password: &SecretString) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    format!(
        "{scheme}://{}:{}@{rest}",
        percent_encode(user),
        percent_encode(password.expose_secret())
    )
}

/// Everything but RFC 3986's unreserved characters as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_url_gets_the_role_and_password_encoded() {
        let url = with_login(
            "postgres://db.example.com:5432/kitchen?sslmode=verify-full",
            "kitchen box",
            &SecretString::from("a/b@c".to_owned()),
        );
        assert_eq!(
            url,
            "postgres://kitchen%20box:a%2Fb%40c@db.example.com:5432/kitchen?sslmode=verify-full"
        );
    }

    #[test]
    fn a_token_is_hashed_without_surrounding_whitespace() {
        assert_eq!(token_hash(" abc\n"), token_hash("abc"));
        assert_eq!(token_hash("abc").len(), 32);
    }
}
