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

mod batches;
mod console;
mod devices;
mod floor;
mod held;
mod orders;
mod otter;
mod prints;
mod recover;
mod reference;
mod scans;
mod stock;
#[cfg(test)]
mod tests;
mod totals;

pub use batches::{BatchError, MAX_BATCH};
pub use floor::FloorRejection;

pub use prints::{PrintRejection, Printing};
pub use recover::{Recovered, Recovery, RestoredRecord};
pub use stock::StockRejection;
use totals::State;

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    sync::Arc,
};

use rusqlite::Transaction;

use crate::store::{LoggedEvent, Store, StoreError};
use kitchen_proto::reference::Reference;

/// What a transaction logged and which stations' items it moved.
#[derive(Default)]
struct Pending {
    log: Vec<LoggedEvent>,
    moved: BTreeSet<String>,
    /// Orders already reloaded from this transaction (and taken into memory).
    reloaded: BTreeSet<String>,
    /// Print jobs enqueued.
    prints: usize,
    /// A new card's recovery is writing (`recover`): nothing is printed (the old card printed
    /// it), and what changes an order is logged for the displays only.
    restoring: bool,
}

pub struct Kitchen {
    store: Store,
    state: State,
    /// Committed log entries not yet handed to the live streams.
    committed: Vec<LoggedEvent>,
    /// Print jobs committed since the printer tasks were last woken.
    print_jobs: usize,
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
            slots: Default::default(),
            items: BTreeMap::new(),
            unassigned_seen: HashSet::new(),
            otter: crate::otter::Settings::default(),
            clock_trusted: true,
            print: Printing::default(),
        };
        state.reload(&store, now_ms)?;
        Ok(Self {
            store,
            state,
            committed: Vec::new(),
            print_jobs: 0,
        })
    }

    /// Whether the clock can be trusted (housekeeping's reading): until it can, new stock with
    /// a use-by date is refused and stock used is recorded with its use-by unchecked.
    pub fn set_clock_trusted(&mut self, trusted: bool) {
        self.state.clock_trusted = trusted;
    }

    /// The estimate's bounds and when the day ends (see `crate::otter`).
    pub fn set_otter_settings(&mut self, settings: crate::otter::Settings) {
        self.state.otter = settings;
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
                self.print_jobs += pending.prints;
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

    /// Deletes rows an older agent left in the outbox once PostgreSQL has committed them.
    pub fn delete_synced(&mut self, last: i64) -> Result<usize, StoreError> {
        self.store.delete_synced(last)
    }

    /// Records that the event log's synced records up to `seq` are in PostgreSQL.
    pub fn set_pushed_through(&mut self, seq: i64) -> Result<(), StoreError> {
        self.store.set_pushed_through(seq)
    }

    /// The clock moved: scheduled orders whose fire time came enter the count.
    pub fn tick(&mut self, now_ms: i64) -> Result<(), StoreError> {
        let due: Vec<String> = self
            .state
            .orders
            .values()
            .filter(|h| h.scheduled && h.counted != self.state.counts(h, now_ms))
            .map(|h| h.order_id.to_string())
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        self.write(now_ms, |_, _, _| Ok(((), Touched::orders(due))))
    }

    /// Trims the event log and the de-duplication record (see `Store::prune`).
    pub fn prune(&mut self, keep: i64, keep_ms: i64, now_ms: i64) -> Result<usize, StoreError> {
        let pruned = self.store.prune(keep, keep_ms, now_ms)?;
        self.store.prune_printed(now_ms)?;
        Ok(pruned)
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
