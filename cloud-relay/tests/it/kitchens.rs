//! Kitchens in PostgreSQL: reference import and export (round trip, versions, NOTIFY, nothing
//! changed by a refused import), and provisioning through the `cloud-relay` binary.

use std::{path::PathBuf, time::Duration};

use cloud_relay::{
    db::MIGRATOR,
    kitchens::{self, KitchenError, REFERENCE_CHANNEL, export_reference, import_reference},
};
use kitchen_proto::reference::{AcceptMode, Reference};
use sqlx::postgres::PgListener;

use super::harness::*;

pub const REFERENCE: &str = include_str!("../fixtures/reference.toml");

pub fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference.toml")
}

/// The parts of a reference (its indexes are derived from them).
fn parts(
    reference: &Reference,
) -> (
    &[kitchen_proto::reference::Station],
    &[kitchen_proto::reference::OtterStore],
    &[kitchen_proto::reference::Item],
    &[kitchen_proto::reference::DayPart],
) {
    (
        &reference.stations,
        &reference.stores,
        &reference.items,
        &reference.day_parts,
    )
}

async fn add_kitchens(db: &TestDb, ids: &[&str]) {
    for id in ids {
        sqlx::query("INSERT INTO kitchen.kitchens (kitchen_id) VALUES ($1)")
            .bind(id)
            .execute(&db.pool)
            .await
            .expect("insert kitchen");
    }
}

async fn exported(db: &TestDb, kitchen_id: &str) -> (Reference, i64) {
    export_reference(&db.pool, kitchen_id)
        .await
        .expect("export")
        .expect("the kitchen has a reference")
}

/// `(version, stations, stores, items, matches, pars, day parts, Otter entity ids)` rows held
/// for a kitchen.
async fn held(db: &TestDb, kitchen_id: &str) -> [i64; 8] {
    let mut counts = [0; 8];
    let queries = [
        "SELECT coalesce(max(version), 0) FROM kitchen.reference_versions WHERE kitchen_id = $1",
        "SELECT count(*) FROM kitchen.ref_stations WHERE kitchen_id = $1",
        "SELECT count(*) FROM kitchen.ref_stores WHERE kitchen_id = $1",
        "SELECT count(*) FROM kitchen.ref_items WHERE kitchen_id = $1",
        "SELECT count(*) FROM kitchen.ref_matches WHERE kitchen_id = $1",
        "SELECT count(*) FROM kitchen.ref_pars WHERE kitchen_id = $1",
        "SELECT count(*) FROM kitchen.ref_day_parts WHERE kitchen_id = $1",
        "SELECT count(*) FROM kitchen.ref_otter_entities WHERE kitchen_id = $1",
    ];
    for (count, sql) in counts.iter_mut().zip(queries) {
        *count = sqlx::query_scalar(sql)
            .bind(kitchen_id)
            .fetch_one(&db.pool)
            .await
            .expect(sql);
    }
    counts
}

