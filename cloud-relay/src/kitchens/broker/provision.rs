//! What `kitchen add|rotate|remove` and `reference import` do on the broker: the kitchen's
//! queue and bindings declared over AMQP as the `[broker_admin]` user (on the relay's
//! `AMQP_URL` host and vhost), its box user and permissions through the management API. Each
//! step converges on what PostgreSQL says, so running one again repairs a half-done one.

use std::{fmt, time::Duration};

use base64::Engine as _;
use kitchen_proto::{EDGE_DELIVERY_LIMIT, edge_queue};
use lapin::{Channel, Connection, ConnectionProperties, uri::AMQPUri};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use super::{
    AdminError, BrokerAdmin, box_permissions, box_user, declare_kitchen_queue,
    delete_kitchen_queue, unbind_store,
};
use crate::Config;

/// Why a broker step failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("amqp as the broker admin, {what}: {source}")]
    Amqp {
        what: &'static str,
        source: lapin::Error,
    },
    #[error("amqp as the broker admin: timed out on {0}")]
    Timeout(&'static str),
    #[error("invalid broker config: {0}")]
    Config(String),
    #[error("kitchen id {0:?} is too long for a queue name (at most 250 bytes)")]
    KitchenTooLong(String),
    #[error("kitchen {0:?} has no broker user (make one with `cloud-relay kitchen add`)")]
    NoUser(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The stores kitchen `kitchen_id` serves, as its reference data in PostgreSQL says.
pub async fn kitchen_stores(pool: &PgPool, kitchen_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT store_id FROM kitchen.ref_stores WHERE kitchen_id = $1 ORDER BY position, store_id",
    )
    .bind(kitchen_id)
    .fetch_all(pool)
    .await
}

/// The broker as the `[broker_admin]` user sees it.
#[derive(Debug)]
pub struct Broker {
    admin: BrokerAdmin,
    /// The relay's `AMQP_URL` with the admin's user and password.
    amqp: AMQPUri,
    /// What a box's `amqp_url` starts from (no credentials).
    box_url: AMQPUri,
    /// The relay's CA bundle (`RELAY_CA_FILE`) for `amqps`.
    ca_pem: Option<String>,
    exchange: String,
    timeout: Duration,
}

/// A box's broker login, printed as the `amqp_url` line of its `kitchen.toml`.
pub struct BrokerLogin {
    pub user: String,
    pub amqp_url: SecretString,
}

impl fmt::Display for BrokerLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# the box's kitchen.toml:")?;
        write!(f, "amqp_url = {:?}", self.amqp_url.expose_secret())
    }
}

/// What `Broker::provision` did.
pub struct BrokerProvisioned {
    pub kitchen_id: String,
    pub rebound: Rebound,
    /// A new user and its login; `None` when the user existed (its password is unchanged).
    pub login: Option<BrokerLogin>,
}

impl fmt::Display for BrokerProvisioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = box_user(&self.kitchen_id);
        writeln!(f, "{}", self.rebound)?;
        match &self.login {
            Some(login) => {
                writeln!(
                    f,
                    "broker user {user:?}: created; may consume {} only",
                    self.rebound.queue
                )?;
                write!(f, "{login}")
            }
            None => write!(
                f,
                "broker user {user:?}: already there, permissions set again; password unchanged \
                 (`cloud-relay kitchen rotate` makes a new one)"
            ),
        }
    }
}

/// A kitchen queue's bindings after they were made to match its stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebound {
    pub queue: String,
    pub stores: Vec<String>,
    pub bound: Vec<String>,
    pub unbound: Vec<String>,
}

impl fmt::Display for Rebound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "broker queue {:?}: declared, bound for {} store(s) [{}]",
            self.queue,
            self.stores.len(),
            self.stores.join(", ")
        )?;
        if !self.bound.is_empty() {
            write!(f, "; newly bound [{}]", self.bound.join(", "))?;
        }
        if !self.unbound.is_empty() {
            write!(f, "; unbound [{}]", self.unbound.join(", "))?;
        }
        Ok(())
    }
}

/// What `Broker::remove` did.
pub struct BrokerRemoved {
    pub user: String,
    pub user_deleted: bool,
    pub connections_closed: usize,
    pub queue: String,
    /// `Some(deleted)` with `--delete-queue`; else the messages left in the kept queue.
    pub queue_deleted: Option<bool>,
    pub queue_messages: Option<u64>,
}

impl fmt::Display for BrokerRemoved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.user_deleted {
            writeln!(
                f,
                "broker user {:?}: deleted ({} connection(s) closed)",
                self.user, self.connections_closed
            )?;
        } else {
            writeln!(f, "broker user {:?}: there was none", self.user)?;
        }
        match (self.queue_deleted, self.queue_messages) {
            (Some(true), _) => write!(
                f,
                "broker queue {:?}: deleted with its messages, dead-letter queue and exchange",
                self.queue
            ),
            (Some(false), _) => write!(f, "broker queue {:?}: there was none", self.queue),
            (None, Some(messages)) => write!(
                f,
                "broker queue {:?}: kept, still bound, {messages} message(s) waiting (delete it \
                 with --delete-queue)",
                self.queue
            ),
            (None, None) => write!(f, "broker queue {:?}: there is none", self.queue),
        }
    }
}

