//! What the kitchen tells Otter, each in the transaction of the change it comes with: an order
//! accepted (by the box for stores that accept automatically, with its estimate), a new prep
//! time, ready, handed off, rejected or cancelled; items 86'd and back; and the state of the
//! relay's calls, read back from PostgreSQL, logged for the displays.

use rusqlite::Transaction;

use crate::{
    otter::{self, OrderAction, OtterRejection, Until, Work},
    record::{Acceptance, Availability, CancelRequest, HandOff, PrepTime, Record, StoreEntities},
    store::{self, StoreError},
};

use super::{Kitchen, Pending, Touched, orders::BumpRequest, totals::State};

/// An action's outcome: done, or refused with the reason the cook sees.
pub type Outcome<T> = Result<T, OtterRejection>;

impl Kitchen {
    /// Runs an Expo or manager action on an order (see `OrderAction`).
    pub fn order_action(
        &mut self,
        order_id: &str,
        action: OrderAction,
        device: &str,
        now_ms: i64,
    ) -> Result<Outcome<()>, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            let outcome = state.order_action(tx, order_id, action, device, now_ms, pending)?;
            let touched = match &outcome {
                Ok(()) => Touched::orders([order_id.to_owned()]),
                Err(_) => Touched::default(),
            };
            Ok((outcome, touched))
        })
    }

    /// 86es an item (see `Until`); `staff`: whose PIN allowed it.
    pub fn suspend(
        &mut self,
        item_id: &str,
        until: Until,
        note: &str,
        device: &str,
        staff: Option<String>,
        now_ms: i64,
    ) -> Result<Outcome<Availability>, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            let outcome = (|| {
                let item = state.item(item_id)?;
                if note.chars().count() > otter::MAX_NOTE_CHARS {
                    return Err(OtterRejection::NoteTooLong);
                }
                let until_ms = until.until_ms(now_ms, state.otter.day_end, &chrono::Local)?;
                Ok((item, until_ms))
            })();
            let ((station, mut change), until_ms) = match outcome {
                Ok(found) => found,
                Err(rejection) => return Ok((Err(rejection), Touched::default())),
            };
            if !store::suspensions(tx, Some(item_id), now_ms)?.is_empty() {
                let rejection = OtterRejection::AlreadySuspended(change.item_name);
                return Ok((Err(rejection), Touched::default()));
            }
            change.suspension_id = uuid::Uuid::now_v7().to_string();
            change.until_ms = until_ms;
            change.note = note.trim().to_owned();
            change.device = device.to_owned();
            change.staff = staff;
            store::insert_suspension(
                tx,
                &store::Suspension {
                    suspension_id: change.suspension_id.clone(),
                    item_id: item_id.to_owned(),
                    until_ms,
                    note: change.note.clone(),
                    device: device.to_owned(),
                    staff: change.staff.clone(),
                    created_at_ms: now_ms,
                },
            )?;
            let record = Record::ItemSuspended(change.clone());
            pending
                .log
                .push(store::append_log(tx, &record, Some(&[station]), now_ms)?);
            Ok((Ok(change), Touched::default()))
        })
    }

    /// Puts an 86'd item back on.
    pub fn unsuspend(
        &mut self,
        item_id: &str,
        device: &str,
        staff: Option<String>,
        now_ms: i64,
    ) -> Result<Outcome<Availability>, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            let (station, mut change) = match state.item(item_id) {
                Ok(found) => found,
                Err(rejection) => return Ok((Err(rejection), Touched::default())),
            };
            let lifted = store::lift_suspension(tx, item_id, device, now_ms)?;
            let Some(first) = lifted.first() else {
                let rejection = OtterRejection::NotSuspended(change.item_name);
                return Ok((Err(rejection), Touched::default()));
            };
            change.suspension_id = first.suspension_id.clone();
            change.note = "Back on".into();
            change.device = device.to_owned();
            change.staff = staff;
            let record = Record::ItemUnsuspended(change.clone());
            pending
                .log
                .push(store::append_log(tx, &record, Some(&[station]), now_ms)?);
            Ok((Ok(change), Touched::default()))
        })
    }

    /// Takes in the relay's calls read back from PostgreSQL up to `change_id`; logs
    /// `otter.call` for each whose state changed. How many changed.
    pub fn otter_calls(
        &mut self,
        calls: &[store::CallChange],
        change_id: i64,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            let changed = store::save_calls(tx, calls, change_id)?;
            for call in &changed {
                let stations = match (&call.order_id, &call.item_id) {
                    (Some(order_id), _) => {
                        state.orders.get(order_id.as_str()).map(|h| h.stations())
                    }
                    (None, Some(item_id)) => state
                        .reference
                        .item(item_id)
                        .map(|item| vec![item.station.clone()]),
                    (None, None) => None,
                };
                let record = Record::OtterCallChanged(call.clone());
                pending
                    .log
                    .push(store::append_log(tx, &record, stations.as_deref(), now_ms)?);
            }
            Ok((changed.len(), Touched::default()))
        })
    }
}

