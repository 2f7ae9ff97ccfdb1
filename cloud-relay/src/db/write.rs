//! One PostgreSQL transaction for a batch of webhooks: de-duplicate, decide what each event does
//! to its order, write the normalised rows, hand out per-store sequence numbers and fill the
//! outbox. Every statement covers the whole batch (arrays + `unnest`), so a batch of 64 events
//! costs about a dozen round trips, not hundreds.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use prost::Message;
use sqlx::{Postgres, Transaction};

use crate::otter::{self, EventKind, Modifier, Order, OrderStatus, WebhookEvent};

/// An event to store: parsed, plus the exact body and when it arrived.
#[derive(Debug)]
pub struct Incoming {
    pub event: WebhookEvent,
    pub raw: String,
    pub received_at: DateTime<Utc>,
}

/// What storing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New; changed an order and is on its way to the kitchens.
    Applied,
    /// New, but an order snapshot older than (or as old as) the one held: stored, not applied.
    Stale,
    /// New; not a kitchen event (ping, menus, ...) or no store to route to: stored, fanned out raw.
    Stored,
    /// Seen before: nothing changed.
    Duplicate,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Stale => "stale",
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
        }
    }
}

/// Why a batch must be retried from scratch (another relay stored one of its events meanwhile).
#[derive(Debug)]
pub enum WriteError {
    Database(sqlx::Error),
    Raced,
}

impl From<sqlx::Error> for WriteError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

/// An order as this batch sees it: what the database held, moved along by the batch's events.
#[derive(Default)]
struct OrderState {
    exists: bool,
    snapshot_time: Option<DateTime<Utc>>,
    status: Option<OrderStatus>,
    status_time: Option<DateTime<Utc>>,
    cancellation_reason: Option<String>,
    /// Index into the batch of the snapshot this batch applies (the newest one).
    new_snapshot: Option<usize>,
    status_changed: bool,
}

struct StatusChange {
    index: usize,
    order_id: String,
    status: OrderStatus,
    cancellation_reason: Option<String>,
}

/// Stores `batch` in one transaction (the caller commits). Returns one outcome per event.
pub async fn write_batch(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming],
) -> Result<Vec<Outcome>, WriteError> {
    let mut outcomes = vec![Outcome::Duplicate; batch.len()];

    // Duplicates: already stored, or repeated inside this batch (the first one wins).
    let held = load_held(tx, batch).await?;
    let mut seen = HashSet::new();
    let fresh: Vec<usize> = (0..batch.len())
        .filter(|&i| {
            let event_id = batch[i].event.event_id.as_str();
            !held.stored_events.contains(event_id) && seen.insert(event_id)
        })
        .collect();
    if fresh.is_empty() {
        return Ok(outcomes);
    }
    let mut orders = held.orders;
    let mut status_changes = Vec::new();
    for &index in &fresh {
        let event = &batch[index].event;
        outcomes[index] = match &event.kind {
            EventKind::Other => Outcome::Stored,
            EventKind::Snapshot { order, .. } => {
                let state = orders.get_mut(&order.id).expect("loaded above");
                if state
                    .snapshot_time
                    .is_some_and(|held| event.event_time <= held)
                {
                    Outcome::Stale
                } else {
                    state.snapshot_time = Some(event.event_time);
                    state.new_snapshot = Some(index);
                    let status = order.status.unwrap_or(OrderStatus::NewOrder);
                    if apply_status(state, status, event.event_time, None) {
                        status_changes.push(StatusChange {
                            index,
                            order_id: order.id.clone(),
                            status,
                            cancellation_reason: None,
                        });
                    }
                    Outcome::Applied
                }
            }
            EventKind::Status {
                order_id,
                status,
                cancellation_reason,
                ..
            } => {
                let state = orders.get_mut(order_id).expect("loaded above");
                apply_status(
                    state,
                    *status,
                    event.event_time,
                    cancellation_reason.clone(),
                );
                // Every status event is history, even one that arrives late.
                status_changes.push(StatusChange {
                    index,
                    order_id: order_id.clone(),
                    status: *status,
                    cancellation_reason: cancellation_reason.clone(),
                });
                Outcome::Applied
            }
        };
    }

    insert_webhook_events(tx, batch, &fresh, &outcomes).await?;
    write_orders(tx, batch, &orders).await?;
    insert_status_changes(tx, batch, &status_changes).await?;
    let sequences = allocate_sequences(tx, batch, &fresh, &outcomes).await?;
    insert_outbox(tx, batch, &fresh, &sequences, &orders).await?;
    Ok(outcomes)
}

