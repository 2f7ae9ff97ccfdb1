//! Enrolment against the real relay, PostgreSQL and RabbitMQ: `kitchen enrol-token` (the CLI)
//! makes a token, `POST /enrol` exchanges it once for the kitchen's own credentials — a broker
//! login that works, a database password whose SCRAM verifier PostgreSQL now holds — and
//! refuses it when used, expired, unknown or for another kitchen. A second enrolment revokes
//! the first box's credentials.

use std::time::Duration;

use base64::Engine as _;
use cloud_relay::kitchens;
use lapin::options::QueueDeclareOptions;
use serde_json::{Value, json};

use super::broker_access::{
    clean_up, config as broker_config, connect, connection_listed, relay_cli,
};
use super::harness::*;

/// `kitchen enrol-token` through the binary; the token from its `enrol_token = "…"` line.
async fn enrol_token(db: &TestDb, exchange: &str, kitchen: &str) -> String {
    let (ok, stdout, stderr) = relay_cli(
        db,
        exchange,
        &[
            "kitchen",
            "enrol-token",
            "--kitchen",
            kitchen,
            "--valid-hours",
            "2",
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "enrolment token for kitchen {kitchen:?}: valid once, until "
        )),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        "# the box's kitchen.toml (with kitchen_id, store_ids, enrol_url):"
    );
    let token = lines[2]
        .strip_prefix("enrol_token = \"")
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no token line: {stdout}"));
    assert_eq!(token.len(), 43, "32 bytes, base64url");
    token.to_owned()
}

/// The role's password verifier as PostgreSQL stores it.
async fn stored_verifier(db: &TestDb, role: &str) -> String {
    let pool = db.connect_as("postgres").await;
    sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(role)
        .fetch_one(&pool)
        .await
        .expect("role has a password")
}

/// Whether `password` is the one behind `verifier` (`SCRAM-SHA-256$<i>:<salt>$<stored>:<server>`).
fn verifies(verifier: &str, password: &str) -> bool {
    let (head, _) = verifier.rsplit_once('$').expect("verifier");
    let (_, params) = head.split_once('$').expect("verifier");
    let (iterations, salt) = params.split_once(':').expect("verifier");
    let salt = base64::engine::general_purpose::STANDARD
        .decode(salt)
        .expect("salt");
    kitchens::scram::verifier(password, &salt, iterations.parse().expect("iterations")) == verifier
}

/// The user and password of a `scheme://user:password@host…` URL.
fn login_of(url: &str) -> (String, String) {
    let rest = url.split_once("://").expect("url").1;
    let (userinfo, _) = rest.split_once('@').expect("login in url");
    let (user, password) = userinfo.split_once(':').expect("password in url");
    (decoded(user), decoded(password))
}

fn decoded(text: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' && tail.len() >= 2 {
            let hex = std::str::from_utf8(&tail[..2]).expect("ascii");
            bytes.push(u8::from_str_radix(hex, 16).expect("hex"));
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).expect("utf-8")
}

