//! A cloud database for the sync tests and benchmark: a fresh database migrated by the relay's
//! own migrations, with one kitchen whose box logs in as its own role; the database and the
//! role are removed when it is dropped.

use kitchen_proto::reference::Reference;
use sqlx::{Connection, PgConnection, PgPool};

fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct Cloud {
    pub name: String,
    pub role: String,
    pub kitchen_id: String,
    pub pool: PgPool,
}

impl Cloud {
    pub async fn create(kitchen_id: &str) -> Self {
        let suffix = super::unique("x").replace('-', "_");
        let name = format!("sync_test{suffix}");
        let role = format!("box{suffix}");
        let admin = admin_database_url();
        let mut connection = PgConnection::connect(&admin).await.expect("postgres");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .expect("create database");
        let pool = PgPool::connect(&Self::url_for(&admin, &name))
            .await
            .expect("connect");
        cloud_relay::db::MIGRATOR.run(&pool).await.expect("migrate");
        cloud_relay::kitchens::add_kitchen(&pool, kitchen_id, &role, None)
            .await
            .expect("kitchen provisioned");
        Self {
            name,
            role,
            kitchen_id: kitchen_id.to_owned(),
            pool,
        }
    }

    fn url_for(admin: &str, database: &str) -> String {
        format!("{}/{database}", admin.rsplit_once('/').expect("url").0)
    }

    /// How the kitchen box connects: as its role, through `addr`.
    pub fn agent_url(&self, addr: std::net::SocketAddr) -> String {
        format!("postgres://{}@{addr}/{}", self.role, self.name)
    }

    pub async fn import(&self, text: &str) -> i64 {
        let reference = Reference::parse(text).expect("valid reference");
        cloud_relay::kitchens::import_reference(&self.pool, &self.kitchen_id, &reference)
            .await
            .expect("imported")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect(sql)
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let (name, role, admin) = (self.name.clone(), self.role.clone(), admin_database_url());
        // A runtime of its own: the test's is blocked in this drop.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut connection) = PgConnection::connect(&admin).await {
                    for sql in [
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                        format!("DROP ROLE IF EXISTS {role}"),
                    ] {
                        let _ = sqlx::query(&sql).execute(&mut connection).await;
                    }
                }
            });
        })
        .join();
    }
}

/// Where PostgreSQL listens (what a proxy forwards to).
pub fn postgres_addr() -> std::net::SocketAddr {
    "127.0.0.1:5432".parse().expect("addr")
}
