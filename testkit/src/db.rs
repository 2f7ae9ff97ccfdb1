//! PostgreSQL for tests: a database of its own per test, created on the cluster that
//! `TEST_DATABASE_URL` names and dropped when the test ends, and cluster roles that go with it.

use std::str::FromStr;

use sqlx::{
    Connection as _, PgConnection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{names::unique, run_blocking};

/// The cluster's admin URL: `TEST_DATABASE_URL`, else the local trust-auth default.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own, dropped (with its connections) when the test ends.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// Connects as the admin.
    pub pool: PgPool,
}

impl TestDb {
    pub async fn create() -> Self {
        Self::create_owned(None).await
    }

    /// A database of its own with `migrator`'s migrations applied (e.g. the relay's
    /// `cloud_relay::db::MIGRATOR`, without starting a relay).
    pub async fn migrated(migrator: &Migrator) -> Self {
        let db = Self::create().await;
        migrator.run(&db.pool).await.expect("migrations apply");
        db
    }

    /// A database of its own owned by `owner` (not migrated; `pool` connects as the admin).
    pub async fn owned_by(owner: &TestRole) -> Self {
        Self::create_owned(Some(owner)).await
    }

    async fn create_owned(owner: Option<&TestRole>) -> Self {
        let name = unique("kitchen_test");
        let admin = admin_database_url();
        let mut connection = PgConnection::connect(&admin)
            .await
            .expect("postgres reachable");
        let owner = owner.map_or_else(String::new, |role| format!(" OWNER {}", role.ident()));
        sqlx::query(&format!("CREATE DATABASE {name}{owner}"))
            .execute(&mut connection)
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').expect("url has a database").0;
        let url = format!("{base}/{name}");
        let pool = PgPool::connect(&url).await.expect("connect test database");
        Self { name, url, pool }
    }

    /// A small pool logged in as `role` (the test cluster trusts local connections, so no
    /// password is needed): how a kitchen box, or the relay's own role, sees this database.
    pub async fn connect_as(&self, role: &str) -> PgPool {
        let options = PgConnectOptions::from_str(&self.url)
            .expect("database url")
            .username(role);
        PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("connect as role")
    }

    /// The one number `sql` selects (e.g. `SELECT count(*) FROM ...`).
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect(sql)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = admin_database_url();
        // The pool belongs to the test's runtime, blocked here: FORCE closes its connections.
        run_blocking(async move {
            if let Ok(mut connection) = PgConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut connection)
                    .await;
            }
        });
    }
}

/// A role of its own on the test cluster. Roles are cluster-wide and outlive the test
/// databases, so it is dropped when the test ends (its sessions ended first). Declare it before
/// the `TestDb` it is used in (or, in a struct, after it): locals drop in reverse order and
/// fields in declaration order, so the database — with anything the role owns or was granted
/// there — goes first, and `DROP ROLE` finds nothing depending on it. (`kitchen_agent`, the
/// group role the relay's migration creates, is shared by every test database and stays.)
#[derive(Debug)]
pub struct TestRole {
    pub name: String,
}

impl TestRole {
    /// A unique name, not created (for e.g. the relay's `kitchens::add_kitchen` to create).
    pub fn named(prefix: &str) -> Self {
        Self {
            name: unique(prefix),
        }
    }

    /// Created with `attributes` (e.g. `LOGIN CREATEROLE`).
    pub async fn create(prefix: &str, attributes: &str) -> Self {
        let role = Self::named(prefix);
        let mut connection = PgConnection::connect(&admin_database_url())
            .await
            .expect("postgres reachable");
        sqlx::query(&format!("CREATE ROLE {} {attributes}", role.ident()))
            .execute(&mut connection)
            .await
            .expect("create role");
        role
    }

    /// The name as a quoted identifier.
    pub fn ident(&self) -> String {
        format!("\"{}\"", self.name.replace('"', "\"\""))
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let (name, ident) = (self.name.clone(), self.ident());
        let admin = admin_database_url();
        run_blocking(async move {
            if let Ok(mut connection) = PgConnection::connect(&admin).await {
                let _ = sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                )
                .bind(&name)
                .execute(&mut connection)
                .await;
                if let Err(error) = sqlx::query(&format!("DROP ROLE IF EXISTS {ident}"))
                    .execute(&mut connection)
                    .await
                {
                    eprintln!("test role {name:?} left behind: {error}");
                }
            }
        });
    }
}
