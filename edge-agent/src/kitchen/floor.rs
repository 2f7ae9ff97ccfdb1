//! The kitchen floor's commands (docs/floor.md): a cook acknowledging an order's allergen
//! warning at a station, Expo or a manager marking an order rush, and the rule that a station
//! bumps an order with an allergen warning only once its cook acknowledged it there.

use std::collections::BTreeSet;

use rusqlite::{OptionalExtension, Transaction, params};

use crate::{
    batch,
    record::{AllergenAck, ItemUnits, LineDone, Record, Rush, Ticket, allergen_flags},
    store::{self, StoreError},
};

use super::{Kitchen, Touched, orders::BumpRequest, totals::State};

/// Why a floor command was refused; the text is what the cook sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FloorRejection {
    #[error("no order {0:?}")]
    NoOrder(String),
    #[error("order {0:?} is not open")]
    NotOpen(String),
    #[error("order {0:?} has no allergen warning to acknowledge")]
    NoAllergen(String),
    #[error(
        "order {order_id:?} has an allergen warning ({words}): acknowledge it at this station \
         before bumping"
    )]
    AllergenNotAcknowledged { order_id: String, words: String },
    #[error("order {order_id:?} has no line {line_no}")]
    NoLine { order_id: String, line_no: i64 },
    #[error("line {line_no} is a modifier: tap off the order's line it belongs to")]
    NotALine { line_no: i64 },
    #[error("line {line_no} of order {order_id:?} has nothing made at this station")]
    NothingHere { order_id: String, line_no: i64 },
}

/// The top-level line starting at pre-order position `line_no` (lines and modifiers counted
/// from 0, as the store numbers them).
fn line_at(lines: &[batch::Line], line_no: i64) -> Option<&batch::Line> {
    fn size(line: &batch::Line) -> i64 {
        1 + line.modifiers.iter().map(size).sum::<i64>()
    }
    let mut start = 0;
    for line in lines {
        if start == line_no {
            return Some(line);
        }
        start += size(line);
    }
    None
}

/// The words of a ticket's allergen warnings, each once, in the order found.
fn warning_words(ticket: &Ticket, words: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    allergen_flags(ticket, words)
        .into_iter()
        .flat_map(|flag| flag.words)
        .filter(|word| seen.insert(word.clone()))
        .collect()
}

impl State {
    /// The open order's ticket as the store has it (none: not open).
    fn open_ticket(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
    ) -> Result<Option<Ticket>, StoreError> {
        Ok(store::load_tickets(tx, Some(order_id))?.pop())
    }

    /// Why `station` may not bump the order yet: an allergen warning its cook has not
    /// acknowledged. None: it may (also for an order that is not open: the bump decides).
    pub(super) fn unacknowledged(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
        station: &str,
    ) -> Result<Option<FloorRejection>, StoreError> {
        let Some(ticket) = self.open_ticket(tx, order_id)? else {
            return Ok(None);
        };
        let words = warning_words(&ticket, &self.reference.floor.allergen_words());
        if words.is_empty() || ticket.allergen_acks.iter().any(|s| s == station) {
            return Ok(None);
        }
        Ok(Some(FloorRejection::AllergenNotAcknowledged {
            order_id: order_id.to_owned(),
            words: words.join(", "),
        }))
    }

    /// The stations an order's records concern: those it needs, and `extra`.
    pub(super) fn tags(&self, order_id: &str, extra: Option<&str>) -> Vec<String> {
        let mut tags: BTreeSet<String> = extra.map(str::to_owned).into_iter().collect();
        if let Some(held) = self.orders.get(order_id) {
            tags.extend(held.stations());
        }
        tags.into_iter().collect()
    }
}