impl State {
    /// The item's station and an availability record naming it with its Otter entities.
    fn item(&self, item_id: &str) -> Result<(String, Availability), OtterRejection> {
        let item = self
            .reference
            .item(item_id)
            .ok_or(OtterRejection::NoSuchItem)?;
        let entities = item
            .otter_entities
            .iter()
            .map(|(store_id, entity_ids)| StoreEntities {
                store_id: store_id.clone(),
                entity_ids: entity_ids.clone(),
            })
            .collect();
        Ok((
            item.station.clone(),
            Availability {
                suspension_id: String::new(),
                item_id: item.id.clone(),
                item_name: item.name.clone(),
                until_ms: None,
                note: String::new(),
                device: String::new(),
                staff: None,
                entities,
            },
        ))
    }

    /// The prep time to accept an order with: its lines behind the station queues (see
    /// `otter::estimate_minutes`).
    fn estimate(&self, order_id: &str) -> u32 {
        let needs: Vec<Work<'_>> = self
            .orders
            .get(order_id)
            .map(|held| {
                held.outstanding()
                    .map(|n| Work {
                        station_id: &n.slot.station_id,
                        item_id: &n.slot.item_id,
                        prep_seconds: n.slot.prep_seconds,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let queued: Vec<Work<'_>> = self
            .items
            .iter()
            .filter(|(_, total)| total.orders.keys().any(|other| &**other != order_id))
            .map(|((station_id, item_id), total)| Work {
                station_id,
                item_id,
                prep_seconds: total.slot.prep_seconds,
            })
            .collect();
        otter::estimate_minutes(&needs, &queued, self.otter.bounds)
    }

    /// A new order of a store that accepts automatically: accepted with the estimate, in the
    /// transaction that put it on the screens.
    pub(super) fn auto_accept(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        let Some(order) = store::order_for_otter(tx, order_id)? else {
            return Ok(());
        };
        let manual = !self.reference.accept_mode(&order.store_id).is_auto();
        if manual || order.state != "open" || order.prep_minutes.is_some() {
            return Ok(());
        }
        self.accept(tx, order_id, order.store_id, None, None, now_ms, pending)
    }

    #[allow(clippy::too_many_arguments)]
    fn accept(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
        store_id: String,
        minutes: Option<u32>,
        device: Option<&str>,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        let prep_minutes = minutes.unwrap_or_else(|| self.estimate(order_id));
        store::set_prep_minutes(tx, order_id, prep_minutes, now_ms)?;
        let record = Record::OrderAccepted(Acceptance {
            order_id: order_id.to_owned(),
            store_id,
            prep_minutes,
            auto: device.is_none(),
            device: device.map(str::to_owned),
        });
        self.log_for_order(tx, order_id, &record, now_ms, pending)
    }

    fn log_for_order(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
        record: &Record,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        let stations = self.orders.get(order_id).map(|h| h.stations());
        pending
            .log
            .push(store::append_log(tx, record, stations.as_deref(), now_ms)?);
        Ok(())
    }

    pub(super) fn order_action(
        &mut self,
        tx: &Transaction<'_>,
        order_id: &str,
        action: OrderAction,
        device: &str,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<Outcome<()>, StoreError> {
        let Some(order) = store::order_for_otter(tx, order_id)? else {
            return Ok(Err(OtterRejection::NoSuchOrder));
        };
        if order.state != "open" {
            return Ok(Err(OtterRejection::NotOpen(order.state)));
        }
        let store_id = order.store_id.clone();
        let record = match action {
            OrderAction::Accept { minutes } => {
                if order.prep_minutes.is_some() {
                    return Ok(Err(OtterRejection::AlreadyAccepted));
                }
                if let Some(Err(rejection)) = minutes.map(otter::check_minutes) {
                    return Ok(Err(rejection));
                }
                self.accept(
                    tx,
                    order_id,
                    store_id,
                    minutes,
                    Some(device),
                    now_ms,
                    pending,
                )?;
                return Ok(Ok(()));
            }
            OrderAction::PrepTime { minutes } => {
                if order.prep_minutes.is_none() {
                    return Ok(Err(OtterRejection::NotAccepted));
                }
                if let Err(rejection) = otter::check_minutes(minutes) {
                    return Ok(Err(rejection));
                }
                store::set_prep_minutes(tx, order_id, minutes, now_ms)?;
                Record::OrderPrepTime(PrepTime {
                    order_id: order_id.to_owned(),
                    store_id,
                    prep_minutes: minutes,
                    device: device.to_owned(),
                })
            }
            OrderAction::Ready => {
                let stations = self
                    .orders
                    .get(order_id)
                    .map(|h| h.stations())
                    .unwrap_or_default();
                let request = BumpRequest {
                    order_id,
                    stations: &stations,
                    bumped: true,
                    device,
                };
                self.set_bumps(tx, request, now_ms, pending)?;
                return Ok(Ok(()));
            }
            OrderAction::HandOff => {
                store::close_order(tx, order_id, "closed", now_ms)?;
                Record::OrderHandedOff(HandOff {
                    order_id: order_id.to_owned(),
                    store_id,
                    device: device.to_owned(),
                })
            }
            OrderAction::Reject { reason } | OrderAction::Cancel { reason, .. }
                if otter::check_reason(&reason).is_err() =>
            {
                return Ok(Err(OtterRejection::UnknownReason(reason)));
            }
            OrderAction::Cancel {
                note: Some(note), ..
            } if note.chars().count() > otter::MAX_NOTE_CHARS => {
                return Ok(Err(OtterRejection::NoteTooLong));
            }
            OrderAction::Reject { .. } if order.prep_minutes.is_some() => {
                return Ok(Err(OtterRejection::AlreadyAccepted));
            }
            OrderAction::Reject { reason } => {
                self.cancel(tx, order_id, store_id, reason, None, device, now_ms)?
            }
            OrderAction::Cancel { reason, note } => {
                self.cancel(tx, order_id, store_id, reason, note, device, now_ms)?
            }
        };
        self.log_for_order(tx, order_id, &record, now_ms, pending)?;
        if let Record::OrderCancelRequested(_) = record {
            let stations = self.orders.get(order_id).map(|h| h.stations());
            self.print_void(tx, order_id, &stations.unwrap_or_default(), now_ms, pending)?;
        }
        Ok(Ok(()))
    }

    #[allow(clippy::too_many_arguments)]
    fn cancel(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
        store_id: String,
        reason: String,
        note: Option<String>,
        device: &str,
        now_ms: i64,
    ) -> Result<Record, StoreError> {
        store::close_order(tx, order_id, "cancelled", now_ms)?;
        Ok(Record::OrderCancelRequested(CancelRequest {
            order_id: order_id.to_owned(),
            store_id,
            reason,
            note: note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
            device: device.to_owned(),
        }))
    }
}
