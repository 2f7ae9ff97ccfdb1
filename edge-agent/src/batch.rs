//! Batch items — how many of each item every station must prep now (the "all day" count) — from
//! open orders, the reference data and the current time. Pure: no IO, no clock.
//!
//! Every order line and modifier that resolves to a reference item contributes
//! `quantity × the product of its ancestors' quantities` units of that item at the item's
//! station; a modifier that resolves to nothing stays on its parent for display (its children
//! still count); a top-level line that resolves to nothing goes to the `unassigned` station.

use std::collections::{BTreeMap, BTreeSet};

use kitchen_proto::reference::{Reference, UNASSIGNED_STATION};

/// An order line or modifier as Otter sent it; modifiers nest to any depth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    pub item_id: Option<String>,
    pub sku_id: Option<String>,
    pub name: Option<String>,
    /// Units (a line) or times per unit of the parent (a modifier).
    pub quantity: u32,
    pub modifiers: Vec<Line>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OrderState {
    #[default]
    Open,
    /// Ready, handed off or fulfilled: nothing left to make.
    Closed,
    Cancelled,
}

/// An order as the calculation needs it. Times are Unix milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub state: OrderState,
    pub received_at_ms: i64,
    pub ordered_at_ms: Option<i64>,
    pub pickup_time_ms: Option<i64>,
    pub estimated_pickup_time_ms: Option<i64>,
    pub estimated_prep_seconds: Option<u32>,
    /// Otter `schedulingType` `FIXED_TIME`: held back until its fire time is near.
    pub scheduled: bool,
    pub lines: Vec<Line>,
    /// Stations where the order was bumped: nothing of it is outstanding there.
    pub bumped_at: BTreeSet<String>,
    /// Units completed by batch sessions, per (station, item).
    pub done: BTreeMap<(String, String), u32>,
}

impl Order {
    /// When the order is promised: pickup time, else estimated pickup, else ordered-at plus the
    /// estimated preparation time, else the time it was received.
    pub fn promised_at_ms(&self) -> i64 {
        self.pickup_time_ms
            .or(self.estimated_pickup_time_ms)
            .or_else(|| {
                let ordered = self.ordered_at_ms?;
                Some(ordered + i64::from(self.estimated_prep_seconds?) * 1000)
            })
            .unwrap_or(self.received_at_ms)
    }
}

/// Units of one item an order needs at one station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    pub station_id: String,
    pub item_id: String,
    pub item_name: String,
    pub prep_seconds: u32,
    pub units: u32,
}

/// What a station must prep now: one row per (station, item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    pub station_id: String,
    pub item_id: String,
    pub item_name: String,
    /// Outstanding units over open orders.
    pub quantity: u32,
    pub prep_seconds: u32,
    /// Earliest, over contributing orders, of promised time − prep time.
    pub due_at_ms: i64,
    pub order_ids: Vec<String>,
}

/// A scheduled order not counted yet, and when it will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upcoming {
    pub order_id: String,
    pub fire_at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    /// Sorted by station, then due time, then item.
    pub items: Vec<BatchItem>,
    /// Sorted by fire time.
    pub upcoming: Vec<Upcoming>,
}

/// Item id used on the `unassigned` station for a line no reference item matches.
fn unassigned_item_id(line: &Line) -> String {
    match (&line.item_id, &line.sku_id, &line.name) {
        (Some(id), _, _) if !id.trim().is_empty() => id.trim().to_owned(),
        (_, Some(sku), _) if !sku.trim().is_empty() => sku.trim().to_owned(),
        (_, _, name) => format!(
            "name:{}",
            name.as_deref().unwrap_or("").trim().to_lowercase()
        ),
    }
}

/// Everything an order needs, per (station, item), before bumps and completed batches.
pub fn contributions(order: &Order, reference: &Reference) -> Vec<Contribution> {
    let mut totals: BTreeMap<(String, String), Contribution> = BTreeMap::new();
    let mut add = |contribution: Contribution| {
        let key = (
            contribution.station_id.clone(),
            contribution.item_id.clone(),
        );
        totals
            .entry(key)
            .and_modify(|existing| existing.units += contribution.units)
            .or_insert(contribution);
    };
    for line in &order.lines {
        match resolve(reference, line) {
            Some(contribution) => add(contribution.with_units(line.quantity)),
            None => add(Contribution {
                station_id: UNASSIGNED_STATION.to_owned(),
                item_id: unassigned_item_id(line),
                item_name: line.name.clone().unwrap_or_default(),
                prep_seconds: 0,
                units: line.quantity,
            }),
        }
        walk_modifiers(reference, &line.modifiers, line.quantity, &mut add);
    }
    totals.into_values().collect()
}

