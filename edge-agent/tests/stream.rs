//! 500 orders over 3 stores through the real RabbitMQ: a tablet that drops off midway and
//! reconnects with `Last-Event-ID` ends with exactly the server's event sequence, the batch
//! counts it folds from `batch.updated` equal `/api/batches`, and those equal a count made
//! here by hand from the orders sent.

mod common;

use std::collections::BTreeMap;

use common::TestAgent;
use kitchen_proto::{OrderEvent, OrderStatus};
use kitchen_testkit::{
    events::{T0_MS, line, new_order, sku_line, status_update},
    http::{SseReader, get_json},
};
use serde_json::Value;

const REFERENCE: &str = include_str!("fixtures/three_stations.toml");

const STORES: [&str; 3] = ["store-a", "store-b", "store-c"];
const ORDERS: u64 = 500;

/// Order `n`: `burgers` meals (each with fries), `extra_fries`, `colas`; every 7th has a line
/// no reference item matches.
struct Spec {
    burgers: u32,
    extra_fries: u32,
    colas: u32,
    mystery: bool,
    cancelled: bool,
}

fn spec(n: u64) -> Spec {
    Spec {
        burgers: (n % 3) as u32 + 1,
        extra_fries: (n % 2) as u32,
        colas: (n % 4) as u32,
        mystery: n.is_multiple_of(7),
        cancelled: n % 10 == 3,
    }
}

fn order_event(n: u64, sequence: u64) -> OrderEvent {
    let spec = spec(n);
    let mut order_event = new_order(STORES[(n % 3) as usize], &format!("order-{n:03}"))
        .event_id(format!("ev-{n}"))
        .sequence(sequence)
        .friendly_id(format!("{n:03}"))
        .pickup_at(T0_MS + (n as i64 % 60) * 60_000)
        .item(sku_line(
            "sku-smash-double",
            "Double Smash Burger",
            spec.burgers,
            vec![line("Make it a Meal", 1, vec![line("Fries", 1, vec![])])],
        ));
    if spec.extra_fries > 0 {
        order_event = order_event.item(line("Fries", spec.extra_fries, vec![]));
    }
    if spec.colas > 0 {
        order_event = order_event.item(line("Cola", spec.colas, vec![]));
    }
    if spec.mystery {
        order_event = order_event.item(line("Mystery Box", 1, vec![line("No pickles", 1, vec![])]));
    }
    order_event.build()
}

fn cancel_event(n: u64, sequence: u64) -> OrderEvent {
    status_update(
        STORES[(n % 3) as usize],
        &format!("order-{n:03}"),
        "orders.cancel",
        OrderStatus::Canceled,
    )
    .event_id(format!("ev-{n}-cancel"))
    .sequence(sequence)
    .build()
}

/// (station, item) → (quantity, order ids), counted by hand from the specs.
fn expected_board() -> BTreeMap<(String, String), (u64, Vec<String>)> {
    let mut board: BTreeMap<(String, String), (u64, Vec<String>)> = BTreeMap::new();
    let mut add = |station: &str, item: &str, units: u32, order: &str| {
        if units == 0 {
            return;
        }
        let entry = board.entry((station.into(), item.into())).or_default();
        entry.0 += u64::from(units);
        entry.1.push(order.to_owned());
    };
    for n in 0..ORDERS {
        let spec = spec(n);
        if spec.cancelled {
            continue;
        }
        let order = format!("order-{n:03}");
        add("grill", "smash", spec.burgers, &order);
        add("fry", "fries", spec.burgers + spec.extra_fries, &order);
        add("drinks", "cola", spec.colas, &order);
        add(
            "unassigned",
            "name:mystery box",
            u32::from(spec.mystery),
            &order,
        );
    }
    for (_, orders) in board.values_mut() {
        orders.sort();
    }
    board
}