/// Moves an order's status; CANCELED and REJECTED are final, and an older event never
/// overrides a newer one. Returns whether the status changed.
fn apply_status(
    state: &mut OrderState,
    status: OrderStatus,
    time: DateTime<Utc>,
    cancellation_reason: Option<String>,
) -> bool {
    let current_final = state.status.is_some_and(OrderStatus::is_cancellation);
    let newer = state.status_time.is_none_or(|held| time >= held);
    if current_final || !newer {
        return false;
    }
    let changed = state.status != Some(status);
    state.status = Some(status);
    state.status_time = Some(time);
    if status.is_cancellation() && cancellation_reason.is_some() {
        state.cancellation_reason = cancellation_reason;
    }
    state.status_changed |= changed;
    changed
}

/// What the database already holds for a batch: which of its events are stored, and the
/// orders it touches (locked), with the status history of orders not yet held (a status event
/// may arrive before its order). One statement, one round trip.
struct Held {
    stored_events: HashSet<String>,
    orders: HashMap<String, OrderState>,
}

async fn load_held(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming],
) -> Result<Held, sqlx::Error> {
    let event_ids: Vec<&str> = batch.iter().map(|i| i.event.event_id.as_str()).collect();
    let order_ids: Vec<&str> = batch
        .iter()
        .filter_map(|i| i.event.kind.order_id())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    type Row = (
        i32,
        String,
        Option<DateTime<Utc>>,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "WITH locked AS (
             SELECT order_id, snapshot_event_time, status, status_event_time, cancellation_reason
             FROM otter.orders WHERE order_id = ANY($2) ORDER BY order_id FOR UPDATE)
         SELECT 0 AS kind, event_id, NULL::timestamptz AS time_a, NULL::text AS status,
                NULL::timestamptz AS time_b, NULL::text AS reason, 0::bigint AS seq
         FROM otter.webhook_events WHERE event_id = ANY($1)
         UNION ALL
         SELECT 1, order_id, snapshot_event_time, status, status_event_time, cancellation_reason, 0
         FROM locked
         UNION ALL
         SELECT 2, order_id, event_time, status, NULL, cancellation_reason, id
         FROM otter.order_status_changes
         WHERE order_id = ANY($2) AND order_id NOT IN (SELECT order_id FROM locked)
         ORDER BY kind, time_a, seq",
    )
    .bind(&event_ids)
    .bind(&order_ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut held = Held {
        stored_events: HashSet::new(),
        orders: order_ids
            .iter()
            .map(|id| ((*id).to_owned(), OrderState::default()))
            .collect(),
    };
    for (kind, id, time_a, status, time_b, reason) in rows {
        match kind {
            0 => {
                held.stored_events.insert(id);
            }
            1 => {
                let state = held.orders.entry(id).or_default();
                state.exists = true;
                state.snapshot_time = time_a;
                state.status = status.as_deref().map(OrderStatus::parse);
                state.status_time = time_b;
                state.cancellation_reason = reason;
            }
            _ => {
                // History of an order not held yet, oldest first.
                if let (Some(state), Some(status), Some(time)) =
                    (held.orders.get_mut(&id), status, time_a)
                {
                    apply_status(state, OrderStatus::parse(&status), time, reason);
                    state.status_changed = false;
                }
            }
        }
    }
    Ok(held)
}

