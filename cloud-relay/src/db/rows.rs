//! The column arrays of one batch and the single statement that writes them: every table is
//! one `INSERT ... SELECT FROM unnest(...)` in a chain of data-modifying CTEs, so a whole batch
//! costs one round trip and one statement however many orders, lines and modifiers it holds.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

use super::model::{Incoming, OrderState, Outcome, StatusChange};
use crate::otter::{Modifier, Order, OrderStatus, WebhookEvent};

/// Everything one batch writes, column by column.
#[derive(Default)]
pub struct BatchRows<'a> {
    // webhook_events
    event_ids: Vec<&'a str>,
    event_types: Vec<&'a str>,
    event_times: Vec<DateTime<Utc>>,
    event_store_ids: Vec<&'a str>,
    event_order_ids: Vec<Option<&'a str>>,
    event_outcomes: Vec<&'static str>,
    event_raws: Vec<&'a str>,
    event_received: Vec<DateTime<Utc>>,
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
    // orders whose status moved without a new snapshot
    moved_order_ids: Vec<&'a str>,
    moved_statuses: Vec<&'static str>,
    moved_times: Vec<Option<DateTime<Utc>>>,
    moved_reasons: Vec<Option<String>>,
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
    // order_status_changes
    change_order_ids: Vec<&'a str>,
    change_store_ids: Vec<&'a str>,
    change_event_ids: Vec<&'a str>,
    change_types: Vec<&'a str>,
    change_statuses: Vec<&'static str>,
    change_times: Vec<DateTime<Utc>>,
    change_reasons: Vec<Option<&'a str>>,
    // store_sequences: how many numbers each store takes (stores sorted, so locks are taken
    // in one order and two transactions cannot deadlock)
    sequence_stores: Vec<&'a str>,
    sequence_counts: Vec<i64>,
    // outbox; `rank` is the event's place among its store's kitchen events in this batch
    outbox_event_ids: Vec<&'a str>,
    outbox_store_ids: Vec<&'a str>,
    outbox_ranks: Vec<Option<i64>>,
    outbox_types: Vec<&'a str>,
    outbox_payloads: Vec<Option<Vec<u8>>>,
}

impl<'a> BatchRows<'a> {
    pub fn push_event(&mut self, incoming: &'a Incoming, outcome: Outcome) {
        let event = &incoming.event;
        self.event_ids.push(&event.event_id);
        self.event_types.push(&event.otter_event_type);
        self.event_times.push(event.event_time);
        self.event_store_ids.push(&event.store_id);
        self.event_order_ids.push(event.kind.order_id());
        self.event_outcomes.push(outcome.as_str());
        self.event_raws.push(&incoming.raw);
        self.event_received.push(incoming.received_at);
    }

    /// An outbox row; `payload` (the `OrderEvent` without its sequence) makes it kitchen-bound,
    /// taking the next sequence number of its store. Push in batch order.
    pub fn push_outbox(&mut self, incoming: &'a Incoming, payload: Option<Vec<u8>>) {
        let store_id = incoming.event.store_id.as_str();
        let rank = payload.as_ref().map(|_| {
            match self.sequence_stores.iter().position(|s| *s == store_id) {
                Some(at) => {
                    self.sequence_counts[at] += 1;
                    self.sequence_counts[at]
                }
                None => {
                    self.sequence_stores.push(store_id);
                    self.sequence_counts.push(1);
                    1
                }
            }
        });
        self.outbox_event_ids.push(&incoming.event.event_id);
        self.outbox_store_ids.push(store_id);
        self.outbox_ranks.push(rank);
        self.outbox_types.push(&incoming.event.otter_event_type);
        self.outbox_payloads.push(payload);
    }

    pub fn push_status_only(&mut self, order_id: &'a str, state: &OrderState) {
        self.moved_order_ids.push(order_id);
        self.moved_statuses
            .push(state.status.map_or("UNKNOWN", OrderStatus::as_str));
        self.moved_times.push(state.status_time);
        self.moved_reasons.push(state.cancellation_reason.clone());
    }

