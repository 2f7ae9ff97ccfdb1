//! A cloud database for the sync tests and benchmark: a fresh database migrated by the relay's
//! own migrations, with one kitchen whose box logs in as its own role; the database and the
//! role are removed when it is dropped.

use kitchen_proto::reference::Reference;
use kitchen_testkit::{
    db::{TestDb, TestRole, admin_database_url},
    proxy::socket_addr_of,
};

pub struct Cloud {
    // Fields drop in declaration order: the database before the role it granted things to.
    pub db: TestDb,
    pub role: TestRole,
    pub kitchen_id: String,
}

impl Cloud {
    pub async fn create(kitchen_id: &str) -> Self {
        let role = TestRole::named("box");
        let db = TestDb::migrated(&cloud_relay::db::MIGRATOR).await;
        cloud_relay::kitchens::add_kitchen(&db.pool, kitchen_id, &role.name, None)
            .await
            .expect("kitchen provisioned");
        Self {
            db,
            role,
            kitchen_id: kitchen_id.to_owned(),
        }
    }

    /// How the kitchen box connects: as its role, through `addr`.
    pub fn agent_url(&self, addr: std::net::SocketAddr) -> String {
        format!("postgres://{}@{addr}/{}", self.role.name, self.db.name)
    }

    pub async fn import(&self, text: &str) -> i64 {
        let reference = Reference::parse(text).expect("valid reference");
        cloud_relay::kitchens::import_reference(&self.db.pool, &self.kitchen_id, &reference)
            .await
            .expect("imported")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.count(sql).await
    }
}

/// Where PostgreSQL listens (what a proxy forwards to).
pub fn postgres_addr() -> std::net::SocketAddr {
    socket_addr_of(&admin_database_url())
}
