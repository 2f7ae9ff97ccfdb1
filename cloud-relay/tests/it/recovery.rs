//! A new card's reads (docs/sync.md, "A new card"), as a kitchen's own role after real webhooks
//! went through the relay: `kitchen.store_sequence` and `kitchen.open_order_events` give the
//! store's newest sequence and exactly its open orders' events (the held snapshot, then a later
//! status-only event), within the window, for the kitchen's own stores only.

use cloud_relay::kitchens::{add_kitchen, import_reference};
use kitchen_proto::{
    OrderEvent, OrderStatus,
    reference::{OtterStore, Reference},
};
use prost::Message;
use sqlx::PgPool;

use super::{harness::*, kitchens::REFERENCE};

const A: &str = "kitchen-a";
const B: &str = "kitchen-b";

/// The fixture's stations and items, serving `store_id` only.
fn serving(store_id: &str) -> Reference {
    let fixture = Reference::parse(REFERENCE).expect("fixture");
    let store = OtterStore {
        store_id: store_id.to_owned(),
        brand: "Smash".into(),
        accept: Default::default(),
    };
    let mut items = fixture.items;
    for item in &mut items {
        item.otter_entities.clear();
    }
    Reference::new(fixture.stations, vec![store], items, fixture.day_parts).expect("valid")
}

/// One event of an open order: `(sequence, order_id, event_id, status, has_snapshot)`.
type OpenEvent = (i64, String, String, OrderStatus, bool);
/// A row of `open_order_events`: `(sequence, event_id, order_id, payload)`.
type Row = (i64, String, String, Vec<u8>);