    pub fn push_status_change(&mut self, event: &'a WebhookEvent, change: &'a StatusChange) {
        self.change_order_ids.push(&change.order_id);
        self.change_store_ids.push(&event.store_id);
        self.change_event_ids.push(&event.event_id);
        self.change_types.push(&event.otter_event_type);
        self.change_statuses.push(change.status.as_str());
        self.change_times.push(event.event_time);
        self.change_reasons
            .push(change.cancellation_reason.as_deref());
    }

    pub fn push_order(&mut self, event: &'a WebhookEvent, order: &'a Order, state: &OrderState) {
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

    /// Writes the batch in one statement; returns how many events were newly stored (fewer
    /// than pushed means another relay stored one concurrently: the caller rolls back).
    pub async fn write(mut self, tx: &mut Transaction<'_, Postgres>) -> Result<i64, sqlx::Error> {
        let mut sorted: Vec<(&str, i64)> = self
            .sequence_stores
            .iter()
            .copied()
            .zip(self.sequence_counts.iter().copied())
            .collect();
        sorted.sort_unstable();
        (self.sequence_stores, self.sequence_counts) = sorted.into_iter().unzip();
        let [subtotal, discount, tax, tip, delivery_fee, total] = &self.money;
        let [
            i_line_item_id,
            i_item_id,
            i_sku_id,
            i_name,
            i_note,
            i_price,
            i_category,
            i_station,
        ] = &self.item_text;
        let [
            m_line_item_id,
            m_modifier_id,
            m_sku_id,
            m_name,
            m_price,
            m_group_id,
            m_group_name,
            m_station,
        ] = &self.mod_text;
        let [p_external_id, p_name, p_value] = &self.promo_text;
        sqlx::query_scalar(WRITE_BATCH)
            // webhook_events $1..$8
            .bind(&self.event_ids)
            .bind(&self.event_types)
            .bind(&self.event_times)
            .bind(&self.event_store_ids)
            .bind(&self.event_order_ids)
            .bind(&self.event_outcomes)
            .bind(&self.event_raws)
            .bind(&self.event_received)
            // orders $9..$35
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
            // status-only moves $36..$39
            .bind(&self.moved_order_ids)
            .bind(&self.moved_statuses)
            .bind(&self.moved_times)
            .bind(&self.moved_reasons)
            // order_items $40..$50
            .bind(&self.item_order_ids)
            .bind(&self.item_line_nos)
            .bind(i_line_item_id)
            .bind(i_item_id)
            .bind(i_sku_id)
            .bind(i_name)
            .bind(i_note)
            .bind(i_price)
            .bind(i_category)
            .bind(i_station)
            .bind(&self.item_quantities)
            // order_item_modifiers $51..$64
            .bind(&self.mod_order_ids)
            .bind(&self.mod_line_nos)
            .bind(&self.mod_nos)
            .bind(&self.mod_parents)
            .bind(&self.mod_depths)
            .bind(m_line_item_id)
            .bind(m_modifier_id)
            .bind(m_sku_id)
            .bind(m_name)
            .bind(m_price)
            .bind(m_group_id)
            .bind(m_group_name)
            .bind(m_station)
            .bind(&self.mod_quantities)
            // order_promotions $65..$69
            .bind(&self.promo_order_ids)
            .bind(&self.promo_nos)
            .bind(p_external_id)
            .bind(p_name)
            .bind(p_value)
            // order_status_changes $70..$76
            .bind(&self.change_order_ids)
            .bind(&self.change_store_ids)
            .bind(&self.change_event_ids)
            .bind(&self.change_types)
            .bind(&self.change_statuses)
            .bind(&self.change_times)
            .bind(&self.change_reasons)
            // store_sequences $77..$78
            .bind(&self.sequence_stores)
            .bind(&self.sequence_counts)
            // outbox $79..$83
            .bind(&self.outbox_event_ids)
            .bind(&self.outbox_store_ids)
            .bind(&self.outbox_ranks)
            .bind(&self.outbox_types)
            .bind(&self.outbox_payloads)
            .fetch_one(&mut **tx)
            .await
    }
}

/// The batch write. Foreign keys are checked at the end of the statement, when every CTE has
/// run, so children may reference parents inserted beside them. Outbox ids follow batch order
/// (`WITH ORDINALITY` + `ORDER BY`), which per store is sequence order.
const WRITE_BATCH: &str = "
WITH events AS (
    INSERT INTO otter.webhook_events
        (event_id, event_type, event_time, store_id, order_id, outcome, raw, received_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::timestamptz[])
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1),
orders AS (
    INSERT INTO otter.orders AS o
        (order_id, store_id, source, source_type, friendly_id, currency_code, status,
         status_event_time, ordered_at, customer_name, customer_note, fulfillment_mode,
         scheduling_type, pickup_time, estimated_pickup_time, delivery_time, table_identifier,
         estimated_prep_seconds, subtotal, discount, tax, tip, delivery_fee, total,
         cancellation_reason, snapshot_event_id, snapshot_event_time)
    SELECT u.order_id, u.store_id, u.source, u.source_type, u.friendly_id, u.currency_code,
           u.status, u.status_event_time, u.ordered_at, u.customer_name, u.customer_note,
           u.fulfillment_mode, u.scheduling_type, u.pickup_time, u.estimated_pickup_time,
           u.delivery_time, u.table_identifier, u.estimated_prep_seconds, u.subtotal::numeric,
           u.discount::numeric, u.tax::numeric, u.tip::numeric, u.delivery_fee::numeric,
           u.total::numeric, u.cancellation_reason, u.snapshot_event_id, u.snapshot_event_time
    FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                $15::text[], $16::timestamptz[], $17::timestamptz[], $18::text[], $19::text[],
                $20::text[], $21::text[], $22::timestamptz[], $23::timestamptz[],
                $24::timestamptz[], $25::text[], $26::int[], $27::text[], $28::text[],
                $29::text[], $30::text[], $31::text[], $32::text[], $33::text[], $34::text[],
                $35::timestamptz[])
         AS u(order_id, store_id, source, source_type, friendly_id, currency_code, status,
              status_event_time, ordered_at, customer_name, customer_note, fulfillment_mode,
              scheduling_type, pickup_time, estimated_pickup_time, delivery_time,
              table_identifier, estimated_prep_seconds, subtotal, discount, tax, tip,
              delivery_fee, total, cancellation_reason, snapshot_event_id, snapshot_event_time)
    ON CONFLICT (order_id) DO UPDATE SET
        store_id = excluded.store_id, source = excluded.source,
        source_type = excluded.source_type, friendly_id = excluded.friendly_id,
        currency_code = excluded.currency_code, status = excluded.status,
        status_event_time = excluded.status_event_time, ordered_at = excluded.ordered_at,
        customer_name = excluded.customer_name, customer_note = excluded.customer_note,
        fulfillment_mode = excluded.fulfillment_mode, scheduling_type = excluded.scheduling_type,
        pickup_time = excluded.pickup_time, estimated_pickup_time = excluded.estimated_pickup_time,
        delivery_time = excluded.delivery_time, table_identifier = excluded.table_identifier,
        estimated_prep_seconds = excluded.estimated_prep_seconds, subtotal = excluded.subtotal,
        discount = excluded.discount, tax = excluded.tax, tip = excluded.tip,
        delivery_fee = excluded.delivery_fee, total = excluded.total,
        cancellation_reason = excluded.cancellation_reason,
        snapshot_event_id = excluded.snapshot_event_id,
        snapshot_event_time = excluded.snapshot_event_time, updated_at = now()
    RETURNING 1),
