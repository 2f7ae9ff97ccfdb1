//! The kitchen's live state, owned by the store writer's thread. Every change — an order event,
//! a bump or recall, a batch session, the clock moving a scheduled order into the count — is
//! one SQLite transaction that also appends what it changed to the event log: the order event,
//! `order.ready` for orders it finished, and `batch.updated` for every station whose batch
//! items moved. The log therefore always agrees with the data, and a display that replays it
//! ends exactly where a fresh snapshot would.
//!
//! The open orders, what is outstanding of each, and the per-(station, item) totals are kept in
//! memory in step with the store and updated incrementally: a change costs what it touches, not
//! the number of open orders. The tests check the totals against the pure `batch::board`.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    sync::Arc,
};

use kitchen_proto::OrderEvent;
use rusqlite::Transaction;
use serde_json::{Value, json};

use crate::{
    batch::{self, BatchItem, Contribution},
    reference::{Reference, UNASSIGNED_STATION},
    scan::{Scan, ScanError, ScanRole},
    store::{self, Allocation, Applied, Change, LoggedEvent, Session, Store, StoreError},
};

/// Largest batch a cook can start: guards against a fat-fingered 10000.
pub const MAX_BATCH: u32 = 999;

/// An open order and what is left of it.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    order: batch::Order,
    outstanding: Vec<Contribution>,
    /// Every station the order needs (done or not).
    stations: Vec<String>,
    /// In the count (not a scheduled order still beyond the horizon).
    counted: bool,
}

impl Held {
    /// What the totals take from it: nothing unless counted.
    fn counts_for(&self) -> impl Iterator<Item = (&Contribution, i64)> {
        let promised = self.order.promised_at_ms();
        self.outstanding
            .iter()
            .filter(|_| self.counted)
            .map(move |c| (c, promised - i64::from(c.prep_seconds) * 1000))
    }
}

/// The total of one item at one station over the counted open orders.
#[derive(Debug, Clone, Default)]
struct Total {
    item_name: String,
    prep_seconds: u32,
    quantity: u32,
    /// Units and due time per contributing order.
    orders: BTreeMap<String, (u32, i64)>,
    /// (due, order) to find the earliest at once.
    dues: BTreeSet<(i64, String)>,
}

impl Total {
    fn due_at_ms(&self) -> i64 {
        self.dues.first().map_or(0, |(due, _)| *due)
    }
}

/// Why a batch could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("unknown station {0:?}")]
    UnknownStation(String),
    #[error("no item {item:?} at station {station:?}")]
    UnknownItem { station: String, item: String },
    #[error("nothing of {0:?} is outstanding; give a quantity")]
    NothingOutstanding(String),
    #[error("quantity must be between 1 and {MAX_BATCH}")]
    BadQuantity,
}

/// What a transaction logged and which stations' items it moved.
#[derive(Default)]
struct Pending {
    log: Vec<LoggedEvent>,
    moved: BTreeSet<String>,
    /// Orders already reloaded from this transaction (and taken into memory).
    reloaded: BTreeSet<String>,
}

pub struct Kitchen {
    store: Store,
    state: State,
    /// Committed log entries not yet handed to the live streams.
    committed: Vec<LoggedEvent>,
}

/// What the kitchen holds in memory, in step with the store.
struct State {
    reference: Arc<Reference>,
    horizon_ms: i64,
    orders: BTreeMap<String, Held>,
    /// Per (station, item).
    items: BTreeMap<(String, String), Total>,
    /// Unknown items already warned about (logged once each).
    unassigned_seen: HashSet<String>,
}

impl Kitchen {
    pub fn open(
        store: Store,
        reference: Arc<Reference>,
        horizon_ms: i64,
        now_ms: i64,
    ) -> Result<Self, StoreError> {
        let mut state = State {
            reference,
            horizon_ms,
            orders: BTreeMap::new(),
            items: BTreeMap::new(),
            unassigned_seen: HashSet::new(),
        };
        state.reload(&store, now_ms)?;
        Ok(Self {
            store,
            state,
            committed: Vec::new(),
        })
    }

    /// Log entries committed since the last call, oldest first.
    pub fn take_committed(&mut self) -> Vec<LoggedEvent> {
        std::mem::take(&mut self.committed)
    }

    /// Runs `change` in one transaction, then (same transaction) reloads the orders it names,
    /// logs `order.ready` for those now finished and `batch.updated` for each station whose
    /// items moved (and those in `force`), and commits. Memory is updated as it goes; if the
    /// transaction fails it is rebuilt from the store, which rolled back.
    fn write<T>(
        &mut self,
        now_ms: i64,
        change: impl FnOnce(
            &mut State,
            &Transaction<'_>,
            &mut Pending,
        ) -> Result<(T, Touched), StoreError>,
    ) -> Result<T, StoreError> {
        let mut pending = Pending::default();
        let state = &mut self.state;
        let result = (|| {
            let tx = self.store.transaction()?;
            let (value, touched) = change(state, &tx, &mut pending)?;
            state.settle(&tx, &touched, now_ms, &mut pending)?;
            tx.commit()?;
            Ok(value)
        })();
        match result {
            Ok(value) => {
                self.committed.extend(pending.log);
                Ok(value)
            }
            Err(error) => {
                if let Err(reload) = self.state.reload(&self.store, now_ms) {
                    tracing::error!(%reload, "cannot reload the kitchen state after a failed write");
                }
                Err(error)
            }
        }
    }

