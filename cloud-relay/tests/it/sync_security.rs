//! Row-level security on the `kitchen` schema, connecting as the kitchens' own roles: a box
//! reads and writes its kitchen's rows only, whatever tenant it sets; `missed_events` serves
//! only the stores of its kitchen; the relay's own role (owner, not a superuser) still manages
//! every kitchen under FORCE ROW LEVEL SECURITY.

use cloud_relay::{
    db::MIGRATOR,
    kitchens::{add_kitchen, export_reference, import_reference, load_reference},
};
use kitchen_proto::{
    OrderEvent,
    reference::{OtterStore, Reference},
};
use kitchen_testkit::events::OrderEventBuilder;
use prost::Message;
use sqlx::{PgPool, Postgres, Transaction};

use super::{harness::*, kitchens::REFERENCE};

const A: &str = "kitchen-a";
const B: &str = "kitchen-b";

/// What boxes push (the agent may insert and read them).
const RECORD_TABLES: [&str; 6] = [
    "order_events",
    "item_availability",
    "batch_sessions",
    "scans",
    "stock_movements",
    "devices",
];

/// Every table of the schema, each with a `kitchen_id`.
const ALL_TABLES: [&str; 16] = [
    "kitchens",
    "agent_roles",
    "order_events",
    "item_availability",
    "batch_sessions",
    "scans",
    "stock_movements",
    "devices",
    "reference_versions",
    "ref_day_parts",
    "ref_stations",
    "ref_stores",
    "ref_items",
    "ref_matches",
    "ref_pars",
    "ref_otter_entities",
];

/// A record id, as the box makes them (UUIDv7 shape).
fn record_id(n: u32) -> String {
    format!("01930000-0000-7000-8000-{n:012x}")
}

/// One record of `table` for kitchen `$1` with id `$2`.
fn insert_record(table: &str) -> &'static str {
    match table {
        "order_events" => {
            "INSERT INTO kitchen.order_events
                 (record_id, kitchen_id, order_id, kind, stations, state, data, occurred_at)
             VALUES ($2::uuid, $1, 'order-1', 'order.created', '{grill}', 'open',
                     '{\"lines\": 1}', now())"
        }
        "item_availability" => {
            "INSERT INTO kitchen.item_availability (record_id, kitchen_id, item_id, kind, data,
                                                    occurred_at)
             VALUES ($2::uuid, $1, 'fries', 'item.suspended',
                     '{\"note\": \"out\", \"until_ms\": null, \"entities\": []}', now())"
        }
        "batch_sessions" => {
            "INSERT INTO kitchen.batch_sessions
                 (session_id, kitchen_id, station_id, item_id, item_name, quantity, device,
                  started_at)
             VALUES ($2::uuid, $1, 'grill', 'double-smash', 'Double Smash Burger', 4,
                     'grill-tablet', now() - interval '5 minutes')"
        }
        "scans" => {
            "INSERT INTO kitchen.scans
                 (scan_id, kitchen_id, device, raw, parsed, role, action, accepted, reason,
                  order_id, station_id, stock_id, scanned_at)
             VALUES ($2::uuid, $1, 'grill-scanner', '\\x4f524445523a31'::bytea,
                     '{\"ticket\": \"1\"}', 'station', 'bump', true, '', 'order-1', 'grill',
                     NULL, now())"
        }
        "stock_movements" => {
            "INSERT INTO kitchen.stock_movements
                 (record_id, kitchen_id, stock_id, item_id, change, quantity, source, lot,
                  use_by, device, occurred_at)
             VALUES ($2::uuid, $1, 'stock-1', 'smash-patty', 'added', 1, 'prep', 'L1',
                     '2026-11-23', 'prep-scanner', now())"
        }
        "devices" => {
            "INSERT INTO kitchen.devices
                 (kitchen_id, agent_version, last_seen, feed_state, unsynced_backlog,
                  oldest_unsynced_at, sequence_gaps)
             VALUES ($1, '0.1.0 ' || $2, now(), 'connected', 0, NULL, '[]')"
        }
        other => panic!("not a record table: {other}"),
    }
}