#[tokio::test]
async fn an_imported_reference_exports_equal_with_a_new_version_each_time() {
    let db = TestDb::migrated(&MIGRATOR).await;
    add_kitchens(&db, &["bk-01", "bk-02"]).await;
    let mut listener = PgListener::connect_with(&db.pool).await.expect("listener");
    listener.listen(REFERENCE_CHANNEL).await.expect("listen");
    let reference = Reference::parse(REFERENCE).expect("fixture is valid");

    assert_eq!(
        export_reference(&db.pool, "bk-01")
            .await
            .expect("export")
            .map(|(_, v)| v),
        None
    );
    assert_eq!(
        import_reference(&db.pool, "bk-01", &reference)
            .await
            .expect("import"),
        1
    );
    let (back, version) = exported(&db, "bk-01").await;
    assert_eq!(version, 1);
    assert_eq!(parts(&back), parts(&reference));
    assert_eq!(
        back.to_toml().expect("toml"),
        reference.to_toml().expect("toml")
    );
    // 5 stations, 1 store, 8 items with 12 match entries and 4 day-part PARs, 2 day parts.
    assert_eq!(held(&db, "bk-01").await, [1, 5, 1, 8, 12, 4, 2, 0]);
    let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("notified in time")
        .expect("notification");
    assert_eq!(
        (notification.channel(), notification.payload()),
        (REFERENCE_CHANNEL, "bk-01")
    );

    // A second import replaces (not merges) and bumps the version; a store's accept mode and
    // an item's Otter menu entity ids per store come back as imported.
    let smaller = Reference::parse(
        r#"
[[stations]]
id = "grill"
name = "Grill line"

[[stores]]
store_id = "kitchen-bk-01"
brand = "Smash Bros"

[[stores]]
store_id = "kitchen-bk-02"
brand = "Smash Sisters"
accept = "manual"

[[items]]
id = "double-smash"
name = "Double Smash Burger"
station = "grill"
prep_seconds = 400
match = ["sku-smash-double"]

[items.otter_entities]
kitchen-bk-01 = ["burger-42", "burger-42-combo"]
kitchen-bk-02 = ["smash-sisters-7"]
"#,
    )
    .expect("valid");
    assert_eq!(smaller.accept_mode("kitchen-bk-02"), AcceptMode::Manual);
    assert_eq!(
        import_reference(&db.pool, "bk-01", &smaller)
            .await
            .expect("import"),
        2
    );
    let (back, version) = exported(&db, "bk-01").await;
    assert_eq!((parts(&back), version), (parts(&smaller), 2));
    assert_eq!(back.accept_mode("kitchen-bk-02"), AcceptMode::Manual);
    assert_eq!(
        back.items[0].otter_entities, smaller.items[0].otter_entities,
        "entity ids in their order, per store"
    );
    assert_eq!(
        back.to_toml().expect("toml"),
        smaller.to_toml().expect("toml")
    );
    assert_eq!(held(&db, "bk-01").await, [2, 1, 2, 1, 1, 0, 0, 3]);

    // Another kitchen's import touches only that kitchen.
    assert_eq!(
        import_reference(&db.pool, "bk-02", &reference)
            .await
            .expect("import"),
        1
    );
    let (back, version) = exported(&db, "bk-01").await;
    assert_eq!((parts(&back), version), (parts(&smaller), 2));
    let (back, version) = exported(&db, "bk-02").await;
    assert_eq!((parts(&back), version), (parts(&reference), 1));

    assert_eq!(
        import_reference(&db.pool, "bk-01", &reference)
            .await
            .expect("import"),
        3
    );
    let (back, version) = exported(&db, "bk-01").await;
    assert_eq!((parts(&back), version), (parts(&reference), 3));
    let mut payloads = Vec::new();
    for _ in 0..3 {
        let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .expect("notified in time")
            .expect("notification");
        payloads.push(notification.payload().to_owned());
    }
    assert_eq!(payloads, ["bk-01", "bk-02", "bk-01"]);
}