async fn insert_webhook_events(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming],
    fresh: &[usize],
    outcomes: &[Outcome],
) -> Result<(), WriteError> {
    let mut event_ids = Vec::with_capacity(fresh.len());
    let mut event_types = Vec::with_capacity(fresh.len());
    let mut event_times = Vec::with_capacity(fresh.len());
    let mut store_ids = Vec::with_capacity(fresh.len());
    let mut order_ids = Vec::with_capacity(fresh.len());
    let mut stored_outcomes = Vec::with_capacity(fresh.len());
    let mut raws = Vec::with_capacity(fresh.len());
    let mut received = Vec::with_capacity(fresh.len());
    for &i in fresh {
        let incoming = &batch[i];
        event_ids.push(incoming.event.event_id.as_str());
        event_types.push(incoming.event.otter_event_type.as_str());
        event_times.push(incoming.event.event_time);
        store_ids.push(incoming.event.store_id.as_str());
        order_ids.push(incoming.event.kind.order_id());
        stored_outcomes.push(outcomes[i].as_str());
        raws.push(incoming.raw.as_str());
        received.push(incoming.received_at);
    }
    let inserted = sqlx::query(
        "INSERT INTO otter.webhook_events
             (event_id, event_type, event_time, store_id, order_id, outcome, raw, received_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::timestamptz[])
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event_ids)
    .bind(&event_types)
    .bind(&event_times)
    .bind(&store_ids)
    .bind(&order_ids)
    .bind(&stored_outcomes)
    .bind(&raws)
    .bind(&received)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted != fresh.len() as u64 {
        // Another relay instance stored one of these between our check and our insert.
        return Err(WriteError::Raced);
    }
    Ok(())
}

/// Upserts orders with a new snapshot (replacing their lines) and moves the status of the rest.
async fn write_orders(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming],
    orders: &HashMap<String, OrderState>,
) -> Result<(), sqlx::Error> {
    let mut rows = OrderRows::default();
    let mut replaced = Vec::new();
    let mut status_only = StatusRows::default();
    let mut sorted: Vec<(&String, &OrderState)> = orders.iter().collect();
    sorted.sort_by_key(|(id, _)| id.as_str());
    for (order_id, state) in sorted {
        match state.new_snapshot {
            Some(index) => {
                let event = &batch[index].event;
                let EventKind::Snapshot { order, .. } = &event.kind else {
                    unreachable!("new_snapshot points at a snapshot event");
                };
                if state.exists {
                    replaced.push(order_id.as_str());
                }
                rows.push(event, order, state);
            }
            None if state.exists && state.status_changed => {
                status_only.order_ids.push(order_id.clone());
                status_only
                    .statuses
                    .push(state.status.map_or("UNKNOWN", OrderStatus::as_str));
                status_only.times.push(state.status_time);
                status_only.reasons.push(state.cancellation_reason.clone());
            }
            None => {}
        }
    }
    if !replaced.is_empty() {
        sqlx::query(
            "WITH modifiers AS (DELETE FROM otter.order_item_modifiers WHERE order_id = ANY($1)),
                  lines AS (DELETE FROM otter.order_items WHERE order_id = ANY($1))
             DELETE FROM otter.order_promotions WHERE order_id = ANY($1)",
        )
        .bind(&replaced)
        .execute(&mut **tx)
        .await?;
    }
    rows.write(tx).await?;
    if !status_only.order_ids.is_empty() {
        sqlx::query(
            "UPDATE otter.orders o
             SET status = u.status, status_event_time = u.status_time,
                 cancellation_reason = u.reason, updated_at = now()
             FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])
                  AS u(order_id, status, status_time, reason)
             WHERE o.order_id = u.order_id",
        )
        .bind(&status_only.order_ids)
        .bind(&status_only.statuses)
        .bind(&status_only.times)
        .bind(&status_only.reasons)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[derive(Default)]