moved AS (
    UPDATE otter.orders o
    SET status = u.status, status_event_time = u.status_time, cancellation_reason = u.reason,
        updated_at = now()
    FROM unnest($36::text[], $37::text[], $38::timestamptz[], $39::text[])
         AS u(order_id, status, status_time, reason)
    WHERE o.order_id = u.order_id
    RETURNING 1),
items AS (
    INSERT INTO otter.order_items
        (order_id, line_no, line_item_id, item_id, sku_id, name, note, price, category,
         station_hint, quantity)
    SELECT u.order_id, u.line_no, u.line_item_id, u.item_id, u.sku_id, u.name, u.note,
           u.price::numeric, u.category, u.station_hint, u.quantity
    FROM unnest($40::text[], $41::int[], $42::text[], $43::text[], $44::text[], $45::text[],
                $46::text[], $47::text[], $48::text[], $49::text[], $50::int[])
         AS u(order_id, line_no, line_item_id, item_id, sku_id, name, note, price, category,
              station_hint, quantity)
    RETURNING 1),
modifiers AS (
    INSERT INTO otter.order_item_modifiers
        (order_id, line_no, modifier_no, parent_modifier_no, depth, line_item_id, modifier_id,
         sku_id, name, price, group_id, group_name, station_hint, quantity)
    SELECT u.order_id, u.line_no, u.modifier_no, u.parent_modifier_no, u.depth, u.line_item_id,
           u.modifier_id, u.sku_id, u.name, u.price::numeric, u.group_id, u.group_name,
           u.station_hint, u.quantity
    FROM unnest($51::text[], $52::int[], $53::int[], $54::int[], $55::int[], $56::text[],
                $57::text[], $58::text[], $59::text[], $60::text[], $61::text[], $62::text[],
                $63::text[], $64::int[])
         AS u(order_id, line_no, modifier_no, parent_modifier_no, depth, line_item_id,
              modifier_id, sku_id, name, price, group_id, group_name, station_hint, quantity)
    RETURNING 1),