    /// Applies an order event (see `store::apply_event`) and logs it with what it moved.
    pub fn apply(&mut self, event: &OrderEvent, now_ms: i64) -> Result<Applied, StoreError> {
        let mut applied = self.apply_all(std::slice::from_ref(event), now_ms)?;
        Ok(applied.pop().unwrap_or(Applied::Duplicate))
    }

    /// Applies events in order in one transaction (one commit, one recalculation of the
    /// batch items): what the feed does with the deliveries it has in hand.
    pub fn apply_all(
        &mut self,
        events: &[OrderEvent],
        now_ms: i64,
    ) -> Result<Vec<Applied>, StoreError> {
        let applied = self.write(now_ms, |state, tx, pending| {
            let mut results = Vec::with_capacity(events.len());
            let mut touched = Vec::new();
            for event in events {
                let applied = store::apply_event(tx, event, now_ms)?;
                if let Applied::Applied { change, .. } = applied {
                    state.log_order_event(tx, event, change, now_ms, pending)?;
                    touched.push(event.order_id.clone());
                }
                results.push(applied);
            }
            Ok((results, Touched::orders(touched)))
        })?;
        for (event, applied) in events.iter().zip(&applied) {
            if let Applied::Applied {
                change: Change::Created,
                ..
            } = applied
            {
                self.announce(event);
            }
        }
        Ok(applied)
    }

    /// The console block for a new order: what each station must make for it.
    fn announce(&mut self, event: &OrderEvent) {
        let state = &mut self.state;
        let Some(held) = state.orders.get(&event.order_id) else {
            return;
        };
        let mut block = String::new();
        let contributions = batch::contributions(&held.order, &state.reference);
        for station in &held.stations {
            let name = state.reference.station_name(station);
            let items: Vec<String> = contributions
                .iter()
                .filter(|c| &c.station_id == station)
                .map(|c| format!("{}× {}", c.units, c.item_name))
                .collect();
            block.push_str(&format!("\n  {name}: {}", items.join(", ")));
        }
        let promised = chrono::DateTime::from_timestamp_millis(held.order.promised_at_ms())
            .map(|t| t.format("%H:%M UTC").to_string())
            .unwrap_or_default();
        let ticket = if event.friendly_id.is_empty() {
            &event.order_id
        } else {
            &event.friendly_id
        };
        // One block: the header, a line per station, then the structured fields.
        tracing::info!(
            order_id = %event.order_id,
            store_id = %event.store_id,
            source = %event.source,
            "new order #{ticket} due {promised}{block}\n "
        );
        let unknown: Vec<String> = contributions
            .into_iter()
            .filter(|c| c.station_id == UNASSIGNED_STATION)
            .map(|c| c.item_name)
            .filter(|name| state.unassigned_seen.insert(name.clone()))
            .collect();
        for item in unknown {
            tracing::warn!(%item, "order line matches no reference item: counted at station unassigned");
        }
    }

