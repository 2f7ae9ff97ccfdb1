//! What the Otter call tests share: the relay pointed at the testkit's Otter double, kitchens
//! provisioned with their own roles and reference data, orders ingested through real signed
//! webhooks, and intents pushed the way a box pushes them (as its role, tenant set, `ON CONFLICT
//! (record_id) DO NOTHING`).

use std::{collections::BTreeMap, time::Duration};

use cloud_relay::{
    Config,
    kitchens::{add_kitchen, import_reference},
};
use kitchen_proto::reference::{OtterStore, Reference};
pub use kitchen_testkit::otter::{JobEnd, OtterDouble, RecordedCall};
use serde_json::Value;
use sqlx::PgPool;

use super::{harness::*, kitchens::REFERENCE};

pub const CLIENT_ID: &str = "relay-client";
pub const CLIENT_SECRET: &str = "relay-client-secret";
/// The item the 86 tests suspend (the fixture's first item).
pub const ITEM: &str = "double-smash";

/// A relay calling `otter`, two kitchens with their roles, and the double.
pub struct Rig {
    pub otter: OtterDouble,
    /// Kitchen A's box, logged in as its role.
    pub box_a: PgPool,
    pub box_b: PgPool,
    // Dropped before the roles (fields drop in declaration order).
    pub app: TestApp,
    _role_a: TestRole,
    _role_b: TestRole,
}

pub const KITCHEN_A: &str = "kitchen-a";
pub const KITCHEN_B: &str = "kitchen-b";

/// The relay's Otter settings for tests: fast retries and job polls, the alarm out of the way.
pub fn otter_settings(config: &mut Config, otter: &OtterDouble) {
    let api = &mut config.otter_api;
    api.url = Some(otter.url());
    api.client_id = Some(CLIENT_ID.to_owned().into());
    api.client_secret = Some(CLIENT_SECRET.to_owned().into());
    api.retry_initial = Duration::from_millis(100);
    api.retry_max = Duration::from_millis(800);
    api.job_poll_interval = Duration::from_millis(100);
    api.request_timeout = Duration::from_secs(3);
    api.lease = Duration::from_secs(5);
    api.confirm_alarm_after = Duration::from_secs(3600);
}

/// The fixture reference serving `stores`, its first item on each store's Otter menu as
/// `<store>-e1`, `<store>-e2`.
pub fn reference_for(stores: &[&str]) -> Reference {
    let fixture = Reference::parse(REFERENCE).expect("fixture");
    let stores: Vec<OtterStore> = stores
        .iter()
        .map(|store_id| OtterStore {
            store_id: (*store_id).to_owned(),
            brand: format!("Brand of {store_id}"),
            accept: Default::default(),
        })
        .collect();
    let mut items = fixture.items;
    items[0].otter_entities = stores
        .iter()
        .map(|store| {
            let id = &store.store_id;
            (id.clone(), vec![format!("{id}-e1"), format!("{id}-e2")])
        })
        .collect::<BTreeMap<_, _>>();
    Reference::new(fixture.stations, stores, items, fixture.day_parts).expect("valid")
}

impl Rig {
    /// Kitchen A serves `stores_a`, kitchen B `stores_b`; `adjust` changes the relay's config
    /// after the Otter settings.
    pub async fn start(
        stores_a: &[&str],
        stores_b: &[&str],
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let otter = OtterDouble::start(CLIENT_ID, CLIENT_SECRET).await;
        let role_a = TestRole::named("otter_box_a");
        let role_b = TestRole::named("otter_box_b");
        let app = spawn_app_with(|config| {
            otter_settings(config, &otter);
            adjust(config);
        })
        .await;
        for (kitchen, role, stores) in [
            (KITCHEN_A, &role_a, stores_a),
            (KITCHEN_B, &role_b, stores_b),
        ] {
            add_kitchen(&app.db.pool, kitchen, &role.name, None)
                .await
                .expect("add kitchen");
            import_reference(&app.db.pool, kitchen, &reference_for(stores))
                .await
                .expect("import");
        }
        let box_a = app.db.connect_as(&role_a.name).await;
        let box_b = app.db.connect_as(&role_b.name).await;
        Self {
            otter,
            box_a,
            box_b,
            app,
            _role_a: role_a,
            _role_b: role_b,
        }
    }

