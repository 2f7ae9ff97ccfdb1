//! What the command line does with the fleet channel, kept out of `main.rs`: a kitchen's MQTT
//! login (`kitchen add --mqtt-password-file`), `fleet command`, and the `reference` command
//! after `reference import`.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sqlx::PgPool;

use super::{Commander, FleetMetrics, passwd, unfit_for_mqtt};
use crate::config::MqttConfig;

/// A kitchen's new MQTT login, as printed by `kitchen add`.
pub struct MqttLogin {
    pub kitchen_id: String,
    pub password: SecretString,
    pub file: String,
    /// What the box's `mqtt_url` should be (the relay's `MQTT_URL`), if known.
    pub url: Option<String>,
}

impl std::fmt::Display for MqttLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "mqtt login {:?}: password hash written to {} (reload Mosquitto to use it: \
             systemctl reload mosquitto, or SIGHUP)",
            self.kitchen_id, self.file
        )?;
        writeln!(f, "# the box's kitchen.toml:")?;
        match &self.url {
            Some(url) => writeln!(f, "mqtt_url = {:?}", url)?,
            None => writeln!(f, "mqtt_url = \"mqtts://<broker>:8883\"")?,
        }
        write!(f, "mqtt_password = {:?}", self.password.expose_secret())
    }
}

/// Makes `kitchen_id` a new MQTT password and writes its hash into the password file.
pub fn add_mqtt_login(
    password_file: &Path,
    kitchen_id: &str,
    url: Option<String>,
) -> anyhow::Result<MqttLogin> {
    if let Some(reason) = unfit_for_mqtt(kitchen_id) {
        anyhow::bail!(
            "no MQTT login made for kitchen {kitchen_id:?}: {reason}, so it cannot be an MQTT \
             user name and topic level (the kitchen itself was added)"
        );
    }
    let password = passwd::new_password();
    passwd::set_user(password_file, kitchen_id, &passwd::hash(&password))
        .context("cannot write the MQTT password file (the kitchen itself was added)")?;
    Ok(MqttLogin {
        kitchen_id: kitchen_id.to_owned(),
        password,
        file: password_file.display().to_string(),
        url,
    })
}

/// `fleet command`: sends `name` to `kitchen` and waits up to `wait` for the reply.
pub async fn command(
    pool: &PgPool,
    mqtt: &MqttConfig,
    kitchen: &str,
    name: &str,
    wait: Duration,
) -> anyhow::Result<(uuid::Uuid, Option<Value>)> {
    if !mqtt.enabled() {
        anyhow::bail!("MQTT_URL is not set: the fleet channel is off");
    }
    mqtt.validate()?;
    let commander = Commander::new(
        pool.clone(),
        mqtt.clone(),
        Arc::new(FleetMetrics::default()),
    );
    let sent = commander
        .send(kitchen, name, "cloud-relay fleet command")
        .await?;
    let reply = commander.wait_reply(sent.id, wait).await?;
    Ok((sent.id, reply))
}

/// After `reference import` committed: tells the kitchen's box to pull it now. A failure only
/// warns (the import stands and the box polls anyway).
pub async fn announce_reference(pool: &PgPool, mqtt: &MqttConfig, kitchen: &str) -> Option<String> {
    if !mqtt.enabled() {
        return None;
    }
    if let Err(error) = mqtt.validate() {
        return Some(format!(
            "warning: the box was not told to pull it now ({error}); it picks it up at its next poll"
        ));
    }
    let commander = Commander::new(
        pool.clone(),
        mqtt.clone(),
        Arc::new(FleetMetrics::default()),
    );
    Some(
        match commander
            .send(kitchen, "reference", "cloud-relay reference import")
            .await
        {
            Ok(sent) => format!("sent the `reference` command to the box (id {})", sent.id),
            Err(error) => format!(
                "warning: the box was not told to pull it now ({error}); it picks it up at its \
                 next poll"
            ),
        },
    )
}