impl Kitchen {
    /// Bumps an order at one station, as a cook does: refused while the order has an allergen
    /// warning nobody acknowledged at that station.
    pub fn bump_at_station(
        &mut self,
        order_id: &str,
        station: &str,
        device: &str,
        now_ms: i64,
    ) -> Result<Result<Vec<String>, FloorRejection>, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            if let Some(rejection) = state.unacknowledged(tx, order_id, station)? {
                return Ok((Err(rejection), Touched::default()));
            }
            let stations = [station.to_owned()];
            let request = BumpRequest {
                order_id,
                stations: &stations,
                bumped: true,
                device,
            };
            match state.set_bumps(tx, request, now_ms, pending)? {
                None => Ok((
                    Err(FloorRejection::NoOrder(order_id.to_owned())),
                    Touched::default(),
                )),
                Some(changed) => {
                    let touched = if changed.is_empty() {
                        Touched::default()
                    } else {
                        Touched::orders([order_id.to_owned()])
                    };
                    Ok((Ok(changed), touched))
                }
            }
        })
    }

    /// A cook acknowledges the order's allergen warning at `station`; logs
    /// `order.allergen_acknowledged` the first time. Idempotent.
    pub fn acknowledge_allergen(
        &mut self,
        order_id: &str,
        station: &str,
        device: &str,
        now_ms: i64,
    ) -> Result<Result<AllergenAck, FloorRejection>, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            let Some(ticket) = state.open_ticket(tx, order_id)? else {
                return Ok((
                    Err(FloorRejection::NotOpen(order_id.to_owned())),
                    Touched::default(),
                ));
            };
            let words = warning_words(&ticket, &state.reference.floor.allergen_words());
            if words.is_empty() {
                return Ok((
                    Err(FloorRejection::NoAllergen(order_id.to_owned())),
                    Touched::default(),
                ));
            }
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO allergen_acks (order_id, station_id, acknowledged_at, device)
                 VALUES (?1, ?2, ?3, ?4)",
                params![order_id, station, now_ms, device],
            )?;
            let ack = AllergenAck {
                order_id: order_id.to_owned(),
                station_id: station.to_owned(),
                words,
                device: device.to_owned(),
            };
            if inserted == 1 {
                let tags = state.tags(order_id, Some(station));
                let record = Record::AllergenAcknowledged(ack.clone());
                pending
                    .log
                    .push(store::append_log(tx, &record, Some(&tags), now_ms)?);
            }
            Ok((Ok(ack), Touched::default()))
        })
    }

    /// Marks an open order rush (or takes the mark off); logs `order.rushed` when that changed
    /// anything. Marking it again keeps its first time.
    pub fn rush(
        &mut self,
        order_id: &str,
        rush: bool,
        device: &str,
        now_ms: i64,
    ) -> Result<Result<Rush, FloorRejection>, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            let held: Option<Option<i64>> = tx
                .query_row(
                    "SELECT rush_at FROM orders WHERE order_id = ?1 AND state = 'open'",
                    [order_id],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(before) = held else {
                return Ok((
                    Err(FloorRejection::NotOpen(order_id.to_owned())),
                    Touched::default(),
                ));
            };
            let after = if rush { before.or(Some(now_ms)) } else { None };
            let change = Rush {
                order_id: order_id.to_owned(),
                rush,
                device: device.to_owned(),
                rush_at_ms: after,
            };
            if after != before {
                tx.execute(
                    "UPDATE orders SET rush_at = ?2, rush_by = ?3 WHERE order_id = ?1",
                    params![order_id, after, rush.then_some(device)],
                )?;
                let tags = state.tags(order_id, None);
                let record = Record::OrderRushed(change.clone());
                pending
                    .log
                    .push(store::append_log(tx, &record, Some(&tags), now_ms)?);
            }
            Ok((Ok(change), Touched::default()))
        })
    }
}

impl Kitchen {
    /// A cook taps an order's line off at `station` (`done`), or back on: the units that line
    /// makes at the station leave (or rejoin) its counts. Logs `order.line_done` when that
    /// changed anything; tapping a line twice changes nothing.
    pub fn tap_line(
        &mut self,
        order_id: &str,
        line_no: i64,
        station: &str,
        done: bool,
        device: &str,
        now_ms: i64,
    ) -> Result<Result<LineDone, FloorRejection>, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            let refuse = |rejection| Ok((Err(rejection), Touched::default()));
            let Some(order) = store::load_orders(tx, Some(order_id))?.pop() else {
                return refuse(FloorRejection::NotOpen(order_id.to_owned()));
            };
            let parent: Option<Option<i64>> = tx
                .query_row(
                    "SELECT parent_no FROM order_lines WHERE order_id = ?1 AND line_no = ?2",
                    params![order_id, line_no],
                    |row| row.get(0),
                )
                .optional()?;
            match parent {
                None => {
                    return refuse(FloorRejection::NoLine {
                        order_id: order_id.to_owned(),
                        line_no,
                    });
                }
                Some(Some(_)) => return refuse(FloorRejection::NotALine { line_no }),
                Some(None) => {}
            }
            let Some(line) = line_at(&order.lines, line_no) else {
                return refuse(FloorRejection::NoLine {
                    order_id: order_id.to_owned(),
                    line_no,
                });
            };
            let alone = batch::Order {
                lines: vec![line.clone()],
                bumped_at: Default::default(),
                done: Default::default(),
                ..order.clone()
            };
            let items: Vec<ItemUnits> = batch::contributions(&alone, &state.reference)
                .into_iter()
                .filter(|c| c.station_id == station && c.units > 0)
                .map(|c| ItemUnits {
                    item_id: c.item_id,
                    units: c.units,
                })
                .collect();
            if items.is_empty() {
                return refuse(FloorRejection::NothingHere {
                    order_id: order_id.to_owned(),
                    line_no,
                });
            }
            let changed = if done {
                let mut inserted = 0;
                for item in &items {
                    inserted += tx.execute(
                        "INSERT OR IGNORE INTO line_done
                             (order_id, line_no, station_id, item_id, units, done_at, device)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            order_id,
                            line_no,
                            station,
                            item.item_id,
                            item.units,
                            now_ms,
                            device
                        ],
                    )?;
                }
                inserted > 0
            } else {
                tx.execute(
                    "DELETE FROM line_done WHERE order_id = ?1 AND line_no = ?2 AND station_id = ?3",
                    params![order_id, line_no, station],
                )? > 0
            };
            let change = LineDone {
                order_id: order_id.to_owned(),
                line_no,
                station_id: station.to_owned(),
                done,
                items,
                device: device.to_owned(),
            };
            if !changed {
                return Ok((Ok(change), Touched::default()));
            }
            let tags = state.tags(order_id, Some(station));
            let record = Record::LineTapped(change.clone());
            pending
                .log
                .push(store::append_log(tx, &record, Some(&tags), now_ms)?);
            Ok((Ok(change), Touched::orders([order_id.to_owned()])))
        })
    }
}