promotions AS (
    INSERT INTO otter.order_promotions (order_id, promo_no, external_id, name, value)
    SELECT u.order_id, u.promo_no, u.external_id, u.name, u.value::numeric
    FROM unnest($65::text[], $66::int[], $67::text[], $68::text[], $69::text[])
         AS u(order_id, promo_no, external_id, name, value)
    RETURNING 1),
changes AS (
    INSERT INTO otter.order_status_changes
        (order_id, store_id, event_id, event_type, status, event_time, cancellation_reason)
    SELECT * FROM unnest($70::text[], $71::text[], $72::text[], $73::text[], $74::text[],
                         $75::timestamptz[], $76::text[])
    RETURNING 1),
taken AS (
    SELECT * FROM unnest($77::text[], $78::bigint[]) AS t(store_id, n)),
sequences AS (
    INSERT INTO otter.store_sequences AS s (store_id, last_sequence)
    SELECT store_id, n FROM taken ORDER BY store_id
    ON CONFLICT (store_id) DO UPDATE SET last_sequence = s.last_sequence + excluded.last_sequence
    RETURNING store_id, last_sequence),
outbox AS (
    INSERT INTO otter.outbox (event_id, store_id, sequence, event_type, payload)
    SELECT u.event_id, u.store_id, s.last_sequence - t.n + u.rank, u.event_type, u.payload
    FROM unnest($79::text[], $80::text[], $81::bigint[], $82::text[], $83::bytea[])
             WITH ORDINALITY AS u(event_id, store_id, rank, event_type, payload, ord)
         LEFT JOIN sequences s ON u.rank IS NOT NULL AND s.store_id = u.store_id
         LEFT JOIN taken t ON u.rank IS NOT NULL AND t.store_id = u.store_id
    ORDER BY u.ord
    RETURNING 1)
SELECT count(*) FROM events";