    /// Bumps (or recalls) an order at stations. `None`: no such order.
    pub fn bump(
        &mut self,
        order_id: &str,
        stations: &[String],
        bumped: bool,
        now_ms: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            let changed = state.set_bumps(tx, order_id, stations, bumped, now_ms, pending)?;
            let touched = match &changed {
                Some(changed) if !changed.is_empty() => Touched::orders([order_id.to_owned()]),
                _ => Touched::default(),
            };
            Ok((changed, touched))
        })
    }

    /// A scan from `device` in its `role`. Recorded whatever it was, in the transaction of its
    /// effect, and logged as `scan.recorded` or `scan.rejected` (plus `stock.changed` when it
    /// moved stock). A station scanner's ticket (`ORDER:<id>`, or a friendly id only one open
    /// order has) bumps that order at its station, as a tap would; stock scans are `prep`'s.
    /// `frame_len` is how long the frame was before the scanner reader cut it (`raw.len()` when
    /// it was not cut); an over-long frame is rejected.
    pub fn scan(
        &mut self,
        device: &str,
        role: &ScanRole,
        raw: &[u8],
        frame_len: usize,
        now_ms: i64,
    ) -> Result<store::ScanRecord, StoreError> {
        let (today, _) = crate::prep::local_day(now_ms);
        let parsed = match frame_len.max(raw.len()) {
            len if len > crate::scan::MAX_FRAME_LEN => Err(ScanError::TooLong { len }),
            _ => crate::scan::parse(raw, today),
        };
        let station = role.station();
        // A scanner configured for a station the reference does not know records rejections.
        let unknown_station = station.is_some_and(|station| {
            station != UNASSIGNED_STATION && self.state.reference.station(station).is_none()
        });
        self.write(now_ms, |state, tx, pending| {
            let mut record = store::ScanRecord {
                scan_id: uuid::Uuid::now_v7().to_string(),
                device: device.to_owned(),
                code: String::from_utf8_lossy(raw).into_owned(),
                parsed: parsed.as_ref().ok().map(|scan| json!(scan)),
                role: role.name().to_owned(),
                action: "none".into(),
                accepted: false,
                reason: String::new(),
                order_id: None,
                station_id: station.map(str::to_owned),
                stock_id: None,
                scanned_at_ms: now_ms,
            };
            // Station displays see their station's scans; prep and receiving scans go to the
            // unfiltered streams (the prep display) only.
            let tags: Vec<String> = station.map(str::to_owned).into_iter().collect();
            let mut touched = Touched::default();
            let mut stock_change = None;
            match (&parsed, station) {
                (Err(error), _) => record.reason = error.to_string(),
                (Ok(_), Some(station)) if unknown_station => {
                    record.reason = format!("unknown station {station:?}");
                }
                (Ok(Scan::Ticket { order_id }), Some(station)) => {
                    state.scan_ticket(tx, order_id, station, &mut record, now_ms, pending)?;
                    touched = Touched::orders(record.order_id.clone().filter(|_| record.accepted));
                }
                (Ok(Scan::FriendlyId(friendly)), Some(station)) => {
                    match store::open_orders_by_friendly_id(tx, friendly)?.as_slice() {
                        [one] => {
                            state.scan_ticket(tx, one, station, &mut record, now_ms, pending)?;
                            touched = Touched::orders(
                                record.order_id.clone().filter(|_| record.accepted),
                            );
                        }
                        [] => record.reason = format!("no open order #{friendly}"),
                        many => {
                            record.reason = format!(
                                "{} open orders are #{friendly}: {}; scan the ticket barcode",
                                many.len(),
                                many.join(", ")
                            )
                        }
                    }
                }
                (Ok(scan), _) => {
                    let reference = state.reference.clone();
                    match crate::prep::stock_scan(
                        tx,
                        &reference,
                        role,
                        scan,
                        device,
                        &record.scan_id,
                        today,
                        now_ms,
                    )? {
                        Ok(moved) => {
                            record.action = moved.action.into();
                            record.accepted = true;
                            record.reason = moved.note;
                            record.stock_id = moved.lot.as_ref().map(|l| l.stock_id.clone());
                            stock_change = moved.lot.map(|lot| {
                                let change = if moved.action == "use" {
                                    "used"
                                } else {
                                    "added"
                                };
                                (change, lot, moved.transfer)
                            });
                        }
                        Err(reason) => record.reason = reason,
                    }
                }
            }
            store::insert_scan(tx, &record, raw)?;
            let kind = if record.accepted {
                "scan.recorded"
            } else {
                "scan.rejected"
            };
            pending.log.push(store::append_log(
                tx,
                kind,
                record.order_id.as_deref(),
                Some(&tags),
                &json!(record),
                now_ms,
            )?);
            if let Some((change, lot, transfer)) = stock_change {
                let data = json!({
                    "change": change,
                    "item_id": lot.item_id,
                    "lot": lot,
                    "transfer": transfer,
                    "scan_id": record.scan_id,
                });
                pending.log.push(store::append_log(
                    tx,
                    "stock.changed",
                    None,
                    Some(&tags),
                    &data,
                    now_ms,
                )?);
            }
            Ok((record, touched))
        })
    }

    /// Deletes outbox records PostgreSQL has committed.
    pub fn delete_synced(&mut self, last: i64) -> Result<usize, StoreError> {
        self.store.delete_synced(last)
    }

    /// Swaps in new reference data from `source`: cached in SQLite, every open order counted
    /// again against it, and logged as `reference.updated` followed by a `batch.updated` for
    /// every station (those that had items and those that have them now).
    pub fn set_reference(
        &mut self,
        reference: Arc<Reference>,
        source: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut stations: BTreeSet<String> =
            self.state.items.keys().map(|(s, _)| s.clone()).collect();
        self.store.save_reference(&reference, source, now_ms)?;
        self.state.reference = reference;
        self.state.reload(&self.store, now_ms)?;
        stations.extend(self.state.items.keys().map(|(s, _)| s.clone()));
        stations.extend(self.state.reference.stations.iter().map(|s| s.id.clone()));
        self.write(now_ms, |_, tx, pending| {
            pending.log.push(store::append_log(
                tx,
                "reference.updated",
                None,
                None,
                &json!({ "source": source }),
                now_ms,
            )?);
            Ok(((), Touched::stations(stations)))
        })
    }

    /// Discards open stock (`POST /api/stock/{id}/discard`), logged as `stock.changed`.
    pub fn discard_stock(
        &mut self,
        stock_id: &str,
        device: &str,
        now_ms: i64,
    ) -> Result<Result<store::Lot, String>, StoreError> {
        self.write(now_ms, |_, tx, pending| {
            let result = crate::prep::discard(tx, stock_id, device, now_ms)?;
            if let Ok(lot) = &result {
                let data = json!({
                    "change": "discarded",
                    "item_id": lot.item_id,
                    "lot": lot,
                    "transfer": null,
                    "scan_id": null,
                });
                pending.log.push(store::append_log(
                    tx,
                    "stock.changed",
                    None,
                    Some(&[]),
                    &data,
                    now_ms,
                )?);
            }
            Ok((result, Touched::default()))
        })
    }

    /// Starts a batch of `quantity` (default: the current count) of an item at a station.
    pub fn start_batch(
        &mut self,
        station_id: &str,
        item_id: &str,
        quantity: Option<u32>,
        device: &str,
        now_ms: i64,
    ) -> Result<Result<Session, BatchError>, StoreError> {
        let current = self
            .state
            .items
            .get(&(station_id.to_owned(), item_id.to_owned()));
        let item_name = if station_id == UNASSIGNED_STATION {
            current.map(|i| i.item_name.clone())
        } else if self.state.reference.station(station_id).is_none() {
            return Ok(Err(BatchError::UnknownStation(station_id.to_owned())));
        } else {
            self.state
                .reference
                .items
                .iter()
                .find(|i| i.id == item_id && i.station == station_id)
                .map(|i| i.name.clone())
        };
        let Some(item_name) = item_name else {
            return Ok(Err(BatchError::UnknownItem {
                station: station_id.to_owned(),
                item: item_id.to_owned(),
            }));
        };
        let quantity = match quantity {
            Some(q) if (1..=MAX_BATCH).contains(&q) => q,
            Some(_) => return Ok(Err(BatchError::BadQuantity)),
            None => match current {
                Some(item) => item.quantity.min(MAX_BATCH),
                None => return Ok(Err(BatchError::NothingOutstanding(item_id.to_owned()))),
            },
        };
        let session = Session {
            session_id: uuid::Uuid::now_v7().to_string(),
            station_id: station_id.to_owned(),
            item_id: item_id.to_owned(),
            item_name,
            quantity,
            device: device.to_owned(),
            started_at_ms: now_ms,
            completed_at_ms: None,
            allocations: Vec::new(),
        };
        self.write(now_ms, |_, tx, pending| {
            store::insert_session(tx, &session)?;
            let station = [session.station_id.clone()];
            pending.log.push(store::append_log(
                tx,
                "batch.started",
                None,
                Some(&station),
                &json!(session),
                now_ms,
            )?);
            Ok((Ok(session.clone()), Touched::stations(station)))
        })
    }

    /// Completes a session: its units go to the most urgent orders needing the item at the
    /// station. Completing twice changes nothing. `None`: no such session.
    pub fn complete_batch(
        &mut self,
        session_id: &str,
        now_ms: i64,
    ) -> Result<Option<Session>, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            let Some(mut session) = store::session(tx, session_id)? else {
                return Ok((None, Touched::default()));
            };
            if session.completed_at_ms.is_some() {
                return Ok((Some(session), Touched::default()));
            }
            // Only orders in the count now: an upcoming scheduled order waits its turn.
            let counted = state.orders.values().filter(|h| h.counted);
            let allocations: Vec<Allocation> = batch::allocate(
                counted.map(|h| (&h.order, h.outstanding.as_slice())),
                &session.station_id,
                &session.item_id,
                session.quantity,
            )
            .into_iter()
            .map(|(order_id, units)| Allocation { order_id, units })
            .collect();
            store::complete_session(tx, &session, now_ms, &allocations)?;
            session.completed_at_ms = Some(now_ms);
            session.allocations = allocations;
            let station = [session.station_id.clone()];
            pending.log.push(store::append_log(
                tx,
                "batch.completed",
                None,
                Some(&station),
                &json!(session),
                now_ms,
            )?);
            let touched = Touched {
                orders: session
                    .allocations
                    .iter()
                    .map(|a| a.order_id.clone())
                    .collect(),
                force: station.into_iter().collect(),
            };
            Ok((Some(session), touched))
        })
    }

    /// The clock moved: scheduled orders whose fire time came enter the count.
    pub fn tick(&mut self, now_ms: i64) -> Result<(), StoreError> {
        let due: Vec<String> = self
            .state
            .orders
            .values()
            .filter(|h| h.order.scheduled && h.counted != self.state.counts(h, now_ms))
            .map(|h| h.order.order_id.clone())
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        self.write(now_ms, |_, _, _| Ok(((), Touched::orders(due))))
    }

    /// Trims the event log and the de-duplication record (see `Store::prune`).
    pub fn prune(&mut self, keep: i64, keep_ms: i64, now_ms: i64) -> Result<usize, StoreError> {
        self.store.prune(keep, keep_ms, now_ms)
    }
}