struct StatusRows {
    order_ids: Vec<String>,
    statuses: Vec<&'static str>,
    times: Vec<Option<DateTime<Utc>>>,
    reasons: Vec<Option<String>>,
}

/// Column arrays for `otter.orders`, `order_items`, `order_item_modifiers`, `order_promotions`.
#[derive(Default)]
struct OrderRows<'a> {
    // orders
    order_ids: Vec<&'a str>,
    store_ids: Vec<&'a str>,
    sources: Vec<Option<&'a str>>,
    source_types: Vec<Option<&'a str>>,
    friendly_ids: Vec<Option<&'a str>>,
    currencies: Vec<Option<&'a str>>,
    statuses: Vec<&'static str>,
    status_times: Vec<Option<DateTime<Utc>>>,
    ordered_ats: Vec<Option<DateTime<Utc>>>,
    customer_names: Vec<Option<&'a str>>,
    customer_notes: Vec<Option<&'a str>>,
    modes: Vec<Option<&'a str>>,
    schedulings: Vec<Option<&'a str>>,
    pickups: Vec<Option<DateTime<Utc>>>,
    estimated_pickups: Vec<Option<DateTime<Utc>>>,
    deliveries: Vec<Option<DateTime<Utc>>>,
    tables: Vec<Option<&'a str>>,
    prep_seconds: Vec<Option<i32>>,
    money: [Vec<Option<&'a str>>; 6],
    reasons: Vec<Option<String>>,
    snapshot_ids: Vec<&'a str>,
    snapshot_times: Vec<DateTime<Utc>>,
    // order_items
    item_order_ids: Vec<&'a str>,
    item_line_nos: Vec<i32>,
    item_text: [Vec<Option<&'a str>>; 8],
    item_quantities: Vec<i32>,
    // order_item_modifiers
    mod_order_ids: Vec<&'a str>,
    mod_line_nos: Vec<i32>,
    mod_nos: Vec<i32>,
    mod_parents: Vec<Option<i32>>,
    mod_depths: Vec<i32>,
    mod_text: [Vec<Option<&'a str>>; 8],
    mod_quantities: Vec<i32>,
    // order_promotions
    promo_order_ids: Vec<&'a str>,
    promo_nos: Vec<i32>,
    promo_text: [Vec<Option<&'a str>>; 3],
}

impl<'a> OrderRows<'a> {
    fn push(&mut self, event: &'a WebhookEvent, order: &'a Order, state: &OrderState) {
        let id = order.id.as_str();
        self.order_ids.push(id);
        self.store_ids.push(&event.store_id);
        self.sources.push(order.source.as_deref());
        self.source_types.push(order.source_type.as_deref());
        self.friendly_ids.push(order.friendly_id.as_deref());
        self.currencies.push(order.currency_code.as_deref());
        self.statuses
            .push(state.status.map_or("UNKNOWN", OrderStatus::as_str));
        self.status_times
            .push(state.status_time.or(Some(event.event_time)));
        self.ordered_ats.push(order.ordered_at);
        self.customer_names.push(order.customer_name.as_deref());
        self.customer_notes.push(order.customer_note.as_deref());
        self.modes.push(order.fulfillment_mode.as_deref());
        self.schedulings.push(order.scheduling_type.as_deref());
        self.pickups.push(order.pickup_time);
        self.estimated_pickups.push(order.estimated_pickup_time);
        self.deliveries.push(order.delivery_time);
        self.tables.push(order.table_identifier.as_deref());
        self.prep_seconds.push(
            order
                .estimated_prep_seconds
                .map(|s| i32::try_from(s).unwrap_or(i32::MAX)),
        );
        let money = [
            &order.subtotal,
            &order.discount,
            &order.tax,
            &order.tip,
            &order.delivery_fee,
            &order.total,
        ];
        for (column, value) in self.money.iter_mut().zip(money) {
            column.push(value.as_deref());
        }
        self.reasons.push(state.cancellation_reason.clone());
        self.snapshot_ids.push(&event.event_id);
        self.snapshot_times.push(event.event_time);

        for (line_no, line) in order.items.iter().enumerate() {
            let line_no = line_no as i32;
            self.item_order_ids.push(id);
            self.item_line_nos.push(line_no);
            let text = [
                &line.line_item_id,
                &line.item_id,
                &line.sku_id,
                &line.name,
                &line.note,
                &line.price,
                &line.category,
                &line.station_hint,
            ];
            for (column, value) in self.item_text.iter_mut().zip(text) {
                column.push(value.as_deref());
            }
            self.item_quantities.push(line.quantity as i32);
            let mut next_no = 0;
            self.push_modifiers(id, line_no, &line.modifiers, None, 1, &mut next_no);
        }
        for (promo_no, promotion) in order.promotions.iter().enumerate() {
            self.promo_order_ids.push(id);
            self.promo_nos.push(promo_no as i32);
            let text = [&promotion.external_id, &promotion.name, &promotion.value];
            for (column, value) in self.promo_text.iter_mut().zip(text) {
                column.push(value.as_deref());
            }
        }
    }

    /// Flattens a modifier tree in pre-order; each row keeps its parent's number and its depth.
    fn push_modifiers(
        &mut self,
        order_id: &'a str,
        line_no: i32,
        modifiers: &'a [Modifier],
        parent: Option<i32>,
        depth: i32,
        next_no: &mut i32,
    ) {
        for modifier in modifiers {
            let modifier_no = *next_no;
            *next_no += 1;
            self.mod_order_ids.push(order_id);
            self.mod_line_nos.push(line_no);
            self.mod_nos.push(modifier_no);
            self.mod_parents.push(parent);
            self.mod_depths.push(depth);
            let text = [
                &modifier.line_item_id,
                &modifier.item_id,
                &modifier.sku_id,
                &modifier.name,
                &modifier.price,
                &modifier.group_id,
                &modifier.group_name,
                &modifier.station_hint,
            ];
            for (column, value) in self.mod_text.iter_mut().zip(text) {
                column.push(value.as_deref());
            }
            self.mod_quantities.push(modifier.quantity as i32);
            let children = &modifier.modifiers;
            self.push_modifiers(
                order_id,
                line_no,
                children,
                Some(modifier_no),
                depth + 1,
                next_no,
            );
        }
    }

    async fn write(&self, tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
        if self.order_ids.is_empty() {
            return Ok(());
        }
        let [subtotal, discount, tax, tip, delivery_fee, total] = &self.money;
        sqlx::query(
            "INSERT INTO otter.orders AS o
                 (order_id, store_id, source, source_type, friendly_id, currency_code, status,
                  status_event_time, ordered_at, customer_name, customer_note, fulfillment_mode,
                  scheduling_type, pickup_time, estimated_pickup_time, delivery_time,
                  table_identifier, estimated_prep_seconds, subtotal, discount, tax, tip,
                  delivery_fee, total, cancellation_reason, snapshot_event_id, snapshot_event_time)
             SELECT u.order_id, u.store_id, u.source, u.source_type, u.friendly_id, u.currency_code,
                    u.status, u.status_event_time, u.ordered_at, u.customer_name, u.customer_note,
                    u.fulfillment_mode, u.scheduling_type, u.pickup_time, u.estimated_pickup_time,
                    u.delivery_time, u.table_identifier, u.estimated_prep_seconds,
                    u.subtotal::numeric, u.discount::numeric, u.tax::numeric, u.tip::numeric,
                    u.delivery_fee::numeric, u.total::numeric, u.cancellation_reason,
                    u.snapshot_event_id, u.snapshot_event_time
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[],
                         $12::text[], $13::text[], $14::timestamptz[], $15::timestamptz[],
                         $16::timestamptz[], $17::text[], $18::int[], $19::text[], $20::text[],
                         $21::text[], $22::text[], $23::text[], $24::text[], $25::text[],
                         $26::text[], $27::timestamptz[])
                  AS u(order_id, store_id, source, source_type, friendly_id, currency_code, status,
                       status_event_time, ordered_at, customer_name, customer_note,
                       fulfillment_mode, scheduling_type, pickup_time, estimated_pickup_time,
                       delivery_time, table_identifier, estimated_prep_seconds, subtotal, discount,
                       tax, tip, delivery_fee, total, cancellation_reason, snapshot_event_id,
                       snapshot_event_time)
             ON CONFLICT (order_id) DO UPDATE SET
                 store_id = excluded.store_id, source = excluded.source,
                 source_type = excluded.source_type, friendly_id = excluded.friendly_id,
                 currency_code = excluded.currency_code, status = excluded.status,
                 status_event_time = excluded.status_event_time, ordered_at = excluded.ordered_at,
                 customer_name = excluded.customer_name, customer_note = excluded.customer_note,
                 fulfillment_mode = excluded.fulfillment_mode,
                 scheduling_type = excluded.scheduling_type, pickup_time = excluded.pickup_time,
                 estimated_pickup_time = excluded.estimated_pickup_time,
                 delivery_time = excluded.delivery_time,
                 table_identifier = excluded.table_identifier,
                 estimated_prep_seconds = excluded.estimated_prep_seconds,
                 subtotal = excluded.subtotal, discount = excluded.discount, tax = excluded.tax,
                 tip = excluded.tip, delivery_fee = excluded.delivery_fee, total = excluded.total,
                 cancellation_reason = excluded.cancellation_reason,
                 snapshot_event_id = excluded.snapshot_event_id,
                 snapshot_event_time = excluded.snapshot_event_time, updated_at = now()",
        )
        .bind(&self.order_ids)
        .bind(&self.store_ids)
        .bind(&self.sources)
        .bind(&self.source_types)
        .bind(&self.friendly_ids)
        .bind(&self.currencies)
        .bind(&self.statuses)
        .bind(&self.status_times)
        .bind(&self.ordered_ats)
        .bind(&self.customer_names)
        .bind(&self.customer_notes)
        .bind(&self.modes)
        .bind(&self.schedulings)
        .bind(&self.pickups)
        .bind(&self.estimated_pickups)
        .bind(&self.deliveries)
        .bind(&self.tables)
        .bind(&self.prep_seconds)
        .bind(subtotal)
        .bind(discount)
        .bind(tax)
        .bind(tip)
        .bind(delivery_fee)
        .bind(total)
        .bind(&self.reasons)
        .bind(&self.snapshot_ids)
        .bind(&self.snapshot_times)
        .execute(&mut **tx)
        .await?;

        if !self.item_order_ids.is_empty() {
            let [
                line_item_id,
                item_id,
                sku_id,
                name,
                note,
                price,
                category,
                station,
            ] = &self.item_text;
            sqlx::query(
                "INSERT INTO otter.order_items
                     (order_id, line_no, line_item_id, item_id, sku_id, name, note, price,
                      category, station_hint, quantity)
                 SELECT u.order_id, u.line_no, u.line_item_id, u.item_id, u.sku_id, u.name, u.note,
                        u.price::numeric, u.category, u.station_hint, u.quantity
                 FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::text[], $8::text[], $9::text[], $10::text[], $11::int[])
                      AS u(order_id, line_no, line_item_id, item_id, sku_id, name, note, price,
                           category, station_hint, quantity)",
            )
            .bind(&self.item_order_ids)
            .bind(&self.item_line_nos)
            .bind(line_item_id)
            .bind(item_id)
            .bind(sku_id)
            .bind(name)
            .bind(note)
            .bind(price)
            .bind(category)
            .bind(station)
            .bind(&self.item_quantities)
            .execute(&mut **tx)
            .await?;
        }
        if !self.mod_order_ids.is_empty() {
            let [
                line_item_id,
                modifier_id,
                sku_id,
                name,
                price,
                group_id,
                group_name,
                station,
            ] = &self.mod_text;
            sqlx::query(
                "INSERT INTO otter.order_item_modifiers
                     (order_id, line_no, modifier_no, parent_modifier_no, depth, line_item_id,
                      modifier_id, sku_id, name, price, group_id, group_name, station_hint,
                      quantity)
                 SELECT u.order_id, u.line_no, u.modifier_no, u.parent_modifier_no, u.depth,
                        u.line_item_id, u.modifier_id, u.sku_id, u.name, u.price::numeric,
                        u.group_id, u.group_name, u.station_hint, u.quantity
                 FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::int[], $6::text[],
                             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                             $12::text[], $13::text[], $14::int[])
                      AS u(order_id, line_no, modifier_no, parent_modifier_no, depth,
                           line_item_id, modifier_id, sku_id, name, price, group_id, group_name,
                           station_hint, quantity)",
            )
            .bind(&self.mod_order_ids)
            .bind(&self.mod_line_nos)
            .bind(&self.mod_nos)
            .bind(&self.mod_parents)
            .bind(&self.mod_depths)
            .bind(line_item_id)
            .bind(modifier_id)
            .bind(sku_id)
            .bind(name)
            .bind(price)
            .bind(group_id)
            .bind(group_name)
            .bind(station)
            .bind(&self.mod_quantities)
            .execute(&mut **tx)
            .await?;
        }
        if !self.promo_order_ids.is_empty() {
            let [external_id, name, value] = &self.promo_text;
            sqlx::query(
                "INSERT INTO otter.order_promotions (order_id, promo_no, external_id, name, value)
                 SELECT u.order_id, u.promo_no, u.external_id, u.name, u.value::numeric
                 FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[])
                      AS u(order_id, promo_no, external_id, name, value)",
            )
            .bind(&self.promo_order_ids)
            .bind(&self.promo_nos)
            .bind(external_id)
            .bind(name)
            .bind(value)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

async fn insert_status_changes(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming],
    changes: &[StatusChange],
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let event = |change: &StatusChange| &batch[change.index].event;
    let order_ids: Vec<&str> = changes.iter().map(|c| c.order_id.as_str()).collect();
    let store_ids: Vec<&str> = changes.iter().map(|c| event(c).store_id.as_str()).collect();
    let event_ids: Vec<&str> = changes.iter().map(|c| event(c).event_id.as_str()).collect();
    let types: Vec<&str> = changes
        .iter()
        .map(|c| event(c).otter_event_type.as_str())
        .collect();
    let statuses: Vec<&str> = changes.iter().map(|c| c.status.as_str()).collect();
    let times: Vec<DateTime<Utc>> = changes.iter().map(|c| event(c).event_time).collect();
    let reasons: Vec<Option<&str>> = changes
        .iter()
        .map(|c| c.cancellation_reason.as_deref())
        .collect();
    sqlx::query(
        "INSERT INTO otter.order_status_changes
             (order_id, store_id, event_id, event_type, status, event_time, cancellation_reason)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::timestamptz[], $7::text[])",
    )
    .bind(&order_ids)
    .bind(&store_ids)
    .bind(&event_ids)
    .bind(&types)
    .bind(&statuses)
    .bind(&times)
    .bind(&reasons)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether an event goes to the kitchens: it changed an order and names a store to route to.
fn kitchen_bound(incoming: &Incoming, outcome: Outcome) -> bool {
    outcome == Outcome::Applied && !incoming.event.store_id.is_empty()
}

/// Hands out the next sequence numbers of each store, in batch order. Stores are locked in
/// sorted order so two transactions can never deadlock on them.
async fn allocate_sequences(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming],
    fresh: &[usize],
    outcomes: &[Outcome],
) -> Result<HashMap<usize, i64>, sqlx::Error> {
    let mut per_store: Vec<(&str, i64)> = Vec::new();
    for &i in fresh {
        if kitchen_bound(&batch[i], outcomes[i]) {
            let store_id = batch[i].event.store_id.as_str();
            match per_store.iter_mut().find(|(s, _)| *s == store_id) {
                Some((_, count)) => *count += 1,
                None => per_store.push((store_id, 1)),
            }
        }
    }
    let mut sequences = HashMap::new();
    if per_store.is_empty() {
        return Ok(sequences);
    }
    per_store.sort();
    let (stores, counts): (Vec<&str>, Vec<i64>) = per_store.iter().copied().unzip();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO otter.store_sequences AS s (store_id, last_sequence)
         SELECT * FROM unnest($1::text[], $2::bigint[]) ORDER BY 1
         ON CONFLICT (store_id) DO UPDATE SET last_sequence = s.last_sequence + excluded.last_sequence
         RETURNING store_id, last_sequence",
    )
    .bind(&stores)
    .bind(&counts)
    .fetch_all(&mut **tx)
    .await?;
    let mut next: HashMap<String, i64> = rows
        .into_iter()
        .map(|(store_id, last)| {
            let count = per_store
                .iter()
                .find(|(s, _)| *s == store_id)
                .map_or(0, |(_, c)| *c);
            (store_id, last - count + 1)
        })
        .collect();
    for &i in fresh {
        if kitchen_bound(&batch[i], outcomes[i]) {
            let counter = next
                .get_mut(&batch[i].event.store_id)
                .expect("every kitchen-bound store got a row");
            sequences.insert(i, *counter);
            *counter += 1;
        }
    }
    Ok(sequences)
}