/// The box's upsert of a completed batch session (as the contract states it).
const COMPLETE_SESSION: &str = "
    INSERT INTO kitchen.batch_sessions
        (session_id, kitchen_id, station_id, item_id, item_name, quantity, device, started_at,
         completed_at, allocations)
    VALUES ($2::uuid, $1, 'grill', 'double-smash', 'Double Smash Burger', 4, 'grill-tablet',
            now() - interval '5 minutes', now(), '[{\"order_id\": \"order-1\", \"units\": 4}]')
    ON CONFLICT (session_id) DO UPDATE SET
        completed_at = COALESCE(EXCLUDED.completed_at, kitchen.batch_sessions.completed_at),
        allocations = EXCLUDED.allocations";

/// The box's heartbeat upsert.
const HEARTBEAT: &str = "
    INSERT INTO kitchen.devices
        (kitchen_id, agent_version, last_seen, feed_state, unsynced_backlog, oldest_unsynced_at,
         sequence_gaps)
    VALUES ($1, $2, now(), 'disconnected', 7, now() - interval '1 minute',
            '[{\"store_id\": \"store-a\", \"from\": 3, \"to\": 4}]')
    ON CONFLICT (kitchen_id) DO UPDATE SET
        agent_version = EXCLUDED.agent_version, last_seen = EXCLUDED.last_seen,
        feed_state = EXCLUDED.feed_state, unsynced_backlog = EXCLUDED.unsynced_backlog,
        oldest_unsynced_at = EXCLUDED.oldest_unsynced_at, sequence_gaps = EXCLUDED.sequence_gaps";

const RLS_VIOLATION: &str = "new row violates row-level security policy";
const PERMISSION_DENIED: &str = "permission denied";

/// A transaction with the tenant set for it, as a box begins every transaction.
async fn begin(pool: &PgPool, tenant: Option<&str>) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.expect("begin");
    if let Some(tenant) = tenant {
        sqlx::query("SELECT set_config('kitchen.id', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .expect("set tenant");
    }
    tx
}

/// Runs `sql` with `binds` in a committed transaction of its own: rows affected, or the
/// database's message when refused.
async fn run(
    pool: &PgPool,
    tenant: Option<&str>,
    sql: &str,
    binds: &[&str],
) -> Result<u64, String> {
    let mut tx = begin(pool, tenant).await;
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    match query.execute(&mut *tx).await {
        Ok(done) => {
            tx.commit().await.expect("commit");
            Ok(done.rows_affected())
        }
        Err(sqlx::Error::Database(error)) => Err(error.message().to_owned()),
        Err(other) => panic!("{sql}: {other}"),
    }
}

#[track_caller]
fn assert_refused(result: Result<u64, String>, expected: &str, what: &str) {
    match result {
        Err(message) if message.starts_with(expected) => {}
        other => panic!("{what}: {other:?}, expected \"{expected} ...\""),
    }
}

/// `(rows seen, rows seen of another kitchen than A)` of `table`.
async fn visible(pool: &PgPool, tenant: Option<&str>, table: &str) -> (i64, i64) {
    let mut tx = begin(pool, tenant).await;
    sqlx::query_as(&format!(
        "SELECT count(*), count(*) FILTER (WHERE kitchen_id <> '{A}') FROM kitchen.{table}"
    ))
    .fetch_one(&mut *tx)
    .await
    .expect("select")
}

async fn rows_of(db: &TestDb, table: &str, kitchen_id: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM kitchen.{table} WHERE kitchen_id = $1"
    ))
    .bind(kitchen_id)
    .fetch_one(&db.pool)
    .await
    .expect("count")
}