impl State {
    /// Bumps (or recalls) an order at stations and logs `order.bumped` / `order.recalled` when
    /// anything changed. `None`: no such order.
    /// A station scanner's ticket for `order_id`: bumps it at `station` when it is open.
    fn scan_ticket(
        &mut self,
        tx: &Transaction<'_>,
        order_id: &str,
        station: &str,
        record: &mut store::ScanRecord,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        record.order_id = Some(order_id.to_owned());
        if self.orders.contains_key(order_id) {
            self.set_bumps(tx, order_id, &[station.to_owned()], true, now_ms, pending)?;
            record.action = "bump".into();
            record.accepted = true;
        } else {
            record.reason = format!("no open order {order_id:?}");
        }
        Ok(())
    }

    fn set_bumps(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
        stations: &[String],
        bumped: bool,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let Some(changed) = store::set_bumps(tx, order_id, stations, bumped, now_ms)? else {
            return Ok(None);
        };
        if changed.is_empty() {
            return Ok(Some(changed));
        }
        let kind = if bumped {
            "order.bumped"
        } else {
            "order.recalled"
        };
        let data = json!({ "order_id": order_id, "stations": changed });
        let mut tags: BTreeSet<String> = changed.iter().cloned().collect();
        if let Some(held) = self.orders.get(order_id) {
            tags.extend(held.stations.iter().cloned());
        }
        let tags: Vec<String> = tags.into_iter().collect();
        pending.log.push(store::append_log(
            tx,
            kind,
            Some(order_id),
            Some(&tags),
            &data,
            now_ms,
        )?);
        Ok(Some(changed))
    }