async fn insert_outbox(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming],
    fresh: &[usize],
    sequences: &HashMap<usize, i64>,
    orders: &HashMap<String, OrderState>,
) -> Result<(), sqlx::Error> {
    let mut event_ids = Vec::with_capacity(fresh.len());
    let mut store_ids = Vec::with_capacity(fresh.len());
    let mut seqs = Vec::with_capacity(fresh.len());
    let mut types = Vec::with_capacity(fresh.len());
    let mut payloads: Vec<Option<Vec<u8>>> = Vec::with_capacity(fresh.len());
    for &i in fresh {
        let incoming = &batch[i];
        let event = &incoming.event;
        let sequence = sequences.get(&i).copied();
        let payload = sequence.map(|sequence| {
            let status = event_status(event, orders);
            otter::order_event(event, sequence as u64, status, incoming.received_at).encode_to_vec()
        });
        event_ids.push(event.event_id.as_str());
        store_ids.push(event.store_id.as_str());
        seqs.push(sequence);
        types.push(event.otter_event_type.as_str());
        payloads.push(payload);
    }
    sqlx::query(
        "INSERT INTO otter.outbox (event_id, store_id, sequence, event_type, payload)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[])",
    )
    .bind(&event_ids)
    .bind(&store_ids)
    .bind(&seqs)
    .bind(&types)
    .bind(&payloads)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The status a kitchen is told for an event: for a snapshot, the order's status after the
/// batch (a cancellation that arrived first wins); for a status event, the status it carries.
fn event_status(event: &WebhookEvent, orders: &HashMap<String, OrderState>) -> OrderStatus {
    match &event.kind {
        EventKind::Snapshot { order, .. } => orders
            .get(&order.id)
            .and_then(|state| state.status)
            .unwrap_or(OrderStatus::NewOrder),
        EventKind::Status { status, .. } => *status,
        EventKind::Other => OrderStatus::Unknown,
    }
}