/// Each event `open_order_events` gives, or the SQLSTATE.
async fn open_events(
    pool: &PgPool,
    tenant: Option<&str>,
    store_id: &str,
    hours: i32,
) -> Result<Vec<OpenEvent>, String> {
    let mut tx = pool.begin().await.expect("begin");
    if let Some(tenant) = tenant {
        sqlx::query("SELECT set_config('kitchen.id', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .expect("tenant");
    }
    let rows: Result<Vec<Row>, _> = sqlx::query_as(
        "SELECT sequence, event_id, order_id, payload FROM kitchen.open_order_events($1, $2)",
    )
    .bind(store_id)
    .bind(hours)
    .fetch_all(&mut *tx)
    .await;
    match rows {
        Ok(rows) => Ok(rows
            .into_iter()
            .map(|(sequence, event_id, order_id, payload)| {
                let event = OrderEvent::decode(payload.as_slice()).expect("protobuf");
                assert_eq!(event.sequence as i64, sequence, "the sequence is set");
                assert_eq!(event.event_id, event_id);
                (
                    sequence,
                    order_id,
                    event_id,
                    event.status(),
                    event.has_snapshot,
                )
            })
            .collect()),
        Err(sqlx::Error::Database(error)) => Err(error.code().unwrap_or_default().into_owned()),
        Err(other) => panic!("open_order_events: {other}"),
    }
}

async fn store_sequence(pool: &PgPool, tenant: &str, store_id: &str) -> Result<i64, String> {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SELECT set_config('kitchen.id', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .expect("tenant");
    sqlx::query_scalar("SELECT kitchen.store_sequence($1)")
        .bind(store_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(|error| match error {
            sqlx::Error::Database(error) => error.code().unwrap_or_default().into_owned(),
            other => panic!("store_sequence: {other}"),
        })
}

#[tokio::test]
async fn a_new_card_reads_exactly_its_stores_open_orders() {
    let app = spawn_app().await;
    let role_a = TestRole::named("card_a");
    let role_b = TestRole::named("card_b");
    add_kitchen(&app.db.pool, A, &role_a.name, None)
        .await
        .expect("A");
    add_kitchen(&app.db.pool, B, &role_b.name, None)
        .await
        .expect("B");
    import_reference(&app.db.pool, A, &serving("s1"))
        .await
        .expect("A's stores");
    import_reference(&app.db.pool, B, &serving("s2"))
        .await
        .expect("B's stores");
    let t = |minute: u32| format!("2025-03-14T18:{minute:02}:00Z");
    let bodies = [
        new_order("e1", "s1", "o1", &t(1)),
        new_order("e2", "s1", "o2", &t(2)),
        status_event("orders.confirm", "e3", "s1", "o2", &t(3)),
        new_order("e4", "s1", "o3", &t(4)),
        status_event("orders.cancel_order", "e5", "s1", "o3", &t(5)),
        new_order("e6", "s1", "o4", &t(6)),
        status_event("orders.order_fulfilled", "e7", "s1", "o4", &t(7)),
        new_order("e8", "s1", "o5", &t(8)),
        order_event(
            "orders.update",
            "e9",
            "s1",
            "o5",
            &t(9),
            "NEW_ORDER",
            &[("Fries", 3)],
        ),
        new_order("e10", "s2", "o6", &t(10)),
    ];
    for body in &bodies {
        assert_eq!(app.post_signed(body).await.status(), 200);
    }
    let box_a = app.db.connect_as(&role_a.name).await;
    let box_b = app.db.connect_as(&role_b.name).await;

    assert_eq!(store_sequence(&box_a, A, "s1").await, Ok(9));
    assert_eq!(store_sequence(&box_b, B, "s2").await, Ok(1));
    let open = |n: i64, order: &str, event: &str, status, snapshot| {
        (n, order.to_owned(), event.to_owned(), status, snapshot)
    };
    assert_eq!(
        open_events(&box_a, Some(A), "s1", 12).await,
        Ok(vec![
            open(1, "o1", "e1", OrderStatus::NewOrder, true),
            open(2, "o2", "e2", OrderStatus::NewOrder, true),
            open(3, "o2", "e3", OrderStatus::Confirmed, false),
            open(9, "o5", "e9", OrderStatus::NewOrder, true),
        ]),
        "o3 cancelled and o4 fulfilled are not open; o5 as updated"
    );
    // The window: an order received 13 hours ago is out of a 12-hour one, in a 24-hour one;
    // the window is at most 48 hours.
    sqlx::query(
        "UPDATE otter.orders SET created_at = now() - interval '13 hours' WHERE order_id = 'o1'",
    )
    .execute(&app.db.pool)
    .await
    .expect("aged");
    let orders = |rows: Result<Vec<OpenEvent>, String>| {
        rows.expect("rows")
            .into_iter()
            .map(|row| row.1)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        orders(open_events(&box_a, Some(A), "s1", 12).await),
        ["o2", "o2", "o5"]
    );
    assert_eq!(
        orders(open_events(&box_a, Some(A), "s1", 24).await),
        ["o1", "o2", "o2", "o5"]
    );
    sqlx::query(
        "UPDATE otter.orders SET created_at = now() - interval '49 hours' WHERE order_id = 'o1'",
    )
    .execute(&app.db.pool)
    .await
    .expect("aged");
    assert_eq!(
        orders(open_events(&box_a, Some(A), "s1", 1000).await),
        ["o2", "o2", "o5"]
    );

    // Only a kitchen's own stores, as its own role, with its tenant set.
    let refused = Err("42501".to_owned());
    assert_eq!(open_events(&box_a, Some(A), "s2", 12).await, refused);
    assert_eq!(open_events(&box_b, Some(B), "s1", 12).await, refused);
    assert_eq!(open_events(&box_a, Some(B), "s2", 12).await, refused);
    assert_eq!(open_events(&box_a, None, "s1", 12).await, refused);
    assert_eq!(
        store_sequence(&box_a, A, "s2").await,
        Err("42501".to_owned())
    );
    assert_eq!(
        store_sequence(&box_b, A, "s1").await,
        Err("42501".to_owned())
    );
    // A store with no events yet: 0.
    import_reference(&app.db.pool, B, &serving("s9"))
        .await
        .expect("B serves s9");
    assert_eq!(store_sequence(&box_b, B, "s9").await, Ok(0));
    box_a.close().await;
    box_b.close().await;
    app.stop().await.expect("stops");
}