/// The fixture reference serving `stores`.
fn reference_with_stores(stores: &[&str]) -> Reference {
    let fixture = Reference::parse(REFERENCE).expect("fixture");
    let stores: Vec<OtterStore> = stores
        .iter()
        .map(|store_id| OtterStore {
            store_id: (*store_id).to_owned(),
            brand: format!("Brand of {store_id}"),
            accept: Default::default(),
        })
        .collect();
    // The first item is on the first store's Otter menu (kitchen.ref_otter_entities).
    let mut items = fixture.items;
    items[0].otter_entities = std::collections::BTreeMap::from([(
        stores[0].store_id.clone(),
        vec![format!("entity-of-{}", items[0].id)],
    )]);
    Reference::new(fixture.stations, stores, items, fixture.day_parts).expect("valid")
}

/// The stored (sequence-less) payload of an outbox row, as the relay writes it.
fn order_event(event_id: &str, store_id: &str) -> OrderEvent {
    OrderEventBuilder::new(store_id, &format!("order-of-{event_id}"))
        .event_id(event_id)
        .otter_event_type("orders.new_order")
        .with_snapshot()
        .build()
}

/// Outbox rows (with their webhook events) for `store_id`, sequences `sequences`, and one
/// event that does not go to kitchens (no sequence, no payload).
async fn fill_outbox(db: &TestDb, store_id: &str, sequences: std::ops::RangeInclusive<i64>) {
    let mut event_ids = Vec::new();
    let mut numbers = Vec::new();
    let mut payloads = Vec::new();
    for sequence in sequences {
        let event_id = format!("evt-{store_id}-{sequence}");
        payloads.push(Some(order_event(&event_id, store_id).encode_to_vec()));
        event_ids.push(event_id);
        numbers.push(Some(sequence));
    }
    event_ids.push(format!("evt-{store_id}-menu-{}", numbers.len()));
    numbers.push(None);
    payloads.push(None);
    sqlx::query(
        "WITH e AS (
             INSERT INTO otter.webhook_events
                 (event_id, event_type, event_time, store_id, order_id, outcome, raw)
             SELECT id, 'orders.new_order', now(), $2, NULL, 'applied', '{}'
             FROM unnest($1::text[]) AS t(id))
         INSERT INTO otter.outbox (event_id, store_id, sequence, event_type, payload)
         SELECT id, $2, sequence, 'orders.new_order', payload
         FROM unnest($1::text[], $3::bigint[], $4::bytea[]) AS t(id, sequence, payload)",
    )
    .bind(&event_ids)
    .bind(store_id)
    .bind(&numbers)
    .bind(&payloads)
    .execute(&db.pool)
    .await
    .expect("outbox rows");
}

/// `kitchen.missed_events` as `pool`'s role: `(sequence, event_id, decoded payload)`, or the
/// SQLSTATE and message of the refusal.
async fn missed(
    pool: &PgPool,
    tenant: Option<&str>,
    store_id: &str,
    after: i64,
    limit: i32,
) -> Result<Vec<(i64, String, OrderEvent)>, (String, String)> {
    let mut tx = begin(pool, tenant).await;
    let rows: Result<Vec<(i64, String, Vec<u8>)>, _> =
        sqlx::query_as("SELECT sequence, event_id, payload FROM kitchen.missed_events($1, $2, $3)")
            .bind(store_id)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await;
    match rows {
        Ok(rows) => Ok(rows
            .into_iter()
            .map(|(sequence, event_id, payload)| {
                let order_event = OrderEvent::decode(payload.as_slice()).expect("protobuf");
                (sequence, event_id, order_event)
            })
            .collect()),
        Err(sqlx::Error::Database(error)) => Err((
            error
                .code()
                .map(|code| code.into_owned())
                .unwrap_or_default(),
            error.message().to_owned(),
        )),
        Err(other) => panic!("missed_events: {other}"),
    }
}