fn board_of(items: &[Value]) -> BTreeMap<(String, String), (u64, Vec<String>)> {
    items
        .iter()
        .map(|item| {
            (
                (
                    item["station_id"].as_str().unwrap_or("").to_owned(),
                    item["item_id"].as_str().unwrap_or("").to_owned(),
                ),
                (
                    item["quantity"].as_u64().unwrap_or(0),
                    item["order_ids"]
                        .as_array()
                        .map(|ids| {
                            ids.iter()
                                .map(|i| i.as_str().unwrap_or("").to_owned())
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
            )
        })
        .collect()
}

/// Folds events into the per-station batch items, as a display does.
fn fold(stations: &mut BTreeMap<String, Vec<Value>>, event: &str, data: &Value) {
    match event {
        "snapshot" => {
            stations.clear();
            for item in data["batches"].as_array().into_iter().flatten() {
                let station = item["station_id"].as_str().unwrap_or("").to_owned();
                stations.entry(station).or_default().push(item.clone());
            }
        }
        "batch.updated" => {
            let station = data["station_id"].as_str().unwrap_or("").to_owned();
            let items = data["items"].as_array().cloned().unwrap_or_default();
            stations.insert(station, items);
        }
        _ => {}
    }
}

async fn last_seq(base: &str) -> i64 {
    let metrics = kitchen_testkit::http::get(format!("{base}/metrics"))
        .await
        .expect("answers")
        .text()
        .await
        .expect("body");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("edge_agent_event_log_last_seq "))
        .and_then(|v| v.parse().ok())
        .expect("metric present")
}

#[tokio::test]
async fn five_hundred_orders_reach_a_reconnecting_tablet_exactly_once() {
    let kitchen = TestAgent::start_for(Some(REFERENCE), &STORES).await;
    let base = kitchen.base.clone();
    let url = format!("{base}/orders/events");
    let mut tablet = SseReader::open(&url, None).await;
    let mut stations = BTreeMap::new();
    let (id, event, data) = tablet.next().await;
    assert_eq!((id.as_str(), event.as_str()), ("0", "snapshot"));
    fold(&mut stations, &event, &data);

    // The relay's per-store sequences; cancellations follow their orders.
    let mut sequences = [0u64; 3];
    let mut next = |n: u64| {
        let store = (n % 3) as usize;
        sequences[store] += 1;
        sequences[store]
    };
    let mut published = 0;
    for n in 0..ORDERS {
        kitchen.publish(&order_event(n, next(n))).await;
        published += 1;
        if n % 10 == 3 && n >= 10 {
            let cancelled = n - 10;
            kitchen
                .publish(&cancel_event(cancelled, next(cancelled)))
                .await;
            published += 1;
        }
    }
    // The last cancellations (those of orders sent after the loop's last one).
    for n in (0..ORDERS).filter(|n| n % 10 == 3 && n + 10 >= ORDERS) {
        kitchen.publish(&cancel_event(n, next(n))).await;
        published += 1;
    }
    assert_eq!(published, ORDERS + ORDERS / 10);

    // Read part of it, then drop off the Wi-Fi.
    let mut seen: Vec<(i64, String, Value)> = Vec::new();
    while seen.len() < 300 {
        let (id, event, data) = tablet.next().await;
        fold(&mut stations, &event, &data);
        seen.push((id.parse().expect("numeric id"), event, data));
    }
    drop(tablet);

    // Wait until everything is applied: the counts equal the hand-made expectation.
    let expected = expected_board();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let body = get_json(&format!("{base}/api/batches")).await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        if board_of(&items) == expected {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch items never matched the orders sent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let last = last_seq(&base).await;

    let resume_from = seen.last().map(|(id, _, _)| id.to_string());
    let mut tablet = SseReader::open(&url, resume_from.as_deref()).await;
    while seen.last().map(|(id, _, _)| *id) != Some(last) {
        let (id, event, data) = tablet.next().await;
        fold(&mut stations, &event, &data);
        seen.push((id.parse().expect("numeric id"), event, data));
    }

    // Exactly the server's sequence: a fresh full replay of the log gives the same events.
    let mut replay = SseReader::open(&url, Some("0")).await;
    let mut server = Vec::new();
    while server.len() < seen.len() {
        let (id, event, data) = replay.next().await;
        server.push((id.parse::<i64>().expect("numeric id"), event, data));
    }
    let ids: Vec<i64> = seen.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, (1..=last).collect::<Vec<_>>(), "no gap, no duplicate");
    assert_eq!(seen, server);
    let created = seen
        .iter()
        .filter(|(_, event, _)| event == "order.created")
        .count();
    let cancelled = seen
        .iter()
        .filter(|(_, event, _)| event == "order.cancelled")
        .count();
    assert_eq!((created, cancelled), (500, 50));

    // What the tablet folded from the stream is what the server says (batch.updated gives the
    // number of orders, not their ids).
    let folded: BTreeMap<(String, String), (u64, u64)> = stations
        .into_values()
        .flatten()
        .map(|item| {
            (
                (
                    item["station_id"].as_str().unwrap_or("").to_owned(),
                    item["item_id"].as_str().unwrap_or("").to_owned(),
                ),
                (
                    item["quantity"].as_u64().unwrap_or(0),
                    item["order_count"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect();
    let expected_counts: BTreeMap<(String, String), (u64, u64)> = expected
        .iter()
        .map(|(key, (quantity, orders))| (key.clone(), (*quantity, orders.len() as u64)))
        .collect();
    assert_eq!(folded, expected_counts);

    // A station's own stream: a snapshot of its items, then only its events.
    let mut fryer = SseReader::open(&format!("{url}?station=fry"), None).await;
    let (_, event, data) = fryer.next().await;
    assert_eq!(event, "snapshot");
    let fry_items = data["batches"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        board_of(&fry_items),
        expected
            .clone()
            .into_iter()
            .filter(|((station, _), _)| station == "fry")
            .collect()
    );
    let tickets = data["orders"].as_array().map_or(0, Vec::len);
    assert_eq!(tickets, 450, "every open order has fries");

    kitchen.stop().await;
}
