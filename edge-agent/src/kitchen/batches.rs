//! Batch sessions: a cook starts a batch of an item at a station and completes it; its units
//! go to the most urgent orders.

use crate::{
    batch::{self},
    record::{Allocation, Record, Session},
    store::{self, StoreError},
};
use kitchen_proto::reference::UNASSIGNED_STATION;

use super::{Kitchen, Touched};

/// Largest batch a cook can start: guards against a fat-fingered 10000.
pub const MAX_BATCH: u32 = 999;

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

impl Kitchen {
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
            current.map(|i| i.slot.item_name.to_string())
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
                &Record::BatchStarted(session.clone()),
                Some(&station),
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
            let (station_id, item_id) = (&*session.station_id, &*session.item_id);
            let needs = state.orders.values().filter(|h| h.counted).filter_map(|h| {
                let need = h
                    .outstanding()
                    .find(|n| &*n.slot.station_id == station_id && &*n.slot.item_id == item_id)?;
                Some((h.due_at_ms(&need.slot), &*h.order_id, need.units))
            });
            let allocations: Vec<Allocation> = batch::allocate(needs, session.quantity)
                .into_iter()
                .map(|(order_id, units)| Allocation { order_id, units })
                .collect();
            store::complete_session(tx, &session, now_ms, &allocations)?;
            session.completed_at_ms = Some(now_ms);
            session.allocations = allocations;
            let station = [session.station_id.clone()];
            pending.log.push(store::append_log(
                tx,
                &Record::BatchCompleted(session.clone()),
                Some(&station),
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
}