fn walk_modifiers(
    reference: &Reference,
    modifiers: &[Line],
    parent_units: u32,
    add: &mut impl FnMut(Contribution),
) {
    for modifier in modifiers {
        let units = parent_units.saturating_mul(modifier.quantity);
        if let Some(contribution) = resolve(reference, modifier) {
            add(contribution.with_units(units));
        }
        walk_modifiers(reference, &modifier.modifiers, units, add);
    }
}

fn resolve(reference: &Reference, line: &Line) -> Option<Contribution> {
    let item = reference.resolve(
        line.item_id.as_deref(),
        line.sku_id.as_deref(),
        line.name.as_deref(),
    )?;
    Some(Contribution {
        station_id: item.station.clone(),
        item_id: item.id.clone(),
        item_name: item.name.clone(),
        prep_seconds: item.prep_seconds,
        units: 0,
    })
}

impl Contribution {
    fn with_units(mut self, units: u32) -> Self {
        self.units = units;
        self
    }

    fn due_at_ms(&self, order: &Order) -> i64 {
        order.promised_at_ms() - i64::from(self.prep_seconds) * 1000
    }
}

/// Everything `order` needs, per (station, item) as `contributions` gives it, each with the
/// units still to make: none at a station where it was bumped, less completed batches, none
/// at all for an order that is not open.
pub fn needs(order: &Order, reference: &Reference) -> Vec<(Contribution, u32)> {
    contributions(order, reference)
        .into_iter()
        .map(|c| {
            let left = if order.state != OrderState::Open || order.bumped_at.contains(&c.station_id)
            {
                0
            } else {
                let key = (c.station_id.clone(), c.item_id.clone());
                let done = order.done.get(&key).copied().unwrap_or(0);
                c.units.saturating_sub(done)
            };
            (c, left)
        })
        .collect()
}

/// What of `order` is still to make, per (station, item): contributions less bumps and
/// completed batches; nothing for an order that is not open.
pub fn outstanding(order: &Order, reference: &Reference) -> Vec<Contribution> {
    if order.state != OrderState::Open {
        return Vec::new();
    }
    needs(order, reference)
        .into_iter()
        .filter(|(_, left)| *left > 0)
        .map(|(c, left)| c.with_units(left))
        .collect()
}

/// An open order with something to make, whose every unit at every station is done (bumped
/// or batched), is ready.
pub fn is_ready(order: &Order, reference: &Reference) -> bool {
    order.state == OrderState::Open
        && !order.lines.is_empty()
        && outstanding(order, reference).is_empty()
}

/// When a scheduled order enters the count: its earliest due time.
fn fire_at_ms(order: &Order, outstanding: &[Contribution]) -> i64 {
    outstanding
        .iter()
        .map(|c| c.due_at_ms(order))
        .min()
        .unwrap_or_else(|| order.promised_at_ms())
}

/// The batch items of every station. Scheduled orders whose fire time is more than
/// `horizon_ms` after `now_ms` are listed as upcoming instead of counted.
pub fn board(orders: &[Order], reference: &Reference, now_ms: i64, horizon_ms: i64) -> Board {
    let mut rows: BTreeMap<(String, String), BatchItem> = BTreeMap::new();
    let mut upcoming = Vec::new();
    for order in orders {
        let outstanding = outstanding(order, reference);
        if outstanding.is_empty() {
            continue;
        }
        if order.scheduled {
            let fire_at_ms = fire_at_ms(order, &outstanding);
            if fire_at_ms > now_ms + horizon_ms {
                upcoming.push(Upcoming {
                    order_id: order.order_id.clone(),
                    fire_at_ms,
                });
                continue;
            }
        }
        for contribution in outstanding {
            let due_at_ms = contribution.due_at_ms(order);
            let key = (
                contribution.station_id.clone(),
                contribution.item_id.clone(),
            );
            let row = rows.entry(key).or_insert_with(|| BatchItem {
                station_id: contribution.station_id.clone(),
                item_id: contribution.item_id.clone(),
                item_name: contribution.item_name.clone(),
                quantity: 0,
                prep_seconds: contribution.prep_seconds,
                due_at_ms,
                order_ids: Vec::new(),
            });
            row.quantity = row.quantity.saturating_add(contribution.units);
            row.due_at_ms = row.due_at_ms.min(due_at_ms);
            row.order_ids.push(order.order_id.clone());
        }
    }
    let mut items: Vec<BatchItem> = rows.into_values().collect();
    for item in &mut items {
        item.order_ids.sort();
        item.order_ids.dedup();
    }
    items.sort_by(|a, b| {
        (&a.station_id, a.due_at_ms, &a.item_id).cmp(&(&b.station_id, b.due_at_ms, &b.item_id))
    });
    upcoming.sort_by_key(|u| (u.fire_at_ms, u.order_id.clone()));
    Board { items, upcoming }
}