#[tokio::test]
async fn a_kitchen_role_reads_and_writes_its_own_kitchen_only() {
    let all_tables = &ALL_TABLES;
    let role_a = TestRole::named("box_a");
    let role_b = TestRole::named("box_b");
    let db = TestDb::migrated(&MIGRATOR).await;
    assert_eq!(
        db.count(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'kitchen' AND c.relkind = 'r'
               AND c.relrowsecurity AND c.relforcerowsecurity"
        )
        .await,
        all_tables.len() as i64,
        "every table of the schema is listed here, with RLS enabled and forced"
    );
    add_kitchen(&db.pool, A, &role_a.name, None)
        .await
        .expect("add A");
    add_kitchen(&db.pool, B, &role_b.name, None)
        .await
        .expect("add B");
    let reference_a = reference_with_stores(&["store-a", "store-shared"]);
    import_reference(&db.pool, A, &reference_a)
        .await
        .expect("A");
    import_reference(
        &db.pool,
        B,
        &reference_with_stores(&["store-b", "store-shared"]),
    )
    .await
    .expect("B");
    // B's box pushed one of each (inserted here as the relay, which sees every kitchen).
    for (n, table) in (100..).zip(RECORD_TABLES) {
        let id = record_id(n);
        assert_eq!(
            run(&db.pool, None, insert_record(table), &[B, &id]).await,
            Ok(1)
        );
    }
    let box_a = db.connect_as(&role_a.name).await;
    let box_b = db.connect_as(&role_b.name).await;

    // The roles cannot step around the policies.
    let (superuser, bypass, login): (bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'kitchen_agent'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("kitchen_agent exists");
    assert_eq!((superuser, bypass, login), (false, false, false));
    let escapes: bool = sqlx::query_scalar(
        "SELECT rolsuper OR rolbypassrls OR EXISTS (
             SELECT FROM pg_tables WHERE schemaname = 'kitchen' AND tableowner = $1)
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(&role_a.name)
    .fetch_one(&db.pool)
    .await
    .expect("role A");
    assert!(
        !escapes,
        "A's role is no superuser, bypasses nothing, owns nothing"
    );

    // Tenant A: its own records go in, idempotently by id.
    for (n, table) in (1..).zip(RECORD_TABLES) {
        let id = record_id(n);
        assert_eq!(
            run(&box_a, Some(A), insert_record(table), &[A, &id]).await,
            Ok(1),
            "{table}"
        );
    }
    let again = "INSERT INTO kitchen.order_events
                     (record_id, kitchen_id, order_id, kind, data, occurred_at)
                 VALUES ($2::uuid, $1, 'order-1', 'order.created', '{}', now())
                 ON CONFLICT (record_id) DO NOTHING";
    assert_eq!(
        run(&box_a, Some(A), again, &[A, &record_id(1)]).await,
        Ok(0)
    );
    // The session completes (upsert) and the heartbeat beats again (upsert).
    assert_eq!(
        run(&box_a, Some(A), COMPLETE_SESSION, &[A, &record_id(2)]).await,
        Ok(1)
    );
    assert_eq!(run(&box_a, Some(A), HEARTBEAT, &[A, "0.1.1"]).await, Ok(1));
    let (allocations, completed, feed_state, backlog): (serde_json::Value, bool, String, i64) =
        sqlx::query_as(
            "SELECT s.allocations, s.completed_at IS NOT NULL, d.feed_state, d.unsynced_backlog
             FROM kitchen.batch_sessions s, kitchen.devices d
             WHERE s.session_id = $1::uuid AND d.kitchen_id = $2",
        )
        .bind(record_id(2))
        .bind(A)
        .fetch_one(&db.pool)
        .await
        .expect("A's rows");
    assert_eq!(
        (allocations, completed, feed_state.as_str(), backlog),
        (
            serde_json::json!([{"order_id": "order-1", "units": 4}]),
            true,
            "disconnected",
            7
        )
    );

    // Tenant A sees exactly A's rows of every table, and none of B's (which exist).
    for table in all_tables {
        let own = rows_of(&db, table, A).await;
        assert!(own > 0 && rows_of(&db, table, B).await > 0, "{table}");
        assert_eq!(visible(&box_a, Some(A), table).await, (own, 0), "{table}");
    }
    // The box reads its reference as the agent will: one REPEATABLE READ transaction.
    {
        let mut tx = box_a.begin().await.expect("begin");
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .expect("isolation");
        sqlx::query("SELECT set_config('kitchen.id', $1, true)")
            .bind(A)
            .execute(&mut *tx)
            .await
            .expect("tenant");
        let (reference, version) = load_reference(&mut tx, A)
            .await
            .expect("load")
            .expect("A has a reference");
        assert_eq!(version, 1);
        assert_eq!(
            (&reference.stores, &reference.items),
            (&reference_a.stores, &reference_a.items)
        );
        assert!(load_reference(&mut tx, B).await.expect("load").is_none());
    }

    // B's rows: not insertable, not updatable, not deletable.
    for (n, table) in (200..).zip(RECORD_TABLES) {
        let id = record_id(n);
        assert_refused(
            run(&box_a, Some(A), insert_record(table), &[B, &id]).await,
            RLS_VIOLATION,
            &format!("insert into {table} for B"),
        );
    }
    let complete_b = "UPDATE kitchen.batch_sessions SET completed_at = now() WHERE kitchen_id = $1";
    let beat_b = "UPDATE kitchen.devices SET feed_state = 'hijacked' WHERE kitchen_id = $1";
    assert_eq!(run(&box_a, Some(A), complete_b, &[B]).await, Ok(0));
    assert_eq!(run(&box_a, Some(A), beat_b, &[B]).await, Ok(0));
    assert_eq!(
        run(
            &box_a,
            Some(A),
            "UPDATE kitchen.devices SET feed_state = 'connected'",
            &[]
        )
        .await,
        Ok(1),
        "its own heartbeat row only"
    );
    assert_refused(
        run(
            &box_a,
            Some(A),
            "UPDATE kitchen.devices SET kitchen_id = $1 WHERE kitchen_id = $2",
            &[B, A],
        )
        .await,
        RLS_VIOLATION,
        "moving its heartbeat to B",
    );
    assert_refused(
        run(
            &box_a,
            Some(A),
            "UPDATE kitchen.batch_sessions SET kitchen_id = $1",
            &[B],
        )
        .await,
        PERMISSION_DENIED,
        "moving a session to B",
    );
    for table in all_tables {
        if !["batch_sessions", "devices"].contains(table) {
            assert_refused(
                run(
                    &box_a,
                    Some(A),
                    &format!(
                        "UPDATE kitchen.{table} SET kitchen_id = kitchen_id WHERE kitchen_id = $1"
                    ),
                    &[B],
                )
                .await,
                PERMISSION_DENIED,
                &format!("update {table}"),
            );
        }
        for kitchen in [A, B] {
            assert_refused(
                run(
                    &box_a,
                    Some(A),
                    &format!("DELETE FROM kitchen.{table} WHERE kitchen_id = $1"),
                    &[kitchen],
                )
                .await,
                PERMISSION_DENIED,
                &format!("delete from {table}"),
            );
        }
    }
    let b_state: (bool, String) = sqlx::query_as(
        "SELECT s.completed_at IS NULL, d.feed_state
         FROM kitchen.batch_sessions s, kitchen.devices d
         WHERE s.kitchen_id = $1 AND d.kitchen_id = $1",
    )
    .bind(B)
    .fetch_one(&db.pool)
    .await
    .expect("B's rows");
    assert_eq!(
        b_state,
        (true, "connected".to_owned()),
        "B's rows untouched"
    );

    // Setting the tenant to B does not help; neither does setting none.
    for tenant in [Some(B), None, Some("")] {
        for table in all_tables {
            assert_eq!(
                visible(&box_a, tenant, table).await,
                (0, 0),
                "{table} with tenant {tenant:?}"
            );
        }
        for (n, table) in (300..).zip(RECORD_TABLES) {
            for kitchen in [A, B] {
                let id = record_id(n);
                assert_refused(
                    run(&box_a, tenant, insert_record(table), &[kitchen, &id]).await,
                    RLS_VIOLATION,
                    &format!("insert into {table} for {kitchen} with tenant {tenant:?}"),
                );
            }
        }
        assert_eq!(run(&box_a, tenant, complete_b, &[B]).await, Ok(0));
    }
    // A tenant set in an earlier transaction on the same connection is gone.
    {
        let mut connection = box_a.acquire().await.expect("connection");
        let mut tx = sqlx::Connection::begin(&mut *connection)
            .await
            .expect("begin");
        sqlx::query("SELECT set_config('kitchen.id', $1, true)")
            .bind(A)
            .execute(&mut *tx)
            .await
            .expect("tenant");
        tx.commit().await.expect("commit");
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM kitchen.order_events")
            .fetch_one(&mut *connection)
            .await
            .expect("select");
        assert_eq!(seen, 0);
        // Set for the session instead (a box only ever acts for its kitchen), it holds.
        sqlx::query("SELECT set_config('kitchen.id', $1, false)")
            .bind(A)
            .execute(&mut *connection)
            .await
            .expect("session tenant");
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM kitchen.order_events")
            .fetch_one(&mut *connection)
            .await
            .expect("select");
        assert_eq!(seen, 1);
        sqlx::query("RESET kitchen.id")
            .execute(&mut *connection)
            .await
            .expect("reset");
    }

    // Nothing of the relay's own schema, and no way to become B's box.
    assert_refused(
        run(&box_a, Some(A), "SELECT count(*) FROM otter.outbox", &[]).await,
        "permission denied for schema otter",
        "otter.outbox",
    );
    assert_refused(
        run(&box_a, None, &format!("SET ROLE {}", role_b.ident()), &[]).await,
        "permission denied to set role",
        "SET ROLE to B's box",
    );

    // Missed events: the outbox of the stores its kitchen serves, nothing else.
    fill_outbox(&db, "store-a", 1..=5).await;
    fill_outbox(&db, "store-b", 1..=3).await;
    fill_outbox(&db, "store-shared", 1..=2).await;
    let events = missed(&box_a, Some(A), "store-a", 2, 10)
        .await
        .expect("A's store");
    let expected: Vec<(i64, String, OrderEvent)> = (3..=5)
        .map(|sequence| {
            let event_id = format!("evt-store-a-{sequence}");
            let mut order_event = order_event(&event_id, "store-a");
            // As published: the stored payload with its sequence number set.
            order_event.sequence = sequence as u64;
            (sequence, event_id, order_event)
        })
        .collect();
    assert_eq!(events, expected);
    let sequences = |events: Vec<(i64, String, OrderEvent)>| {
        events.into_iter().map(|(s, _, _)| s).collect::<Vec<_>>()
    };
    assert_eq!(
        sequences(
            missed(&box_a, Some(A), "store-a", 0, 2)
                .await
                .expect("A's store")
        ),
        [1, 2]
    );
    assert_eq!(
        sequences(
            missed(&box_a, Some(A), "store-a", 5, 10)
                .await
                .expect("A's store")
        ),
        Vec::<i64>::new()
    );
    assert_eq!(
        sequences(
            missed(&box_a, Some(A), "store-shared", 0, 10)
                .await
                .expect("a store both serve")
        ),
        [1, 2]
    );
    assert_eq!(
        sequences(
            missed(&box_b, Some(B), "store-shared", 1, 10)
                .await
                .expect("a store both serve")
        ),
        [2]
    );
    for (tenant, store) in [
        (Some(A), "store-b"),
        (Some(A), "store-unknown"),
        (Some(B), "store-b"),
        (Some(B), "store-a"),
        (None, "store-a"),
    ] {
        let refusal = missed(&box_a, tenant, store, 0, 10)
            .await
            .expect_err("not A's store");
        assert_eq!(refusal.0, "42501", "{tenant:?} {store}: {refusal:?}");
        assert!(
            refusal
                .1
                .starts_with(&format!("store {store} is not served by kitchen")),
            "{refusal:?}"
        );
    }
    assert_eq!(
        missed(&box_b, Some(B), "store-a", 0, 10)
            .await
            .expect_err("not B's store")
            .0,
        "42501"
    );
    assert_refused(
        run(
            &box_a,
            Some(A),
            "SELECT kitchen.order_event_sequence_field(1)",
            &[],
        )
        .await,
        PERMISSION_DENIED,
        "internal function",
    );
    // At most 1000 rows per call.
    sqlx::query(
        "WITH e AS (
             INSERT INTO otter.webhook_events
                 (event_id, event_type, event_time, store_id, outcome, raw)
             SELECT 'bulk-' || n, 'orders.new_order', now(), 'store-a', 'applied', '{}'
             FROM generate_series(6, 1205) n)
         INSERT INTO otter.outbox (event_id, store_id, sequence, event_type, payload)
         SELECT 'bulk-' || n, 'store-a', n, 'orders.new_order', '\\x0a00'::bytea
         FROM generate_series(6, 1205) n",
    )
    .execute(&db.pool)
    .await
    .expect("bulk outbox");
    let page = sequences(
        missed(&box_a, Some(A), "store-a", 0, 5000)
            .await
            .expect("page"),
    );
    assert_eq!(page, (1..=1000).collect::<Vec<i64>>());
    assert_eq!(
        missed(&box_a, Some(A), "store-a", 0, -1)
            .await
            .expect("empty")
            .len(),
        0
    );
}