#[tokio::test]
async fn a_refused_import_changes_nothing() {
    let db = TestDb::migrated(&MIGRATOR).await;
    add_kitchens(&db, &["bk-01"]).await;
    let reference = Reference::parse(REFERENCE).expect("fixture is valid");
    import_reference(&db.pool, "bk-01", &reference)
        .await
        .expect("import");
    let before = held(&db, "bk-01").await;
    assert_eq!(before, [1, 5, 1, 8, 12, 4, 2, 0]);

    // Does not fit the columns: refused before the transaction.
    let mut too_long = reference.clone();
    too_long.items[0].prep_seconds = 3_000_000_000;
    let too_long = Reference::new(
        too_long.stations,
        too_long.stores,
        too_long.items,
        too_long.day_parts,
    )
    .expect("valid for the agent");
    let error = import_reference(&db.pool, "bk-01", &too_long)
        .await
        .expect_err("out of range");
    assert_eq!(
        error.to_string(),
        "item \"double-smash\": prep_seconds = 3000000000 is more than the database holds \
         (at most 2147483647)"
    );
    assert_eq!(held(&db, "bk-01").await, before);

    // Valid for the agent, refused by PostgreSQL halfway through (text cannot hold NUL): the
    // rows already replaced and the version bump roll back.
    let mut nul = reference.clone();
    let last = nul.items.len() - 1;
    nul.items[last].matches.push("bad\u{0}key".into());
    let nul = Reference::new(nul.stations, nul.stores, nul.items, nul.day_parts)
        .expect("valid for the agent");
    let error = import_reference(&db.pool, "bk-01", &nul)
        .await
        .expect_err("NUL in text");
    assert!(matches!(error, KitchenError::Database(_)), "{error:?}");
    assert_eq!(held(&db, "bk-01").await, before);
    let (back, version) = exported(&db, "bk-01").await;
    assert_eq!((parts(&back), version), (parts(&reference), 1));

    // Unknown kitchen: refused, nothing created for it.
    let error = import_reference(&db.pool, "nowhere", &reference)
        .await
        .expect_err("unknown kitchen");
    assert_eq!(
        error.to_string(),
        "unknown kitchen \"nowhere\" (add it with `cloud-relay kitchen add`)"
    );
    assert_eq!(held(&db, "nowhere").await, [0; 8]);
    let error = export_reference(&db.pool, "nowhere")
        .await
        .expect_err("unknown kitchen");
    assert!(
        matches!(error, KitchenError::UnknownKitchen { .. }),
        "{error:?}"
    );
}