fn new_password() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn check_kitchen(kitchen_id: &str) -> Result<(), BrokerError> {
    // `edge.<id>.dead` must fit an AMQP short string (255 bytes).
    if kitchen_id.len() > 250 {
        return Err(BrokerError::KitchenTooLong(kitchen_id.to_owned()));
    }
    Ok(())
}

impl Broker {
    /// The broker of `config` (`AMQP_URL`, `RELAY_ORDER_EXCHANGE`, `[broker_admin]`); `None`
    /// when `[broker_admin] url` is unset.
    pub fn from_config(config: &Config) -> Result<Option<Self>, BrokerError> {
        let settings = &config.broker_admin;
        let Some(url) = &settings.url else {
            return Ok(None);
        };
        settings
            .validate()
            .map_err(|error| BrokerError::Config(error.to_string()))?;
        let password = settings.password.clone().unwrap_or_default();
        let relay_url: AMQPUri = config
            .amqp_url
            .expose_secret()
            .parse()
            .map_err(|reason| BrokerError::Config(format!("AMQP_URL is invalid: {reason}")))?;
        let mut amqp = relay_url.clone();
        amqp.authority.userinfo.username = settings.username.clone();
        amqp.authority.userinfo.password = password.expose_secret().to_owned();
        let box_url = match &settings.box_url {
            Some(url) => url.parse().map_err(|reason| {
                BrokerError::Config(format!("RABBITMQ_BOX_URL is invalid: {reason}"))
            })?,
            None => relay_url,
        };
        let admin = BrokerAdmin::new(url, &settings.username, password, config.amqp_timeout)?;
        let ca_pem = config
            .ca_pem()
            .map_err(|error| BrokerError::Config(error.to_string()))?;
        Ok(Some(Self {
            admin,
            amqp,
            box_url,
            ca_pem,
            exchange: config.order_exchange.clone(),
            timeout: config.amqp_timeout,
        }))
    }

    pub fn admin(&self) -> &BrokerAdmin {
        &self.admin
    }

    /// The vhost kitchens' queues and users' permissions are on (`AMQP_URL`'s).
    pub fn vhost(&self) -> &str {
        &self.amqp.vhost
    }

    async fn timed<T>(
        &self,
        what: &'static str,
        future: impl Future<Output = Result<T, lapin::Error>>,
    ) -> Result<T, BrokerError> {
        match tokio::time::timeout(self.timeout, future).await {
            Ok(result) => result.map_err(|source| BrokerError::Amqp { what, source }),
            Err(_) => Err(BrokerError::Timeout(what)),
        }
    }

    async fn channel(&self) -> Result<(Connection, Channel), BrokerError> {
        let connection = self
            .timed(
                "connect",
                Connection::connect_uri_with_config(
                    self.amqp.clone(),
                    ConnectionProperties::default()
                        .with_connection_name("cloud-relay kitchen provisioning".into()),
                    lapin::tcp::OwnedTLSConfig {
                        identity: None,
                        cert_chain: self.ca_pem.clone(),
                    },
                    lapin::runtime::default_runtime().map_err(|source| BrokerError::Amqp {
                        what: "runtime",
                        source,
                    })?,
                ),
            )
            .await?;
        let channel = self.timed("channel", connection.create_channel()).await?;
        Ok((connection, channel))
    }

    /// Declares the kitchen's queue, binds it for `stores` and unbinds every other store.
    pub async fn rebind(
        &self,
        kitchen_id: &str,
        stores: &[String],
    ) -> Result<Rebound, BrokerError> {
        check_kitchen(kitchen_id)?;
        let queue = edge_queue(kitchen_id);
        let before = self
            .admin
            .bindings(self.vhost(), &self.exchange, &queue)
            .await?;
        let (connection, channel) = self.channel().await?;
        let result = async {
            let store_refs: Vec<&str> = stores.iter().map(String::as_str).collect();
            self.timed(
                "declare and bind",
                declare_kitchen_queue(
                    &channel,
                    &self.exchange,
                    kitchen_id,
                    &store_refs,
                    EDGE_DELIVERY_LIMIT,
                ),
            )
            .await?;
            let mut unbound = Vec::new();
            for store in before.iter().filter(|store| !stores.contains(store)) {
                self.timed(
                    "unbind",
                    unbind_store(&channel, &self.exchange, kitchen_id, store),
                )
                .await?;
                unbound.push(store.clone());
            }
            Ok::<_, BrokerError>(unbound)
        }
        .await;
        let _ = tokio::time::timeout(self.timeout, connection.close(200, "done".into())).await;
        let unbound = result?;
        Ok(Rebound {
            queue,
            stores: stores.to_vec(),
            bound: stores
                .iter()
                .filter(|store| !before.contains(store))
                .cloned()
                .collect(),
            unbound,
        })
    }