    /// Ingests `orders.new_order` for each order through the signed webhook (source
    /// `ubereats`).
    pub async fn ingest(&self, store_id: &str, order_ids: &[String]) {
        for order_id in order_ids {
            let body = new_order(
                &format!("evt-{order_id}"),
                store_id,
                order_id,
                "2026-12-02T18:00:00Z",
            );
            let response = self.app.post_signed(&body).await;
            assert_eq!(response.status(), 200, "webhook for {order_id}");
        }
    }

    /// One row of `otter.callbacks` by order and kind: (state, attempts, detail, reason).
    pub async fn call_row(
        &self,
        order_id: &str,
        kind: &str,
    ) -> Option<(String, i32, String, Option<String>)> {
        sqlx::query_as(
            "SELECT state, attempts, detail, reason FROM otter.callbacks
             WHERE order_id = $1 AND kind = $2",
        )
        .bind(order_id)
        .bind(kind)
        .fetch_optional(&self.app.db.pool)
        .await
        .expect("callbacks")
    }

    /// Waits until no call is pending or sent.
    pub async fn wait_settled(&self, timeout: Duration) {
        eventually("every otter call settled", timeout, || async {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM otter.callbacks WHERE state IN ('pending', 'sent')",
            )
            .fetch_one(&self.app.db.pool)
            .await
            .ok()?;
            (open == 0).then_some(())
        })
        .await;
    }
}

/// A record id as the box makes them (UUIDv7 shape), `n` distinct per test.
pub fn record_id(n: u32) -> String {
    format!("01938000-0000-7000-8000-{n:012x}")
}

/// An `order_events` row a box pushes: (record id, kind, order id, data).
pub type Intent = (String, &'static str, String, Value);

/// Pushes `intents` as `kitchen`'s box does: one transaction as its role with the tenant set,
/// each row `ON CONFLICT (record_id) DO NOTHING`. Returns the rows inserted.
pub async fn push(pool: &PgPool, kitchen: &str, intents: &[Intent]) -> u64 {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SELECT set_config('kitchen.id', $1, true)")
        .bind(kitchen)
        .execute(&mut *tx)
        .await
        .expect("tenant");
    let mut inserted = 0;
    for (record_id, kind, order_id, data) in intents {
        inserted += sqlx::query(
            "INSERT INTO kitchen.order_events (record_id, kitchen_id, order_id, kind, data,
                                               occurred_at)
             VALUES ($1::uuid, $2, $3, $4, $5, now())
             ON CONFLICT (record_id) DO NOTHING",
        )
        .bind(record_id)
        .bind(kitchen)
        .bind(order_id)
        .bind(kind)
        .bind(data)
        .execute(&mut *tx)
        .await
        .expect("push order event")
        .rows_affected();
    }
    tx.commit().await.expect("commit");
    inserted
}

/// Pushes one 86 record (`item.suspended` / `item.unsuspended`) as `kitchen`'s box.
pub async fn push_availability(
    pool: &PgPool,
    kitchen: &str,
    record_id: &str,
    kind: &str,
    data: &Value,
) {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SELECT set_config('kitchen.id', $1, true)")
        .bind(kitchen)
        .execute(&mut *tx)
        .await
        .expect("tenant");
    sqlx::query(
        "INSERT INTO kitchen.item_availability (record_id, kitchen_id, item_id, kind, data,
                                                occurred_at)
         VALUES ($1::uuid, $2, $3, $4, $5, now())
         ON CONFLICT (record_id) DO NOTHING",
    )
    .bind(record_id)
    .bind(kitchen)
    .bind(ITEM)
    .bind(kind)
    .bind(data)
    .execute(&mut *tx)
    .await
    .expect("push availability");
    tx.commit().await.expect("commit");
}

/// The calls the double answered 2xx for one path.
pub fn ok_calls_to(calls: &[RecordedCall], path: &str) -> usize {
    calls
        .iter()
        .filter(|call| call.path == path && (200..300).contains(&call.status))
        .count()
}

/// The manager order path of `action` for `order_id` (source `ubereats`).
pub fn order_path(order_id: &str, action: &str) -> String {
    format!("/manager/order/v1/sources/ubereats/orders/{order_id}/{action}")
}

/// The value of one metric line (`name{labels} value`), 0 when absent.
pub fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0.0)
}