/// Whether a scheduled order is still held back at `now_ms` (its fire time beyond the horizon).
pub fn is_upcoming(
    order: &Order,
    outstanding: &[Contribution],
    now_ms: i64,
    horizon_ms: i64,
) -> bool {
    order.scheduled
        && !outstanding.is_empty()
        && fire_at_ms(order, outstanding) > now_ms + horizon_ms
}

/// Completing a batch of `units` of `item_id` at `station_id`: which orders those units go to,
/// most urgent (earliest due) first, each getting at most what it still needs. Units beyond
/// what open orders need are not assigned (the cook made extra).
pub fn allocate_batch(
    orders: &[Order],
    reference: &Reference,
    station_id: &str,
    item_id: &str,
    units: u32,
) -> Vec<(String, u32)> {
    let needs: Vec<(i64, &str, u32)> = orders
        .iter()
        .filter_map(|order| {
            let need = outstanding(order, reference)
                .into_iter()
                .find(|c| c.station_id == station_id && c.item_id == item_id)?;
            Some((need.due_at_ms(order), order.order_id.as_str(), need.units))
        })
        .collect();
    allocate(needs, units)
}

/// `allocate_batch` over what each order still needs of the item, already known: (due time,
/// order, outstanding units) per order that needs it.
pub fn allocate<'a>(
    needs: impl IntoIterator<Item = (i64, &'a str, u32)>,
    units: u32,
) -> Vec<(String, u32)> {
    let mut needs: Vec<(i64, &str, u32)> =
        needs.into_iter().filter(|(_, _, need)| *need > 0).collect();
    needs.sort();
    let mut left = units;
    let mut allocation = Vec::new();
    for (_, order_id, need) in needs {
        if left == 0 {
            break;
        }
        let taken = need.min(left);
        allocation.push((order_id.to_owned(), taken));
        left -= taken;
    }
    allocation
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    /// 2025-03-14T18:40:00Z
    const NOW: i64 = 1_741_977_600_000;

    fn reference() -> Reference {
        Reference::parse(include_str!("../tests/fixtures/three_stations.toml"))
            .expect("valid reference")
    }

    fn line(name: &str, quantity: u32, modifiers: Vec<Line>) -> Line {
        Line {
            name: Some(name.to_owned()),
            quantity,
            modifiers,
            ..Line::default()
        }
    }

    /// The reference order's burger line: 2 × burger with cheese and a meal of fries (large)
    /// and a cola, three levels deep.
    fn burger_meal(quantity: u32) -> Line {
        Line {
            sku_id: Some("sku-smash-double".into()),
            ..line(
                "Double Smash Burger",
                quantity,
                vec![
                    line("American Cheese", 1, vec![]),
                    line(
                        "Make it a Meal",
                        1,
                        vec![
                            line("Fries", 1, vec![line("Large", 1, vec![])]),
                            line("Cola", 1, vec![]),
                        ],
                    ),
                ],
            )
        }
    }

    fn order(id: &str, pickup_in_minutes: i64, lines: Vec<Line>) -> Order {
        Order {
            order_id: id.to_owned(),
            received_at_ms: NOW,
            pickup_time_ms: Some(NOW + pickup_in_minutes * MINUTE),
            lines,
            ..Order::default()
        }
    }

    /// (station, item, quantity, due in minutes from NOW, orders)
    type Row<'a> = (&'a str, &'a str, u32, f64, &'a [&'a str]);

    fn check(orders: &[Order], expected: &[Row]) {
        let board = board(orders, &reference(), NOW, 20 * MINUTE);
        let actual: Vec<(String, String, u32, f64, Vec<String>)> = board
            .items
            .iter()
            .map(|i| {
                (
                    i.station_id.clone(),
                    i.item_id.clone(),
                    i.quantity,
                    (i.due_at_ms - NOW) as f64 / MINUTE as f64,
                    i.order_ids.clone(),
                )
            })
            .collect();
        let expected: Vec<(String, String, u32, f64, Vec<String>)> = expected
            .iter()
            .map(|(s, i, q, d, o)| {
                (
                    (*s).into(),
                    (*i).into(),
                    *q,
                    *d,
                    o.iter().map(|x| (*x).to_owned()).collect(),
                )
            })
            .collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn nested_modifiers_multiply_down_to_station_items() {
        // 2 burgers, each a meal: 2 fries and 2 colas; cheese, meal and size are display only.
        check(
            &[order("o1", 15, vec![burger_meal(2)])],
            &[
                ("drinks", "cola", 2, 14.5, &["o1"]),
                ("fry", "fries", 2, 12.0, &["o1"]),
                ("grill", "smash", 2, 8.0, &["o1"]),
            ],
        );
    }

    #[test]
    fn unknown_lines_go_to_unassigned_and_unknown_modifiers_are_not_counted() {
        check(
            &[order(
                "o1",
                10,
                vec![line("Mystery Box", 3, vec![line("No pickles", 1, vec![])])],
            )],
            &[("unassigned", "name:mystery box", 3, 10.0, &["o1"])],
        );
    }

    #[test]
    fn counts_sum_over_orders_and_due_is_the_earliest() {
        check(
            &[
                order("o1", 30, vec![burger_meal(1)]),
                order("o2", 12, vec![line("Fries", 2, vec![])]),
            ],
            &[
                ("drinks", "cola", 1, 29.5, &["o1"]),
                ("fry", "fries", 3, 9.0, &["o1", "o2"]),
                ("grill", "smash", 1, 23.0, &["o1"]),
            ],
        );
    }

    #[test]
    fn cancelled_closed_and_bumped_orders_drop_out() {
        let mut cancelled = order("o1", 15, vec![burger_meal(1)]);
        cancelled.state = OrderState::Cancelled;
        let mut closed = order("o2", 15, vec![burger_meal(1)]);
        closed.state = OrderState::Closed;
        let mut bumped_at_fry = order("o3", 15, vec![burger_meal(1)]);
        bumped_at_fry.bumped_at.insert("fry".into());
        check(
            &[cancelled, closed, bumped_at_fry],
            &[
                ("drinks", "cola", 1, 14.5, &["o3"]),
                ("grill", "smash", 1, 8.0, &["o3"]),
            ],
        );
    }

    #[test]
    fn a_completed_batch_serves_the_most_urgent_orders_first() {
        let orders = [
            order("late", 40, vec![line("Fries", 2, vec![])]),
            order("soon", 10, vec![line("Fries", 2, vec![])]),
            order("mid", 20, vec![line("Fries", 2, vec![])]),
        ];
        let allocation = allocate_batch(&orders, &reference(), "fry", "fries", 3);
        assert_eq!(allocation, [("soon".to_owned(), 2), ("mid".to_owned(), 1)]);
        let orders: Vec<Order> = orders
            .into_iter()
            .map(|mut o| {
                if let Some((_, units)) = allocation.iter().find(|(id, _)| *id == o.order_id) {
                    o.done.insert(("fry".into(), "fries".into()), *units);
                }
                o
            })
            .collect();
        check(&orders, &[("fry", "fries", 3, 17.0, &["late", "mid"])]);
        assert!(is_ready(&orders[1], &reference()));
        assert!(!is_ready(&orders[2], &reference()));
        // More than is needed: the rest is not assigned to anyone.
        let allocation = allocate_batch(&orders, &reference(), "fry", "fries", 10);
        assert_eq!(allocation, [("mid".to_owned(), 1), ("late".to_owned(), 2)]);
    }

    #[test]
    fn scheduled_orders_wait_until_their_fire_time_is_near() {
        let mut scheduled = order("later", 60, vec![line("Fries", 1, vec![])]);
        scheduled.scheduled = true;
        let reference = reference();
        let board_now = board(
            std::slice::from_ref(&scheduled),
            &reference,
            NOW,
            20 * MINUTE,
        );
        assert!(board_now.items.is_empty());
        assert_eq!(
            board_now.upcoming,
            [Upcoming {
                order_id: "later".into(),
                fire_at_ms: NOW + 57 * MINUTE
            }]
        );
        // 40 minutes on, it is inside the 20-minute horizon and counts.
        let board_later = board(&[scheduled], &reference, NOW + 40 * MINUTE, 20 * MINUTE);
        assert!(board_later.upcoming.is_empty());
        assert_eq!(board_later.items.len(), 1);
        assert_eq!(board_later.items[0].quantity, 1);
    }

    #[test]
    fn promised_time_falls_back_in_order() {
        let base = Order {
            received_at_ms: 1_000,
            ..Order::default()
        };
        let check = |order: Order, expected: i64| assert_eq!(order.promised_at_ms(), expected);
        check(base.clone(), 1_000);
        check(
            Order {
                ordered_at_ms: Some(500),
                estimated_prep_seconds: Some(60),
                ..base.clone()
            },
            60_500,
        );
        check(
            Order {
                estimated_pickup_time_ms: Some(9_000),
                ordered_at_ms: Some(500),
                estimated_prep_seconds: Some(60),
                ..base.clone()
            },
            9_000,
        );
        check(
            Order {
                pickup_time_ms: Some(7_000),
                estimated_pickup_time_ms: Some(9_000),
                ..base
            },
            7_000,
        );
    }
}
