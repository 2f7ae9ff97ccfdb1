//! New reference data swapped in: cached, every open order counted again against it.

use std::{collections::BTreeSet, sync::Arc};

use crate::{
    record::{Record, ReferenceUpdate},
    store::{self, StoreError},
};
use kitchen_proto::reference::Reference;

use super::{Kitchen, Touched};

impl Kitchen {
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
            let update = ReferenceUpdate {
                source: source.to_owned(),
            };
            pending.log.push(store::append_log(
                tx,
                &Record::ReferenceUpdated(update),
                None,
                now_ms,
            )?);
            Ok(((), Touched::stations(stations)))
        })
    }
}
