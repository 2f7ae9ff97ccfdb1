//! The load: signed Otter webhooks at a steady rate (new orders, updates, cancels, fulfilments,
//! exact duplicates, out-of-order snapshots), each retried as Otter retries until a relay
//! answers 200; bumps at the kitchens through the agents' HTTP API, tickets read by their grill
//! scanners and batch sessions (`station`). Everything answered is recorded for
//! the check: the oracle is computed from these records only, never from the system's state.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use cloud_relay::otter::WebhookSigner;
use rand::{Rng, SeedableRng, rngs::StdRng};
use secrecy::SecretString;
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    station,
    system::{ITEM_NAME, KITCHENS, SECRET, STATION},
};

pub const STORES: [&str; 3] = ["s1", "s2", "s3"];

/// One webhook the load sent, and what became of it.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub event_id: String,
    pub kind: Kind,
    pub order_id: String,
    pub store_id: String,
    pub event_time: DateTime<Utc>,
    /// Burgers on the snapshot (new order and update).
    pub quantity: u32,
    /// When the relay answered 200 (the first time), and when that request was sent.
    pub accepted: Option<(Instant, Instant)>,
    /// When the first attempt was sent: a relay killed before it answered may have stored the
    /// webhook then, long before the attempt it answered.
    pub first_sent: Option<Instant>,
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    New,
    Update,
    Cancel,
    /// `orders.order_fulfilled`: the order is done (closed at the kitchens). The load sends no
    /// update of an order after its fulfilment.
    Fulfil,
}

/// A bump the load asked a kitchen for.
#[derive(Debug, Clone)]
pub struct Bump {
    pub kitchen: usize,
    pub order_id: String,
    /// `Some(status)` if the agent answered; `None` if the request failed (the agent died).
    pub status: Option<u16>,
    /// When it was answered (or failed).
    pub at: Instant,
}

#[derive(Debug, Default)]
pub struct Record {
    pub webhooks: Vec<Webhook>,
    pub bumps: Vec<Bump>,
    /// Exact re-sends of accepted webhooks (their answers do not matter: the original counts).
    pub duplicates_sent: u64,
    pub scans: Vec<station::Scan>,
    pub sessions: Vec<station::Session>,
}

pub type Shared = Arc<Mutex<Record>>;

pub fn lock(record: &Shared) -> std::sync::MutexGuard<'_, Record> {
    record.lock().unwrap_or_else(PoisonError::into_inner)
}

fn body(webhook: &Webhook) -> Vec<u8> {
    let time = webhook
        .event_time
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (event_type, payload) = match webhook.kind {
        Kind::Fulfil => (
            "orders.order_fulfilled",
            json!({"externalIdentifiers": {"id": webhook.order_id, "friendlyId": "C1", "source": "ubereats"}}),
        ),
        Kind::Cancel => (
            "orders.cancel_order",
            json!({"externalIdentifiers": {"id": webhook.order_id, "friendlyId": "C1", "source": "ubereats"},
                   "cancellationReason": "CUSTOMER_CALLED_TO_CANCEL"}),
        ),
        kind => (
            if kind == Kind::New {
                "orders.new_order"
            } else {
                "orders.update"
            },
            json!({
                "externalIdentifiers": {"id": webhook.order_id, "friendlyId": "C1", "source": "ubereats"},
                "currencyCode": "USD",
                "status": "NEW_ORDER",
                "orderedAt": "2026-12-03T07:00:00Z",
                "items": [{"id": "item-burger", "lineItemId": format!("{}-line-0", webhook.order_id),
                           "name": ITEM_NAME, "quantity": webhook.quantity, "price": 11.5}]
            }),
        ),
    };
    serde_json::to_vec(&json!({
        "eventId": webhook.event_id,
        "eventTime": time,
        "eventType": event_type,
        "metadata": {"storeId": webhook.store_id, "resourceId": webhook.order_id, "payload": payload}
    }))
    .unwrap_or_default()
}