    /// Rebuilds everything from the store.
    fn reload(&mut self, store: &Store, now_ms: i64) -> Result<(), StoreError> {
        self.orders.clear();
        self.items.clear();
        for order in store.open_orders()? {
            let id = order.order_id.clone();
            let held = self.held(order, now_ms);
            self.put(&id, Some(held));
        }
        Ok(())
    }

    /// Whether `held` is in the count at `now_ms`.
    fn counts(&self, held: &Held, now_ms: i64) -> bool {
        !batch::is_upcoming(&held.order, &held.outstanding, now_ms, self.horizon_ms)
    }

    fn held(&self, order: batch::Order, now_ms: i64) -> Held {
        let stations: BTreeSet<String> = batch::contributions(&order, &self.reference)
            .into_iter()
            .map(|c| c.station_id)
            .collect();
        let mut held = Held {
            outstanding: batch::outstanding(&order, &self.reference),
            stations: stations.into_iter().collect(),
            order,
            counted: true,
        };
        held.counted = self.counts(&held, now_ms);
        held
    }

    /// Replaces an order (`None`: no longer open) and updates the totals; returns the stations
    /// whose items moved.
    fn put(&mut self, order_id: &str, held: Option<Held>) -> BTreeSet<String> {
        let old = self.orders.remove(order_id);
        // What the order adds to each station's totals, before and after.
        fn per_station(held: Option<&Held>) -> BTreeMap<&str, Vec<(&str, u32, i64)>> {
            let mut stations: BTreeMap<&str, Vec<(&str, u32, i64)>> = BTreeMap::new();
            for (c, due) in held.into_iter().flat_map(Held::counts_for) {
                stations.entry(c.station_id.as_str()).or_default().push((
                    c.item_id.as_str(),
                    c.units,
                    due,
                ));
            }
            stations
        }
        let (before, after) = (per_station(old.as_ref()), per_station(held.as_ref()));
        let moved: BTreeSet<String> = before
            .keys()
            .chain(after.keys())
            .filter(|s| before.get(*s) != after.get(*s))
            .map(|s| (*s).to_owned())
            .collect();
        if !moved.is_empty() {
            if let Some(old) = &old {
                for (c, due) in old.counts_for() {
                    let key = (c.station_id.clone(), c.item_id.clone());
                    if let Some(total) = self.items.get_mut(&key) {
                        if let Some((units, _)) = total.orders.remove(order_id) {
                            total.quantity = total.quantity.saturating_sub(units);
                        }
                        total.dues.remove(&(due, order_id.to_owned()));
                        if total.orders.is_empty() {
                            self.items.remove(&key);
                        }
                    }
                }
            }
            if let Some(new) = &held {
                for (c, due) in new.counts_for() {
                    let total = self
                        .items
                        .entry((c.station_id.clone(), c.item_id.clone()))
                        .or_insert_with(|| Total {
                            item_name: c.item_name.clone(),
                            prep_seconds: c.prep_seconds,
                            ..Total::default()
                        });
                    total.quantity = total.quantity.saturating_add(c.units);
                    total.orders.insert(order_id.to_owned(), (c.units, due));
                    total.dues.insert((due, order_id.to_owned()));
                }
            }
        }
        if let Some(held) = held {
            self.orders.insert(order_id.to_owned(), held);
        }
        moved
    }

    /// The batch items of `station` as `batch.updated` carries them (`order_count`, no ids),
    /// most urgent first.
    fn station_json(&self, station: &str, sessions: &[Session]) -> Vec<Value> {
        let mut totals: Vec<(&String, &Total)> = self
            .items
            .range((station.to_owned(), String::new())..)
            .take_while(|((s, _), _)| s == station)
            .map(|((_, item), total)| (item, total))
            .collect();
        totals.sort_by_key(|(item, total)| (total.due_at_ms(), (*item).clone()));
        totals
            .into_iter()
            .map(|(item_id, total)| {
                item_json(
                    &self.reference,
                    &BatchItem {
                        station_id: station.to_owned(),
                        item_id: item_id.clone(),
                        item_name: total.item_name.clone(),
                        quantity: total.quantity,
                        prep_seconds: total.prep_seconds,
                        due_at_ms: total.due_at_ms(),
                        order_ids: Vec::new(),
                    },
                    total.orders.len(),
                    false,
                    sessions,
                )
            })
            .collect()
    }

    /// Every batch item with its orders, as `batch::board` gives them (for the tests).
    #[cfg(test)]
    fn board_rows(&self) -> Vec<(String, String, u32, Vec<String>)> {
        self.items
            .iter()
            .map(|((station, item), total)| {
                (
                    station.clone(),
                    item.clone(),
                    total.quantity,
                    total.orders.keys().cloned().collect(),
                )
            })
            .collect()
    }