/// Runs the relay binary against `db` and returns (success, stdout, stderr).
async fn relay_cli(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud-relay"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .env_remove("RELAY_CONFIG")
        .env_remove("OTTER_WEBHOOK_SECRET")
        .env_remove("RABBITMQ_ADMIN_URL")
        .output()
        .await
        .expect("cloud-relay runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_provisions_a_kitchen_and_imports_and_exports_its_reference() {
    // A name that only survives proper quoting.
    let role = TestRole {
        name: format!("{} \"box\"", unique("Cli_Box")),
    };
    let db = TestDb::migrated(&MIGRATOR).await;
    let dir = std::env::temp_dir().join(unique("relay_cli"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let password_file = dir.join("password");
    std::fs::write(&password_file, "s3cret horse\n").expect("write password");
    let password_arg = password_file.to_str().expect("utf-8 path");

    let add = [
        "kitchen",
        "add",
        "--kitchen",
        "bk-01",
        "--role",
        &role.name,
        "--password-file",
        password_arg,
    ];
    let (ok, stdout, stderr) = relay_cli(&db, &add).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "kitchen \"bk-01\": created\n\
             role {name:?}: created (LOGIN, member of kitchen_agent)\n\
             role {name:?} is kitchen \"bk-01\"'s box: mapped\n\
             role {name:?}: at most 4 connections; statement_timeout=15s, \
             idle_in_transaction_session_timeout=30s, tcp_keepalives_idle=60, \
             tcp_keepalives_interval=10, tcp_keepalives_count=3\n\
             password: set (SCRAM-SHA-256 verifier)\n\
             broker: left alone ([broker_admin] url / RABBITMQ_ADMIN_URL is not set): the \
             kitchen's queue, bindings and broker user were not made or changed\n",
            name = role.name
        )
    );
    let (can_login, member, stored): (bool, bool, String) = sqlx::query_as(
        "SELECT rolcanlogin, pg_has_role(rolname, 'kitchen_agent', 'USAGE'), rolpassword
         FROM pg_authid WHERE rolname = $1",
    )
    .bind(&role.name)
    .fetch_one(&db.pool)
    .await
    .expect("role exists");
    assert!(can_login && member);
    // The stored verifier is the password's: recompute it with the stored salt.
    let salt_b64 = stored
        .strip_prefix("SCRAM-SHA-256$4096:")
        .and_then(|rest| rest.split('$').next())
        .expect("a SCRAM verifier");
    use base64::Engine;
    let salt = base64::engine::general_purpose::STANDARD
        .decode(salt_b64)
        .expect("base64 salt");
    assert_eq!(
        kitchens::scram::verifier("s3cret horse", &salt, 4096),
        stored
    );

    // Again: nothing new (the password is set again, with a new salt).
    let (ok, stdout, stderr) = relay_cli(&db, &add[..6]).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "kitchen \"bk-01\": already there\n\
             role {name:?}: already there (member of kitchen_agent)\n\
             role {name:?} is kitchen \"bk-01\"'s box: already mapped\n\
             role {name:?}: at most 4 connections; statement_timeout=15s, \
             idle_in_transaction_session_timeout=30s, tcp_keepalives_idle=60, \
             tcp_keepalives_interval=10, tcp_keepalives_count=3\n\
             password: unchanged (no --password-file)\n\
             broker: left alone ([broker_admin] url / RABBITMQ_ADMIN_URL is not set): the \
             kitchen's queue, bindings and broker user were not made or changed\n",
            name = role.name
        )
    );
    // One role, one kitchen.
    let (ok, _, stderr) = relay_cli(
        &db,
        &["kitchen", "add", "--kitchen", "bk-02", "--role", &role.name],
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "role {:?} is already the box of kitchen \"bk-01\"",
            role.name
        )),
        "{stderr}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM kitchen.kitchens WHERE kitchen_id = 'bk-02'")
            .await,
        0,
        "the refused provisioning rolled back"
    );
    // Never a superuser.
    let (ok, _, stderr) = relay_cli(
        &db,
        &["kitchen", "add", "--kitchen", "bk-03", "--role", "postgres"],
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("role \"postgres\" cannot be a kitchen box: it is a superuser"),
        "{stderr}"
    );

    let fixture = fixture_path();
    let fixture = fixture.to_str().expect("utf-8 path");
    let (ok, stdout, stderr) =
        relay_cli(&db, &["reference", "import", "--kitchen", "bk-01", fixture]).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "kitchen \"bk-01\": reference version 1 imported from {fixture} \
             (stations: 5, stores: 1, items: 8, day parts: 2)\n\
             broker: left alone ([broker_admin] url / RABBITMQ_ADMIN_URL is not set): the \
             kitchen's queue, bindings and broker user were not made or changed\n"
        )
    );
    let (ok, stdout, stderr) = relay_cli(&db, &["reference", "export", "--kitchen", "bk-01"]).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("# kitchen \"bk-01\", reference version 1\n"),
        "{stdout}"
    );
    let reference = Reference::parse(REFERENCE).expect("fixture");
    let back = Reference::parse(&stdout).expect("the export is a reference file");
    assert_eq!(parts(&back), parts(&reference));

    // An invalid file is refused with the reason; nothing changes.
    let invalid = dir.join("invalid.toml");
    std::fs::write(
        &invalid,
        REFERENCE.replace("station = \"wok\"", "station = \"noodle-bar\""),
    )
    .expect("write");
    let (ok, _, stderr) = relay_cli(
        &db,
        &[
            "reference",
            "import",
            "--kitchen",
            "bk-01",
            invalid.to_str().expect("utf-8 path"),
        ],
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("nothing changed"), "{stderr}");
    assert!(
        stderr.contains(
            "invalid reference: item \"beef-pho\" names station \"noodle-bar\", which is not listed"
        ),
        "{stderr}"
    );
    let (back, version) = exported(&db, "bk-01").await;
    assert_eq!((parts(&back), version), (parts(&reference), 1));

    let (ok, _, stderr) = relay_cli(&db, &["reference", "export", "--kitchen", "bk-04"]).await;
    assert!(!ok);
    assert!(stderr.contains("unknown kitchen \"bk-04\""), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