/// Sends `index`'s webhook to a relay until one answers 200 or `give_up` is cancelled.
async fn deliver(
    record: Shared,
    index: usize,
    relays: Arc<Vec<String>>,
    signer: Arc<WebhookSigner>,
    client: reqwest::Client,
    give_up: CancellationToken,
) {
    let (bytes, first) = {
        let record = lock(&record);
        (body(&record.webhooks[index]), index % relays.len())
    };
    let signature = signer.sign(&bytes);
    let mut backoff = Duration::from_millis(200);
    for attempt in 0u32.. {
        let relay = &relays[(first + attempt as usize) % relays.len()];
        let sent = Instant::now();
        let response = client
            .post(format!("{relay}/webhooks/otter"))
            .header("content-type", "application/json")
            .header("X-HMAC-SHA256", &signature)
            .timeout(Duration::from_secs(10))
            .body(bytes.clone())
            .send()
            .await;
        {
            let webhook = &mut lock(&record).webhooks[index];
            webhook.attempts = attempt + 1;
            webhook.first_sent.get_or_insert(sent);
        }
        if response.is_ok_and(|r| r.status() == 200) {
            let mut record = lock(&record);
            let webhook = &mut record.webhooks[index];
            if webhook.accepted.is_none() {
                webhook.accepted = Some((Instant::now(), sent));
            }
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = give_up.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Runs the load until `stop`; then waits (up to `give_up`) for every webhook to be accepted.
pub async fn run(
    seed: u64,
    rate: u32,
    relays: Vec<String>,
    // Each kitchen's agent (its base URL) and the master side of its grill scanner's pty.
    kitchens: Vec<(String, Arc<File>)>,
    record: Shared,
    stop: CancellationToken,
    give_up: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x10ad);
    let signer = Arc::new(WebhookSigner::new(SecretString::from(SECRET)));
    let relays = Arc::new(relays);
    let client = kitchen_testkit::http::bare();
    let agent_client = kitchen_testkit::http::client();
    let start_time = Utc::now();
    let mut tasks = JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut orders = 0u64;
    let mut bumped: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut fulfilled: BTreeSet<String> = BTreeSet::new();
    for n in 0u64.. {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => break,
        }
        // Event times advance 10 ms per tick, whatever the wall clock: the relay orders
        // snapshots by them.
        let event_time = start_time + chrono::Duration::milliseconds(10 * n as i64);
        let choice = rng.gen_range(0..100);
        let index = {
            let mut record = lock(&record);
            let accepted_new: Vec<usize> = record
                .webhooks
                .iter()
                .enumerate()
                .filter(|(_, w)| w.kind == Kind::New && w.accepted.is_some())
                .map(|(i, _)| i)
                .collect();
            let pick = (!accepted_new.is_empty()).then(|| {
                record.webhooks[accepted_new[rng.gen_range(0..accepted_new.len())]].clone()
            });
            // Nothing newer than its fulfilment is sent for an order: a new order instead.
            let pick = pick.filter(|new| {
                !(matches!(choice, 52..70 | 85..90) && fulfilled.contains(&new.order_id))
            });
            let webhook = match (choice, pick) {
                (0..52, _) | (_, None) => {
                    orders += 1;
                    Webhook {
                        event_id: format!("ev-{n}"),
                        kind: Kind::New,
                        order_id: format!("order-{seed}-{orders}"),
                        store_id: STORES[rng.gen_range(0..STORES.len())].to_owned(),
                        event_time,
                        quantity: rng.gen_range(1..=4),
                        accepted: None,
                        attempts: 0,
                        first_sent: None,
                    }
                }
                (52..70, Some(new)) => Webhook {
                    event_id: format!("ev-{n}"),
                    kind: Kind::Update,
                    quantity: rng.gen_range(1..=6),
                    event_time,
                    accepted: None,
                    attempts: 0,
                    first_sent: None,
                    ..new
                },
                // Out of order: a snapshot older than the order's first one; stale, ignored.
                (70..78, Some(new)) => Webhook {
                    event_id: format!("ev-{n}"),
                    kind: Kind::Update,
                    quantity: 9,
                    event_time: new.event_time - chrono::Duration::milliseconds(5),
                    accepted: None,
                    attempts: 0,
                    first_sent: None,
                    ..new
                },
                (78..85, Some(new)) => Webhook {
                    event_id: format!("ev-{n}"),
                    kind: Kind::Cancel,
                    event_time,
                    accepted: None,
                    attempts: 0,
                    first_sent: None,
                    ..new
                },
                (85..90, Some(new)) => {
                    fulfilled.insert(new.order_id.clone());
                    Webhook {
                        event_id: format!("ev-{n}"),
                        kind: Kind::Fulfil,
                        event_time,
                        accepted: None,
                        attempts: 0,
                        first_sent: None,
                        ..new
                    }
                }
                // An exact duplicate of something already accepted: sent, not recorded again.
                (_, Some(_)) => {
                    let accepted: Vec<usize> = record
                        .webhooks
                        .iter()
                        .enumerate()
                        .filter(|(_, w)| w.accepted.is_some())
                        .map(|(i, _)| i)
                        .collect();
                    let original =
                        record.webhooks[accepted[rng.gen_range(0..accepted.len())]].clone();
                    record.duplicates_sent += 1;
                    drop(record);
                    let bytes = body(&original);
                    let signature = signer.sign(&bytes);
                    let relay = relays[rng.gen_range(0..relays.len())].clone();
                    let client = client.clone();
                    tasks.spawn(async move {
                        let _ = client
                            .post(format!("{relay}/webhooks/otter"))
                            .header("X-HMAC-SHA256", signature)
                            .timeout(Duration::from_secs(10))
                            .body(bytes)
                            .send()
                            .await;
                    });
                    continue;
                }
            };
            record.webhooks.push(webhook);
            record.webhooks.len() - 1
        };
        tasks.spawn(deliver(
            record.clone(),
            index,
            relays.clone(),
            signer.clone(),
            client.clone(),
            give_up.clone(),
        ));
        // A bump every fifth tick, at a kitchen serving the order, each (kitchen, order) once.
        if n % 5 == 4
            && let Some((kitchen, order_id)) = bump_target(&record, &mut rng, &bumped)
        {
            bumped.insert((kitchen, order_id.clone()));
            let url = format!(
                "{}/api/orders/{order_id}/bump?station={STATION}",
                kitchens[kitchen].0
            );
            let client = agent_client.clone();
            let record = record.clone();
            tasks.spawn(async move {
                let status = client
                    .post(url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .ok()
                    .map(|r| r.status().as_u16());
                lock(&record).bumps.push(Bump {
                    kitchen,
                    order_id,
                    status,
                    at: Instant::now(),
                });
            });
        }
        // A ticket read by a grill scanner, at a kitchen serving the order, as a bump is.
        if n % 5 == 2
            && let Some((kitchen, order_id)) = bump_target(&record, &mut rng, &bumped)
        {
            bumped.insert((kitchen, order_id.clone()));
            tasks.spawn(station::scan(
                record.clone(),
                kitchens[kitchen].1.clone(),
                kitchen,
                order_id,
            ));
        }
        // A batch session every 2 s (at 20/s), at each kitchen in turn.
        if n % 40 == 17 {
            let kitchen = (n / 40) as usize % kitchens.len();
            tasks.spawn(station::session(
                record.clone(),
                kitchens[kitchen].0.clone(),
                kitchen,
                rng.gen_range(1..=3),
                Duration::from_millis(rng.gen_range(500..3_000)),
                give_up.clone(),
            ));
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// An order accepted over 2 s ago at a kitchen serving its store, not yet bumped there.
fn bump_target(
    record: &Shared,
    rng: &mut StdRng,
    bumped: &BTreeSet<(usize, String)>,
) -> Option<(usize, String)> {
    let record = lock(record);
    let candidates: Vec<(usize, String)> = record
        .webhooks
        .iter()
        .filter(|w| w.kind == Kind::New)
        .filter(|w| {
            w.accepted
                .is_some_and(|(at, _)| at.elapsed() > Duration::from_secs(2))
        })
        .flat_map(|w| {
            KITCHENS
                .iter()
                .enumerate()
                .filter(|(_, (_, stores))| stores.contains(&w.store_id.as_str()))
                .map(|(k, _)| (k, w.order_id.clone()))
        })
        .filter(|target| !bumped.contains(target))
        .collect();
    (!candidates.is_empty()).then(|| candidates[rng.gen_range(0..candidates.len())].clone())
}

/// What each order should be, from the accepted webhooks only: its burgers on the latest
/// accepted snapshot (by event time), and whether an accepted cancel made it final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub store_id: String,
    pub quantity: u32,
    pub cancelled: bool,
    /// An accepted fulfilment (and no cancellation, which is final whatever its time).
    pub fulfilled: bool,
}

pub fn oracle(record: &Record) -> BTreeMap<String, Expected> {
    let mut latest: BTreeMap<String, (DateTime<Utc>, Expected)> = BTreeMap::new();
    let accepted = record.webhooks.iter().filter(|w| w.accepted.is_some());
    let snapshots = accepted
        .clone()
        .filter(|w| matches!(w.kind, Kind::New | Kind::Update));
    for webhook in snapshots {
        let entry = latest.entry(webhook.order_id.clone()).or_insert_with(|| {
            (
                webhook.event_time,
                Expected {
                    store_id: webhook.store_id.clone(),
                    quantity: webhook.quantity,
                    cancelled: false,
                    fulfilled: false,
                },
            )
        });
        if webhook.event_time > entry.0 {
            *entry = (
                webhook.event_time,
                Expected {
                    store_id: webhook.store_id.clone(),
                    quantity: webhook.quantity,
                    cancelled: false,
                    fulfilled: false,
                },
            );
        }
    }
    for webhook in accepted.clone().filter(|w| w.kind == Kind::Fulfil) {
        if let Some((_, expected)) = latest.get_mut(&webhook.order_id) {
            expected.fulfilled = true;
        }
    }
    for webhook in accepted.filter(|w| w.kind == Kind::Cancel) {
        if let Some((_, expected)) = latest.get_mut(&webhook.order_id) {
            expected.cancelled = true;
            expected.fulfilled = false;
        }
    }
    latest.into_iter().map(|(id, (_, e))| (id, e)).collect()
}

#[cfg(test)]
mod tests {
    use super::{Expected, Kind, Record, Webhook, oracle};
    use std::time::Instant;

    fn webhook(n: i64, kind: Kind, order: &str, quantity: u32, accepted: bool) -> Webhook {
        let now = Instant::now();
        Webhook {
            event_id: format!("ev-{n}-{order}"),
            kind,
            order_id: order.to_owned(),
            store_id: "s1".to_owned(),
            event_time: chrono::DateTime::UNIX_EPOCH + chrono::Duration::milliseconds(n),
            quantity,
            accepted: accepted.then_some((now, now)),
            first_sent: Some(now),
            attempts: 1,
        }
    }

    fn expected(quantity: u32, cancelled: bool) -> Expected {
        Expected {
            store_id: "s1".to_owned(),
            quantity,
            cancelled,
            fulfilled: false,
        }
    }

    #[test]
    fn the_latest_accepted_snapshot_wins_and_a_cancel_is_final() {
        let record = Record {
            webhooks: vec![
                webhook(10, Kind::New, "a", 2, true),
                webhook(30, Kind::Update, "a", 5, true),
                // Older than the update: stale, whatever the order it arrived in.
                webhook(20, Kind::Update, "a", 9, true),
                // Never answered 200: not the oracle's.
                webhook(40, Kind::Update, "a", 7, false),
                webhook(10, Kind::New, "b", 1, true),
                webhook(50, Kind::Cancel, "b", 0, true),
                webhook(60, Kind::Update, "b", 3, true),
                webhook(10, Kind::New, "c", 4, false),
                // Fulfilled (the update before it still counts); fulfilled then cancelled.
                webhook(10, Kind::New, "d", 2, true),
                webhook(30, Kind::Fulfil, "d", 0, true),
                webhook(20, Kind::Update, "d", 3, true),
                webhook(10, Kind::New, "e", 1, true),
                webhook(30, Kind::Fulfil, "e", 0, true),
                webhook(40, Kind::Cancel, "e", 0, true),
                // A fulfilment never answered 200 is not the oracle's.
                webhook(10, Kind::New, "f", 1, true),
                webhook(30, Kind::Fulfil, "f", 0, false),
            ],
            ..Record::default()
        };
        let oracle = oracle(&record);
        assert_eq!(
            oracle.into_iter().collect::<Vec<_>>(),
            vec![
                ("a".to_owned(), expected(5, false)),
                ("b".to_owned(), expected(3, true)),
                (
                    "d".to_owned(),
                    Expected {
                        fulfilled: true,
                        ..expected(3, false)
                    }
                ),
                ("e".to_owned(), expected(1, true)),
                ("f".to_owned(), expected(1, false)),
            ]
        );
    }
}