#[tokio::test]
async fn the_relay_role_owning_the_schema_manages_every_kitchen_under_forced_rls() {
    let owner = TestRole::create("relay_owner", "LOGIN CREATEROLE").await;
    let role_a = TestRole::named("owned_box_a");
    let db = TestDb::owned_by(&owner).await;
    let relay = db.connect_as(&owner.name).await;
    MIGRATOR
        .run(&relay)
        .await
        .expect("the relay's role migrates without being a superuser");
    add_kitchen(&relay, A, &role_a.name, None)
        .await
        .expect("the relay's role provisions a kitchen");
    sqlx::query("INSERT INTO kitchen.kitchens (kitchen_id) VALUES ($1)")
        .bind(B)
        .execute(&relay)
        .await
        .expect("insert kitchen B");
    let reference = reference_with_stores(&["store-a"]);
    for kitchen in [A, B] {
        assert_eq!(
            import_reference(&relay, kitchen, &reference)
                .await
                .expect("import"),
            1
        );
        for (n, table) in (0..).zip(RECORD_TABLES) {
            let id = record_id(n + if kitchen == A { 0 } else { 100 });
            assert_eq!(
                run(&relay, None, insert_record(table), &[kitchen, &id]).await,
                Ok(1),
                "{table}"
            );
        }
    }
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM pg_tables
             WHERE schemaname = 'kitchen' AND tableowner = '{}' AND rowsecurity",
            owner.name
        ))
        .await,
        16,
        "the relay's role owns every table (and FORCE makes it subject to the policies)"
    );
    for table in ALL_TABLES {
        let kitchens: i64 = sqlx::query_scalar(&format!(
            "SELECT count(DISTINCT kitchen_id) FROM kitchen.{table}"
        ))
        .fetch_one(&relay)
        .await
        .expect("select as the owner");
        let expected = if table == "agent_roles" { 1 } else { 2 };
        assert_eq!(kitchens, expected, "{table}");
    }
    let (back, version) = export_reference(&relay, B)
        .await
        .expect("export")
        .expect("B has one");
    assert_eq!(
        (&back.stores, &back.items, version),
        (&reference.stores, &reference.items, 1)
    );
    let updated = run(
        &relay,
        None,
        "UPDATE kitchen.devices SET feed_state = 'checked'",
        &[],
    )
    .await;
    assert_eq!(updated, Ok(2));

    // The box it provisioned sees its own kitchen only.
    let box_a = db.connect_as(&role_a.name).await;
    assert_eq!(visible(&box_a, Some(A), "order_events").await, (1, 0));
    assert_eq!(visible(&box_a, Some(B), "order_events").await, (0, 0));
}