    fn settle(
        &mut self,
        tx: &Transaction<'_>,
        touched: &Touched,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        for order_id in &touched.orders {
            let held = if pending.reloaded.contains(order_id) {
                self.orders.get(order_id).cloned()
            } else {
                store::load_orders(tx, Some(order_id))?
                    .pop()
                    .map(|order| self.held(order, now_ms))
            };
            if let Some(held) = &held {
                let ready = batch::is_ready(&held.order, &self.reference);
                if store::set_ready(tx, order_id, ready.then_some(now_ms))? && ready {
                    let friendly_id = store::load_tickets(tx, Some(order_id))?
                        .pop()
                        .map(|t| t.friendly_id)
                        .unwrap_or_default();
                    let data = json!({ "order_id": order_id, "friendly_id": friendly_id });
                    pending.log.push(store::append_log(
                        tx,
                        "order.ready",
                        Some(order_id),
                        Some(&held.stations),
                        &data,
                        now_ms,
                    )?);
                }
            }
            let moved = self.put(order_id, held);
            pending.moved.extend(moved);
        }
        pending.moved.extend(touched.force.iter().cloned());
        if !pending.moved.is_empty() {
            let sessions = store::open_sessions(tx)?;
            for station in std::mem::take(&mut pending.moved) {
                let data = json!({
                    "station_id": station,
                    "items": self.station_json(&station, &sessions),
                });
                pending.log.push(store::append_log(
                    tx,
                    "batch.updated",
                    None,
                    Some(std::slice::from_ref(&station)),
                    &data,
                    now_ms,
                )?);
            }
        }
        Ok(())
    }

    /// Logs an applied order event, tagged with the stations the order needs before and after,
    /// and takes the order's new state in.
    fn log_order_event(
        &mut self,
        tx: &Transaction<'_>,
        event: &OrderEvent,
        change: Change,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        let order_id = event.order_id.as_str();
        let before = self.orders.get(order_id).map(|h| h.stations.clone());
        let after = store::load_orders(tx, Some(order_id))?
            .pop()
            .map(|order| self.held(order, now_ms));
        let mut stations: BTreeSet<String> = before.into_iter().flatten().collect();
        stations.extend(after.iter().flat_map(|h| h.stations.iter().cloned()));
        let stations: Vec<String> = stations.into_iter().collect();
        let state = self
            .store_state(tx, order_id)?
            .unwrap_or_else(|| "unknown".into());
        let mut data = json!({
            "event_id": event.event_id,
            "otter_event_type": event.otter_event_type,
            "order_id": order_id,
            "store_id": event.store_id,
            "status": event.status().as_str_name(),
            "state": state,
            "change": change.name(),
        });
        if matches!(change, Change::Created | Change::Updated)
            && let Some(ticket) = self.ticket(tx, order_id, after.as_ref())?
        {
            data["order"] = serde_json::to_value(ticket).unwrap_or_default();
        }
        pending.log.push(store::append_log(
            tx,
            change.kind(),
            Some(order_id),
            Some(&stations),
            &data,
            now_ms,
        )?);
        let moved = self.put(order_id, after);
        pending.reloaded.insert(order_id.to_owned());
        pending.moved.extend(moved);
        Ok(())
    }

    fn store_state(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(rusqlite::OptionalExtension::optional(tx.query_row(
            "SELECT state FROM orders WHERE order_id = ?1",
            [order_id],
            |row| row.get(0),
        ))?)
    }

    /// The order's ticket with the stations it needs and when it is promised.
    fn ticket(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
        held: Option<&Held>,
    ) -> Result<Option<store::Ticket>, StoreError> {
        Ok(store::load_tickets(tx, Some(order_id))?
            .pop()
            .map(|mut ticket| {
                if let Some(held) = held {
                    ticket.annotate(&held.order, &self.reference);
                }
                ticket
            }))
    }
}

/// What a change touched: orders to reload, stations whose items to log regardless.
#[derive(Default)]
struct Touched {
    orders: Vec<String>,
    force: BTreeSet<String>,
}

impl Touched {
    fn orders(orders: impl IntoIterator<Item = String>) -> Self {
        Self {
            orders: orders.into_iter().collect(),
            force: BTreeSet::new(),
        }
    }

    fn stations(stations: impl IntoIterator<Item = String>) -> Self {
        Self {
            orders: Vec::new(),
            force: stations.into_iter().collect(),
        }
    }
}

/// Batch items as the API shows them (with `order_ids`), with the sessions running on each.
pub fn batch_items_json(
    reference: &Reference,
    items: &[BatchItem],
    sessions: &[Session],
) -> Vec<Value> {
    items
        .iter()
        .map(|item| item_json(reference, item, item.order_ids.len(), true, sessions))
        .collect()
}