#[tokio::test]
async fn a_token_enrols_once_and_a_new_enrolment_revokes_the_old_box() {
    let role = TestRole::named("enrol_box");
    let kitchen = unique("enrol-kitchen");
    let exchange = unique("enrol.structured_order_data");
    let _objects = clean_up(&[&kitchen], &[]);
    let app = spawn_app_with(|config| {
        let admin = broker_config(&exchange).broker_admin;
        config.broker_admin = admin;
        config.enrol.box_database_url = Some("postgres://127.0.0.1:5432/kitchen".into());
    })
    .await;
    let exchange = app.config.order_exchange.clone();
    let pool = app.db.connect_as("postgres").await;
    kitchens::add_kitchen(&pool, &kitchen, &role.name, None)
        .await
        .expect("kitchen added");
    let enrol = |kitchen: String, token: String| {
        let request = app
            .client
            .post(app.url("/enrol"))
            .json(&json!({ "kitchen_id": kitchen, "token": token }));
        async move {
            let response = request.send().await.expect("relay answers");
            let status = response.status().as_u16();
            let cache = response
                .headers()
                .get("cache-control")
                .map(|value| value.to_str().unwrap_or_default().to_owned());
            let body: Value = response.json().await.expect("json");
            (status, body, cache)
        }
    };

    let token = enrol_token(&app.db, &exchange, &kitchen).await;
    // Another kitchen's id with this token: refused, and the token stays good.
    let (status, body, _) = enrol("other-kitchen".into(), token.clone()).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({ "error": "this enrolment token is not for kitchen \"other-kitchen\"" })
        )
    );
    let (status, first, cache) = enrol(kitchen.clone(), token.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    let object = first.as_object().expect("object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["amqp_url", "database_url", "kitchen_id"]);
    assert_eq!(first["kitchen_id"], kitchen.as_str());
    let amqp_url = first["amqp_url"].as_str().expect("amqp_url").to_owned();
    let (user, _) = login_of(&amqp_url);
    assert_eq!(user, format!("edge.{kitchen}"));
    let database_url = first["database_url"].as_str().expect("database_url");
    let (db_user, db_password) = login_of(database_url);
    assert_eq!(db_user, role.name);
    assert!(
        database_url.ends_with("@127.0.0.1:5432/kitchen"),
        "{database_url}"
    );
    let verifier = stored_verifier(&app.db, &role.name).await;
    assert!(
        verifies(&verifier, &db_password),
        "the role holds the issued password"
    );

    // The broker login works: the box finds its queue (made by the enrolment).
    let old_box = connect(&amqp_url).await.expect("the issued login connects");
    let channel = old_box.create_channel().await.expect("channel");
    channel
        .queue_declare(
            format!("edge.{kitchen}").as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("its queue is there");

    connection_listed(&user).await;

    // The same token again: refused, saying when it was used.
    let (status, body, _) = enrol(kitchen.clone(), token.clone()).await;
    assert_eq!(status, 403);
    let reason = body["error"].as_str().expect("reason");
    assert!(
        reason.starts_with("this enrolment token was already used at ")
            && reason.ends_with(" (a token works once; ask for a new one)"),
        "{reason}"
    );
    let (status, body, _) = enrol(kitchen.clone(), "not-a-token".into()).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({ "error": "unknown enrolment token (ask for a new one: cloud-relay kitchen enrol-token)" })
        )
    );

    // An expired token.
    let expired = enrol_token(&app.db, &exchange, &kitchen).await;
    sqlx::query(
        "UPDATE kitchen.enrolment_tokens SET expires_at = now() - interval '1 second' \
         WHERE kitchen_id = $1 AND used_at IS NULL",
    )
    .bind(&kitchen)
    .execute(&pool)
    .await
    .expect("expire");
    let (status, body, _) = enrol(kitchen.clone(), expired).await;
    assert_eq!(status, 403);
    let reason = body["error"].as_str().expect("reason");
    assert!(
        reason.starts_with("this enrolment token expired at ")
            && reason.ends_with(" (ask for a new one)"),
        "{reason}"
    );

    // A new card for the same kitchen: new credentials, the old box's stop working.
    let second_token = enrol_token(&app.db, &exchange, &kitchen).await;
    let (status, second, _) = enrol(kitchen.clone(), second_token).await;
    assert_eq!(status, 200, "{second}");
    let new_amqp_url = second["amqp_url"].as_str().expect("amqp_url");
    assert_ne!(new_amqp_url, amqp_url);
    let (_, new_db_password) = login_of(second["database_url"].as_str().expect("url"));
    let verifier = stored_verifier(&app.db, &role.name).await;
    assert!(verifies(&verifier, &new_db_password));
    assert!(
        !verifies(&verifier, &db_password),
        "the old password is gone"
    );
    eventually(
        "the old box's broker connection closed",
        Duration::from_secs(20),
        || async { (!old_box.status().connected()).then_some(()) },
    )
    .await;
    assert!(
        connect(&amqp_url).await.is_err(),
        "the old login still connects"
    );
    let new_box = connect(new_amqp_url).await.expect("the new login connects");
    let _ = new_box.close(200, "done".into()).await;

    // Only hashes are stored; both used tokens are kept with who used them.
    let rows: Vec<(i32, Option<String>)> = sqlx::query_as(
        "SELECT length(token_sha256), used_from FROM kitchen.enrolment_tokens \
         WHERE kitchen_id = $1 ORDER BY created_at",
    )
    .bind(&kitchen)
    .fetch_all(&pool)
    .await
    .expect("tokens");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|(length, from)| {
        *length == 32
            && from
                .as_deref()
                .is_some_and(|peer| peer.starts_with("127.0.0.1:"))
    }));
    drop(pool);
    app.stop().await.expect("relay stops");
}

#[tokio::test]
async fn enrolment_says_what_is_missing_when_it_is_not_set_up() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/enrol"))
        .json(&json!({ "kitchen_id": "k", "token": "t" }))
        .send()
        .await
        .expect("relay answers");
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({ "error": "enrolment is not set up on this relay: [broker_admin] url is not set" })
    );
    let response = app
        .client
        .post(app.url("/enrol"))
        .body("{\"kitchen\": 1}")
        .send()
        .await
        .expect("relay answers");
    assert_eq!(response.status().as_u16(), 400);
    app.stop().await.expect("relay stops");
}
