//! The fallback watch: a station whose tablets have all been gone for `after` gets its new
//! tickets on the fallback printer until one comes back; then `/api/status` says how many
//! printed meanwhile, which the station's display shows.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    status::{Fallback, Printers, StreamStats},
    store::Readers,
    writer::StoreWriter,
};

/// How often the streams are looked at.
const CHECK: Duration = Duration::from_secs(1);

pub struct FallbackWatch {
    /// The fallback printer's name.
    pub printer: String,
    pub after: Duration,
    pub streams: Arc<StreamStats>,
    pub printers: Arc<Printers>,
    pub readers: Arc<Readers>,
    pub writer: StoreWriter,
    pub token: CancellationToken,
}

impl FallbackWatch {
    pub async fn run(self) {
        let after_ms = self.after.as_millis() as i64;
        let mut current: BTreeSet<String> = BTreeSet::new();
        loop {
            tokio::select! {
                _ = self.token.cancelled() => return,
                _ = tokio::time::sleep(CHECK) => {}
            }
            let now_ms = kitchen_daemon::clock::now_ms();
            let stations = self.streams.stations();
            let gone: BTreeSet<String> = stations
                .iter()
                .filter(|(_, open, since)| *open == 0 && now_ms - since >= after_ms)
                .map(|(station, _, _)| station.clone())
                .collect();
            if gone == current {
                continue;
            }
            if let Err(error) = self.writer.set_print_fallback(gone.clone()).await {
                tracing::error!(%error, "cannot switch stations to the fallback printer");
                continue;
            }
            for station in gone.difference(&current) {
                let since_ms = stations
                    .iter()
                    .find(|(s, _, _)| s == station)
                    .map_or(now_ms, |(_, _, since)| *since);
                tracing::warn!(%station, printer = %self.printer,
                    "every tablet of the station is gone: its tickets print on the fallback printer");
                self.printers.set_fallback(Fallback {
                    station: station.clone(),
                    printer: self.printer.clone(),
                    active: true,
                    since_ms,
                    ended_ms: None,
                    tickets: 0,
                });
            }
            for station in current.difference(&gone) {
                let Some(mut entry) = self
                    .printers
                    .fallback()
                    .into_iter()
                    .find(|f| &f.station == station)
                else {
                    continue;
                };
                let since_ms = entry.since_ms;
                let owned = station.clone();
                entry.tickets = self
                    .readers
                    .with(move |store| store.fallback_jobs_since(&owned, since_ms))
                    .await
                    .unwrap_or_else(|error| {
                        tracing::error!(%error, "cannot count the fallback tickets");
                        0
                    });
                entry.active = false;
                entry.ended_ms = Some(now_ms);
                tracing::info!(%station, tickets = entry.tickets,
                    "a tablet of the station is back: its tickets show on screen again");
                self.printers.set_fallback(entry);
            }
            current = gone;
        }
    }
}