/// One batch item. `with_ids` lists the contributing orders; without it (`batch.updated`,
/// which goes to every tablet on every change) only their count is given, so an event stays
/// small however many orders are open.
fn item_json(
    reference: &Reference,
    item: &BatchItem,
    order_count: usize,
    with_ids: bool,
    sessions: &[Session],
) -> Value {
    let running: Vec<Value> = sessions
        .iter()
        .filter(|s| s.station_id == item.station_id && s.item_id == item.item_id)
        .map(|s| {
            json!({
                "session_id": s.session_id,
                "quantity": s.quantity,
                "device": s.device,
                "started_at_ms": s.started_at_ms,
            })
        })
        .collect();
    let mut value = json!({
        "station_id": item.station_id,
        "station_name": reference.station_name(&item.station_id),
        "item_id": item.item_id,
        "item_name": item.item_name,
        "quantity": item.quantity,
        "prep_seconds": item.prep_seconds,
        "due_at": chrono::DateTime::from_timestamp_millis(item.due_at_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "due_at_ms": item.due_at_ms,
        "order_count": order_count,
        "sessions": running,
    });
    if with_ids {
        value["order_ids"] = json!(item.order_ids);
    }
    value
}

#[cfg(test)]
mod tests {
    use kitchen_proto::{EventType, Fulfillment, LineItem, OrderStatus, SchedulingType};

    use super::*;

    const MINUTE: i64 = 60_000;
    /// 2025-03-14T18:40:00Z
    const NOW: i64 = 1_741_977_600_000;

    fn reference() -> Arc<Reference> {
        Arc::new(
            Reference::parse(include_str!("../tests/fixtures/three_stations.toml"))
                .expect("valid reference"),
        )
    }

    fn item(name: &str, quantity: u32, modifiers: Vec<LineItem>) -> LineItem {
        LineItem {
            name: name.into(),
            quantity,
            modifiers,
            ..LineItem::default()
        }
    }

    /// `burgers` × burger (a meal: fries, with a size modifier under the fries).
    fn meal(burgers: u32) -> Vec<LineItem> {
        vec![LineItem {
            sku_id: "sku-smash-double".into(),
            ..item(
                "Double Smash Burger",
                burgers,
                vec![item(
                    "Make it a Meal",
                    1,
                    vec![item("Fries", 1, vec![item("Large", 1, vec![])])],
                )],
            )
        }]
    }

    fn snapshot(id: &str, order: &str, at_min: i64, items: Vec<LineItem>) -> OrderEvent {
        OrderEvent {
            event_id: id.into(),
            event_type: EventType::NewOrder as i32,
            otter_event_type: "orders.new_order".into(),
            event_time_ms: NOW + at_min * MINUTE,
            store_id: "s1".into(),
            order_id: order.into(),
            friendly_id: format!("#{order}"),
            status: OrderStatus::NewOrder as i32,
            fulfillment: Some(Fulfillment {
                pickup_time_ms: Some(NOW + 20 * MINUTE),
                ..Fulfillment::default()
            }),
            items,
            has_snapshot: true,
            received_at_ms: NOW,
            ..OrderEvent::default()
        }
    }

    fn status(id: &str, order: &str, otter_type: &str, status: OrderStatus) -> OrderEvent {
        OrderEvent {
            event_id: id.into(),
            otter_event_type: otter_type.into(),
            store_id: "s1".into(),
            order_id: order.into(),
            status: status as i32,
            ..OrderEvent::default()
        }
    }

    #[allow(clippy::large_enum_variant)] // a test table
    enum Step {
        Event(OrderEvent),
        Bump(&'static str, &'static str),
        Recall(&'static str, &'static str),
        /// Start a batch of N at (station, item) and complete it.
        Batch(&'static str, &'static str, u32),
        /// Minutes later.
        Clock(i64),
    }
    use Step::*;

    struct Case {
        name: &'static str,
        steps: Vec<Step>,
        /// (station, item, quantity, orders) after the steps.
        board: &'static [(&'static str, &'static str, u32, &'static [&'static str])],
        /// Kinds the last step logged (with the station of batch events).
        last_logged: &'static [&'static str],
    }

    fn run(case: Case) {
        let mut kitchen = Kitchen::open(
            Store::open_in_memory().expect("store"),
            reference(),
            20 * MINUTE,
            NOW,
        )
        .expect("kitchen");
        let mut now = NOW;
        let mut logged = Vec::new();
        for step in case.steps {
            kitchen.take_committed();
            match step {
                Event(event) => {
                    kitchen.apply(&event, now).expect("applies");
                }
                Bump(order, station) | Recall(order, station) => {
                    let bumped = matches!(step, Bump(..));
                    kitchen
                        .bump(order, &[station.to_owned()], bumped, now)
                        .expect("bumps")
                        .expect("known order");
                }
                Batch(station, item, n) => {
                    let session = kitchen
                        .start_batch(station, item, Some(n), "test", now)
                        .expect("writes")
                        .expect("starts");
                    kitchen.take_committed();
                    kitchen
                        .complete_batch(&session.session_id, now)
                        .expect("writes")
                        .expect("known session");
                }
                Clock(minutes) => {
                    now += minutes * MINUTE;
                    kitchen.tick(now).expect("ticks");
                }
            }
            logged = kitchen.take_committed();
        }
        let board = kitchen.state.board_rows();
        // The incremental totals are what the pure calculation gives from the store.
        let pure: Vec<(String, String, u32, Vec<String>)> = batch::board(
            &kitchen.store.open_orders().expect("reads"),
            &reference(),
            now,
            20 * MINUTE,
        )
        .items
        .into_iter()
        .map(|i| (i.station_id, i.item_id, i.quantity, i.order_ids))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
        assert_eq!(board, pure, "{}: incremental vs pure", case.name);
        let expected: Vec<(String, String, u32, Vec<String>)> = case
            .board
            .iter()
            .map(|(s, i, q, o)| {
                (
                    (*s).to_owned(),
                    (*i).to_owned(),
                    *q,
                    o.iter().map(|o| (*o).to_owned()).collect(),
                )
            })
            .collect();
        assert_eq!(board, expected, "{}: board", case.name);
        let kinds: Vec<String> = logged
            .iter()
            .map(|e| match e.kind.as_str() {
                "batch.updated" | "batch.completed" | "batch.started" => format!(
                    "{}:{}",
                    e.kind,
                    e.stations.as_deref().unwrap_or_default().join(",")
                ),
                kind => kind.to_owned(),
            })
            .collect();
        assert_eq!(kinds, case.last_logged, "{}: logged", case.name);
    }

    #[test]
    fn kitchen_cases() {
        let cases = vec![
            Case {
                name: "nested modifiers: burger at the grill, the meal's fries at the fryer",
                steps: vec![Event(snapshot("e1", "o1", 0, meal(2)))],
                board: &[("fry", "fries", 2, &["o1"]), ("grill", "smash", 2, &["o1"])],
                last_logged: &["order.created", "batch.updated:fry", "batch.updated:grill"],
            },
            Case {
                name: "unknown item: counted at unassigned, never dropped",
                steps: vec![Event(snapshot(
                    "e1",
                    "o1",
                    0,
                    vec![item("Mystery Box", 3, vec![item("No pickles", 1, vec![])])],
                ))],
                board: &[("unassigned", "name:mystery box", 3, &["o1"])],
                last_logged: &["order.created", "batch.updated:unassigned"],
            },
            Case {
                name: "a duplicate changes nothing and logs nothing",
                steps: vec![
                    Event(snapshot("e1", "o1", 0, meal(1))),
                    Event(snapshot("e1", "o1", 0, meal(1))),
                ],
                board: &[("fry", "fries", 1, &["o1"]), ("grill", "smash", 1, &["o1"])],
                last_logged: &[],
            },
            Case {
                name: "a newer update replaces the lines",
                steps: vec![
                    Event(snapshot("e1", "o1", 0, meal(1))),
                    Event(snapshot("e2", "o1", 5, vec![item("Fries", 4, vec![])])),
                ],
                board: &[("fry", "fries", 4, &["o1"])],
                last_logged: &["order.updated", "batch.updated:fry", "batch.updated:grill"],
            },
            Case {
                name: "an older update is recorded but changes no count",
                steps: vec![
                    Event(snapshot("e1", "o1", 5, meal(1))),
                    Event(snapshot("e2", "o1", 0, vec![item("Fries", 4, vec![])])),
                ],
                board: &[("fry", "fries", 1, &["o1"]), ("grill", "smash", 1, &["o1"])],
                last_logged: &["order.status"],
            },
            Case {
                name: "cancelled by orders.cancel",
                steps: vec![
                    Event(snapshot("e1", "o1", 0, meal(1))),
                    Event(status("e2", "o1", "orders.cancel", OrderStatus::Canceled)),
                ],
                board: &[],
                last_logged: &[
                    "order.cancelled",
                    "batch.updated:fry",
                    "batch.updated:grill",
                ],
            },
            Case {
                name: "cancelled by a status update",
                steps: vec![
                    Event(snapshot("e1", "o1", 0, meal(1))),
                    Event(snapshot("e2", "o2", 0, meal(1))),
                    Event(status(
                        "e3",
                        "o1",
                        "orders.status_update",
                        OrderStatus::Canceled,
                    )),
                ],
                board: &[("fry", "fries", 1, &["o2"]), ("grill", "smash", 1, &["o2"])],
                last_logged: &[
                    "order.cancelled",
                    "batch.updated:fry",
                    "batch.updated:grill",
                ],
            },
            Case {
                name: "a bump removes the order's units at that station only",
                steps: vec![Event(snapshot("e1", "o1", 0, meal(2))), Bump("o1", "fry")],
                board: &[("grill", "smash", 2, &["o1"])],
                last_logged: &["order.bumped", "batch.updated:fry"],
            },
            Case {
                name: "bumped everywhere: ready; a recall brings it back",
                steps: vec![
                    Event(snapshot("e1", "o1", 0, meal(1))),
                    Bump("o1", "fry"),
                    Bump("o1", "grill"),
                ],
                board: &[],
                last_logged: &["order.bumped", "order.ready", "batch.updated:grill"],
            },
            Case {
                name: "recall after ready",
                steps: vec![
                    Event(snapshot("e1", "o1", 0, meal(1))),
                    Bump("o1", "fry"),
                    Bump("o1", "grill"),
                    Recall("o1", "grill"),
                ],
                board: &[("grill", "smash", 1, &["o1"])],
                last_logged: &["order.recalled", "batch.updated:grill"],
            },
            Case {
                name: "a batch completes units across orders, most urgent first",
                steps: vec![
                    Event(snapshot("e1", "o1", 0, vec![item("Fries", 2, vec![])])),
                    Event(snapshot("e2", "o2", 0, vec![item("Fries", 2, vec![])])),
                    Batch("fry", "fries", 3),
                ],
                board: &[("fry", "fries", 1, &["o2"])],
                last_logged: &["batch.completed:fry", "order.ready", "batch.updated:fry"],
            },
            Case {
                name: "a scheduled order waits, then moves into the count",
                steps: vec![
                    Event(OrderEvent {
                        fulfillment: Some(Fulfillment {
                            pickup_time_ms: Some(NOW + 90 * MINUTE),
                            scheduling_type: SchedulingType::FixedTime as i32,
                            ..Fulfillment::default()
                        }),
                        ..snapshot("e1", "o1", 0, vec![item("Fries", 1, vec![])])
                    }),
                    Clock(30),
                    Clock(40),
                ],
                board: &[("fry", "fries", 1, &["o1"])],
                last_logged: &["batch.updated:fry"],
            },
        ];
        for case in cases {
            run(case);
        }
    }
}
