//! Limits on the boxes' database roles, against the real PostgreSQL: a connection limit (the
//! next connection is refused by the server), session timeouts, no CREATE in `public`; and the
//! migration applies them to box roles provisioned before it.

use std::str::FromStr;

use cloud_relay::{db::MIGRATOR, kitchens};
use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};

use super::harness::*;

const SETTINGS: [&str; 5] = [
    "statement_timeout=15s",
    "idle_in_transaction_session_timeout=30s",
    "tcp_keepalives_idle=60",
    "tcp_keepalives_interval=10",
    "tcp_keepalives_count=3",
];

fn as_role(db: &TestDb, role: &TestRole) -> PgConnectOptions {
    PgConnectOptions::from_str(&db.url)
        .expect("database url")
        .username(&role.name)
}

async fn limits(db: &TestDb, role: &TestRole) -> (i32, Vec<String>) {
    sqlx::query_as(
        "SELECT r.rolconnlimit, coalesce(s.setconfig, '{}')
         FROM pg_roles r
         LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
         WHERE r.rolname = $1",
    )
    .bind(&role.name)
    .fetch_one(&db.pool)
    .await
    .expect("role read")
}

#[tokio::test]
async fn a_box_role_cannot_open_more_than_its_connections() {
    let role = TestRole::named("limited_box");
    let db = TestDb::migrated(&MIGRATOR).await;
    let provisioned = kitchens::add_kitchen(&db.pool, "bk-limits", &role.name, None)
        .await
        .expect("provisioned");
    assert_eq!(provisioned.connection_limit, 4);
    assert_eq!(provisioned.settings, SETTINGS);

    let options = as_role(&db, &role);
    let mut open = Vec::new();
    for n in 1..=4 {
        let connection = PgConnection::connect_with(&options)
            .await
            .unwrap_or_else(|error| panic!("connection {n} within the limit: {error}"));
        open.push(connection);
    }
    let error = PgConnection::connect_with(&options)
        .await
        .expect_err("a fifth connection");
    let database_error = error.as_database_error().expect("refused by the server");
    assert_eq!(database_error.code().as_deref(), Some("53300"), "{error}");
    assert_eq!(
        database_error.message(),
        format!("too many connections for role \"{}\"", role.name)
    );

    let session = &mut open[0];
    for (setting, expected) in [
        ("statement_timeout", "15s"),
        ("idle_in_transaction_session_timeout", "30s"),
    ] {
        let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(&mut *session)
            .await
            .expect("show");
        assert_eq!(value, expected, "{setting}");
    }
    let refused = sqlx::query("CREATE TABLE public.box_was_here (id int)")
        .execute(&mut *session)
        .await
        .expect_err("no CREATE in public");
    assert_eq!(
        refused.as_database_error().map(|e| e.message().to_owned()),
        Some("permission denied for schema public".to_owned())
    );

    // One closed, one more may connect.
    open.pop().expect("open").close().await.expect("closed");
    let again = PgConnection::connect_with(&options)
        .await
        .expect("back within the limit");
    drop(again);
    drop(open);
}

#[tokio::test]
async fn the_migration_limits_box_roles_provisioned_before_it() {
    let role = TestRole::named("old_box");
    let db = TestDb::migrated(&MIGRATOR).await;
    kitchens::add_kitchen(&db.pool, "bk-old", &role.name, None)
        .await
        .expect("provisioned");
    // As before this migration: no limits, CREATE on public for everyone (PostgreSQL < 15).
    for statement in [
        format!("ALTER ROLE {} CONNECTION LIMIT -1", role.ident()),
        format!("ALTER ROLE {} RESET ALL", role.ident()),
        "GRANT CREATE ON SCHEMA public TO PUBLIC".to_owned(),
        "DELETE FROM _sqlx_migrations WHERE version = 20261203000002".to_owned(),
    ] {
        sqlx::query(&statement)
            .execute(&db.pool)
            .await
            .expect(&statement);
    }
    assert_eq!(limits(&db, &role).await, (-1, Vec::new()));

    MIGRATOR
        .run(&db.pool)
        .await
        .expect("the migration runs again");
    let (limit, settings) = limits(&db, &role).await;
    assert_eq!(limit, 4);
    assert_eq!(settings, SETTINGS);
    let mut session = PgConnection::connect_with(&as_role(&db, &role))
        .await
        .expect("connects");
    let refused = sqlx::query("CREATE TABLE public.box_was_here (id int)")
        .execute(&mut session)
        .await
        .expect_err("no CREATE in public");
    assert_eq!(
        refused.as_database_error().map(|e| e.message().to_owned()),
        Some("permission denied for schema public".to_owned())
    );
    session.close().await.expect("closed");
}