    /// The box's `amqp_url` for `user` with `password`.
    fn login(&self, user: &str, password: &SecretString) -> BrokerLogin {
        let mut url = self.box_url.clone();
        url.authority.userinfo.username = user.to_owned();
        url.authority.userinfo.password = password.expose_secret().to_owned();
        BrokerLogin {
            user: user.to_owned(),
            amqp_url: SecretString::from(url.to_string()),
        }
    }

    /// `kitchen add`: the queue and bindings, then the box's user (created with a new password
    /// if missing) and its permissions.
    pub async fn provision(
        &self,
        kitchen_id: &str,
        stores: &[String],
    ) -> Result<BrokerProvisioned, BrokerError> {
        let rebound = self.rebind(kitchen_id, stores).await?;
        let user = box_user(kitchen_id);
        let login = if self.admin.user_exists(&user).await? {
            None
        } else {
            let password = new_password();
            self.admin.put_user(&user, &password).await?;
            Some(self.login(&user, &password))
        };
        self.admin
            .set_permissions(self.vhost(), &user, &box_permissions(kitchen_id))
            .await?;
        Ok(BrokerProvisioned {
            kitchen_id: kitchen_id.to_owned(),
            rebound,
            login,
        })
    }

    /// `kitchen rotate`: a new password for the box's user; its open connections are closed.
    pub async fn rotate(&self, kitchen_id: &str) -> Result<(BrokerLogin, usize), BrokerError> {
        let user = box_user(kitchen_id);
        if !self.admin.user_exists(&user).await? {
            return Err(BrokerError::NoUser(kitchen_id.to_owned()));
        }
        let password = new_password();
        self.admin.put_user(&user, &password).await?;
        let closed = self.admin.close_connections(&user).await?;
        Ok((self.login(&user, &password), closed))
    }

    /// Enrolment (`POST /enrol`): the queue and bindings as `provision` makes them, and the
    /// box's user with a new password whether it existed or not; the connections of the box
    /// that held the old password are closed. Returns the login and how many were closed.
    pub async fn enrol(
        &self,
        kitchen_id: &str,
        stores: &[String],
    ) -> Result<(BrokerLogin, usize), BrokerError> {
        self.rebind(kitchen_id, stores).await?;
        let user = box_user(kitchen_id);
        let password = new_password();
        self.admin.put_user(&user, &password).await?;
        self.admin
            .set_permissions(self.vhost(), &user, &box_permissions(kitchen_id))
            .await?;
        let closed = self.admin.close_connections(&user).await?;
        Ok((self.login(&user, &password), closed))
    }

    /// `kitchen remove`: deletes the box's user (closing its connections); the queue only when
    /// `delete_queue`, as it may hold orders nobody has read yet.
    pub async fn remove(
        &self,
        kitchen_id: &str,
        delete_queue: bool,
    ) -> Result<BrokerRemoved, BrokerError> {
        let user = box_user(kitchen_id);
        let queue = edge_queue(kitchen_id);
        let user_deleted = self.admin.delete_user(&user).await?;
        let connections_closed = self.admin.close_connections(&user).await?;
        let (queue_deleted, queue_messages) = if delete_queue {
            let deleted = delete_kitchen_queue(&self.admin, self.vhost(), kitchen_id).await?;
            (Some(deleted), None)
        } else {
            (None, self.admin.queue_messages(self.vhost(), &queue).await?)
        };
        Ok(BrokerRemoved {
            user,
            user_deleted,
            connections_closed,
            queue,
            queue_deleted,
            queue_messages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_login_is_the_box_url_with_its_user_and_password() {
        let mut config = Config::default();
        config.broker_admin.url = Some("http://127.0.0.1:15672".into());
        config.broker_admin.password = Some(SecretString::from("admin-pw"));
        config.amqp_url = SecretString::from("amqp://relay:relay-pw@10.0.0.7:5672/kitchens");
        let broker = Broker::from_config(&config).expect("valid").expect("on");
        assert_eq!(broker.vhost(), "kitchens");
        let login = broker.login("edge.bk/01", &SecretString::from("pa-ss_w"));
        assert_eq!(
            login.to_string(),
            "# the box's kitchen.toml:\n\
             amqp_url = \"amqp://edge%2Ebk%2F01:pa%2Dss%5Fw@10.0.0.7:5672/kitchens\""
        );
        let parsed: AMQPUri = login.amqp_url.expose_secret().parse().expect("parses back");
        assert_eq!(parsed.authority.userinfo.username, "edge.bk/01");
        assert_eq!(parsed.authority.userinfo.password, "pa-ss_w");
        assert_eq!(
            broker.amqp.authority.userinfo.username,
            "kitchen-provisioner"
        );
        assert_eq!(broker.amqp.authority.userinfo.password, "admin-pw");

        config.broker_admin.box_url = Some("amqps://broker.example.com:5671/kitchens".into());
        let broker = Broker::from_config(&config).expect("valid").expect("on");
        assert_eq!(
            broker
                .login("edge.a", &SecretString::from("p"))
                .amqp_url
                .expose_secret(),
            "amqps://edge%2Ea:p@broker.example.com:5671/kitchens"
        );
        config.broker_admin.url = None;
        assert!(Broker::from_config(&config).expect("valid").is_none());
    }
}
