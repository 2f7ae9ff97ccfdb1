//! Tickets to print, enqueued in the transaction of the change that causes them: a new or
//! changed order at each station with a printer (or, while none of a station's tablets is
//! connected, on the fallback printer), the bag ticket when an order is ready, and reprints.
//! The printer tasks send them (`printer`); this only decides what and where.

use std::collections::BTreeSet;

use rusqlite::Transaction;

use crate::{
    receipt::{self, Context, JobKind, Route, Routes},
    record::Ticket,
    store::{self, NewPrintJob, StoreError},
};

use super::{Kitchen, Pending, totals::State};

/// Where tickets go and which stations have lost their tablets.
#[derive(Debug, Clone, Default)]
pub struct Printing {
    pub routes: Routes,
    /// Stations whose tablets are all gone: their tickets go to the fallback printer.
    pub fallback: BTreeSet<String>,
}

/// Why a reprint cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrintRejection {
    #[error("no open order {0}")]
    UnknownOrder(String),
    #[error("no printer for {0}")]
    NoPrinter(String),
}

impl State {
    /// Station tickets for a new (`updated` false) or changed order.
    pub(super) fn print_order(
        &self,
        tx: &Transaction<'_>,
        ticket: &Ticket,
        updated: bool,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        if self.print.routes.is_empty() {
            return Ok(());
        }
        for station in &ticket.stations {
            let banner = updated.then(|| "UPDATED".to_owned());
            let how = (JobKind::Station, false);
            self.print_station(tx, ticket, station, banner, how, now_ms, pending)?;
        }
        Ok(())
    }

    /// A `CANCELLED` slip at each of `stations` that printed the order's ticket (its printers,
    /// or the fallback printer while it has no screen): a station without a screen would
    /// otherwise make it.
    pub(super) fn print_void(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
        stations: &[String],
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        if self.print.routes.is_empty() || stations.is_empty() {
            return Ok(());
        }
        let friendly_id: String = rusqlite::OptionalExtension::optional(tx.query_row(
            "SELECT friendly_id FROM orders WHERE order_id = ?1",
            [order_id],
            |row| row.get(0),
        ))?
        .unwrap_or_default();
        for station in stations {
            let name = self
                .reference
                .station(station)
                .map_or(station.as_str(), |s| s.name.as_str());
            let own: Vec<&Route> = self.print.routes.station(station).collect();
            let routes = match self.print.routes.fallback() {
                Some(fallback) if own.is_empty() && self.print.fallback.contains(station) => {
                    vec![fallback]
                }
                _ => own,
            };
            for route in routes {
                let cx = Context {
                    columns: route.columns,
                    banner: Some("cancelled".into()),
                    ..Context::default()
                };
                let job = NewPrintJob {
                    printer: &route.printer,
                    kind: JobKind::Void.name(),
                    order_id: Some(order_id),
                    station_id: Some(station),
                    bytes: receipt::void_ticket(&friendly_id, name, &cx),
                };
                store::insert_print_job(tx, &job, now_ms)?;
                pending.prints += 1;
            }
        }
        Ok(())
    }

    /// A station's ticket on its printers, or on the fallback printer while the station has
    /// no tablet (or always, with `how.1`, for a reprint); how many jobs.
    #[allow(clippy::too_many_arguments)]
    fn print_station(
        &self,
        tx: &Transaction<'_>,
        ticket: &Ticket,
        station: &str,
        banner: Option<String>,
        (kind, any_fallback): (JobKind, bool),
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<usize, StoreError> {
        let name = self
            .reference
            .station(station)
            .map_or(station, |s| s.name.as_str());
        let own: Vec<&Route> = self.print.routes.station(station).collect();
        let (routes, kind, banner) = match (own.is_empty(), self.print.routes.fallback()) {
            (false, _) => (own, kind, banner),
            (true, Some(fallback)) if any_fallback => (vec![fallback], kind, banner),
            (true, Some(fallback)) if self.print.fallback.contains(station) => (
                vec![fallback],
                JobKind::Fallback,
                Some(format!("screen down - {name}")),
            ),
            _ => return Ok(0),
        };
        for route in &routes {
            let cx = self.print_context(ticket, route, banner.clone());
            let bytes = receipt::station_ticket(ticket, station, name, &cx);
            self.enqueue(
                tx,
                route,
                kind,
                ticket,
                Some(station),
                bytes,
                now_ms,
                pending,
            )?;
        }
        Ok(routes.len())
    }

    /// The bag ticket on the Expo printers; how many jobs.
    pub(super) fn print_expo(
        &self,
        tx: &Transaction<'_>,
        ticket: &Ticket,
        banner: Option<String>,
        kind: JobKind,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<usize, StoreError> {
        let routes: Vec<&Route> = self.print.routes.expo().collect();
        for route in &routes {
            let cx = self.print_context(ticket, route, banner.clone());
            let code = receipt::ticket_code(ticket, route.columns);
            let bytes = receipt::expo_ticket(ticket, &code, &cx);
            self.enqueue(tx, route, kind, ticket, None, bytes, now_ms, pending)?;
        }
        Ok(routes.len())
    }

    /// The bag ticket of an order that just became ready.
    pub(super) fn print_ready(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        if self.print.routes.expo().next().is_none() {
            return Ok(());
        }
        if let Some(ticket) = self.ticket(tx, order_id, self.orders.get(order_id))? {
            self.print_expo(tx, &ticket, None, JobKind::Expo, now_ms, pending)?;
        }
        Ok(())
    }

    fn print_context(&self, ticket: &Ticket, route: &Route, banner: Option<String>) -> Context {
        Context {
            columns: route.columns,
            banner,
            received: local_time(ticket.received_at_ms),
            due: local_time(ticket.promised_at_ms),
            // The reference data's `[floor] allergen_words`, as the screens use them.
            allergen_words: self.reference.floor.allergen_words(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        tx: &Transaction<'_>,
        route: &Route,
        kind: JobKind,
        ticket: &Ticket,
        station: Option<&str>,
        bytes: Vec<u8>,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        let job = NewPrintJob {
            printer: &route.printer,
            kind: kind.name(),
            order_id: Some(&ticket.order_id),
            station_id: station,
            bytes,
        };
        store::insert_print_job(tx, &job, now_ms)?;
        pending.prints += 1;
        Ok(())
    }
}

/// `HH:MM` in the box's time zone (the kitchen's clock on the wall).
fn local_time(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| "--:--".into(), |t| t.format("%H:%M").to_string())
}

impl Kitchen {
    /// Where tickets go (from the config).
    pub fn set_print_routes(&mut self, routes: Routes) {
        self.state.print.routes = routes;
    }

    /// The stations whose tablets are all gone (the printer adapter watches the streams).
    pub fn set_print_fallback(&mut self, stations: BTreeSet<String>) {
        self.state.print.fallback = stations;
    }

    /// Jobs committed since the last call (the writer wakes the printer tasks).
    pub fn take_print_jobs(&mut self) -> usize {
        std::mem::take(&mut self.print_jobs)
    }

    /// Prints an open order again: a station's ticket (on its printers, or the fallback
    /// printer), or without `station` the bag ticket on the Expo printers. How many jobs.
    pub fn reprint(
        &mut self,
        order_id: &str,
        station: Option<&str>,
        now_ms: i64,
    ) -> Result<Result<usize, PrintRejection>, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            let Some(ticket) = state.ticket(tx, order_id, state.orders.get(order_id))? else {
                return Ok((
                    Err(PrintRejection::UnknownOrder(order_id.to_owned())),
                    Default::default(),
                ));
            };
            let banner = Some("reprint".to_owned());
            let jobs = match station {
                // A station without a printer of its own reprints on the fallback printer.
                Some(station) => {
                    let how = (JobKind::Reprint, true);
                    state.print_station(tx, &ticket, station, banner, how, now_ms, pending)?
                }
                None => state.print_expo(tx, &ticket, banner, JobKind::Reprint, now_ms, pending)?,
            };
            let result = if jobs == 0 {
                Err(PrintRejection::NoPrinter(
                    station.map_or("expo".to_owned(), |s| format!("station {s}")),
                ))
            } else {
                Ok(jobs)
            };
            Ok((result, Default::default()))
        })
    }

    /// A job's bytes were written and the printer reads back fine.
    pub fn print_done(&mut self, job_id: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.store.mark_printed(job_id, now_ms)
    }

    /// A job could not be printed: why, and when to try again.
    pub fn print_failed(
        &mut self,
        job_id: i64,
        error: &str,
        next_try_ms: i64,
    ) -> Result<(), StoreError> {
        self.store.mark_print_failed(job_id, error, next_try_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kitchen_proto::{EventType, Fulfillment, OrderEvent, OrderStatus};
    use kitchen_testkit::events::{line, sku_line};

    use super::*;
    use crate::store::Store;

    const NOW: i64 = 1_741_977_600_000;

    fn route(printer: &str, stations: &[&str], expo: bool, fallback: bool) -> Route {
        Route {
            printer: printer.into(),
            columns: 48,
            stations: stations.iter().map(|s| (*s).to_owned()).collect(),
            expo,
            fallback,
        }
    }

    fn kitchen() -> Kitchen {
        let reference = kitchen_proto::reference::Reference::parse(include_str!(
            "../../tests/fixtures/three_stations.toml"
        ))
        .expect("valid reference");
        let store = Store::open_in_memory().expect("store");
        let mut kitchen =
            Kitchen::open(store, Arc::new(reference), 20 * 60_000, NOW).expect("open");
        kitchen.set_print_routes(Routes {
            printers: vec![
                route("p-fry", &["fry"], false, false),
                route("p-pass", &[], true, true),
            ],
        });
        kitchen
    }

    /// A burger (grill) and fries (fry).
    fn order(order_id: &str) -> OrderEvent {
        OrderEvent {
            event_id: format!("ev-{order_id}"),
            event_type: EventType::NewOrder as i32,
            otter_event_type: "orders.new_order".into(),
            event_time_ms: NOW,
            store_id: "s1".into(),
            order_id: order_id.into(),
            friendly_id: order_id.to_uppercase(),
            status: OrderStatus::NewOrder as i32,
            fulfillment: Some(Fulfillment {
                pickup_time_ms: Some(NOW + 20 * 60_000),
                ..Fulfillment::default()
            }),
            items: vec![
                sku_line("sku-smash-double", "Double Smash Burger", 1, vec![]),
                line("Fries", 1, vec![]),
            ],
            has_snapshot: true,
            received_at_ms: NOW,
            ..OrderEvent::default()
        }
    }

    /// Jobs waiting per printer.
    fn waiting(kitchen: &Kitchen) -> (i64, i64) {
        let count = |printer| kitchen.store.next_print_job(printer).expect("read").1;
        (count("p-fry"), count("p-pass"))
    }

    #[test]
    fn tickets_are_queued_once_with_the_change_that_prints_them() {
        let mut kitchen = kitchen();
        kitchen.apply(&order("a1"), NOW).expect("applied");
        // The fryer's ticket; the grill has no printer and still its screens: nothing.
        assert_eq!(waiting(&kitchen), (1, 0));
        assert_eq!(kitchen.take_print_jobs(), 1);
        // A redelivered event changes nothing, so prints nothing.
        kitchen.apply(&order("a1"), NOW).expect("duplicate");
        assert_eq!(waiting(&kitchen), (1, 0));
        let (job, _) = kitchen.store.next_print_job("p-fry").expect("read");
        let job = job.expect("a job");
        assert_eq!(
            (job.kind.as_str(), job.order_id.as_deref()),
            ("station", Some("a1"))
        );
        // Ready: the bag ticket at the pass.
        let stations = vec!["grill".to_owned(), "fry".to_owned()];
        kitchen
            .bump("a1", &stations, true, "expo", NOW)
            .expect("bumped");
        assert_eq!(waiting(&kitchen), (1, 1));
        // Recalled and bumped again: ready once more, a second bag ticket (it was re-made).
        kitchen
            .bump("a1", &stations, false, "expo", NOW)
            .expect("recalled");
        kitchen
            .bump("a1", &stations, true, "expo", NOW)
            .expect("bumped");
        assert_eq!(waiting(&kitchen), (1, 2));
        // Printed jobs leave the queue; a failed one stays with its reason.
        assert!(kitchen.print_done(job.job_id, NOW).expect("marked"));
        assert!(!kitchen.print_done(job.job_id, NOW).expect("only once"));
        assert_eq!(waiting(&kitchen), (0, 2));
        // A day later the tickets nobody could print are dropped.
        kitchen
            .prune(1000, 1000, NOW + 25 * 3600 * 1000)
            .expect("pruned");
        assert_eq!(waiting(&kitchen), (0, 0));
    }

    #[test]
    fn a_cancelled_order_prints_a_slip_where_its_ticket_printed() {
        let mut kitchen = kitchen();
        kitchen.apply(&order("c1"), NOW).expect("applied");
        let cancel = OrderEvent {
            event_id: "ev-c1-cancel".into(),
            otter_event_type: "orders.cancel".into(),
            store_id: "s1".into(),
            order_id: "c1".into(),
            status: OrderStatus::Canceled as i32,
            ..OrderEvent::default()
        };
        kitchen.apply(&cancel, NOW).expect("cancelled");
        assert_eq!(waiting(&kitchen), (2, 0));
        let slip = kitchen
            .store
            .next_print_job("p-fry")
            .expect("read")
            .0
            .map(|job| job.job_id)
            .expect("a job");
        kitchen.print_done(slip, NOW).expect("marked");
        let (job, _) = kitchen.store.next_print_job("p-fry").expect("read");
        let job = job.expect("the slip");
        assert_eq!(job.kind, "void");
        let text = String::from_utf8_lossy(&job.bytes);
        assert!(text.contains(" CANCELLED ") && text.contains("#C1\n") && text.contains("FRYER"));
        // A manager's cancel on the box too.
        kitchen.apply(&order("c2"), NOW).expect("applied");
        let cancel = crate::otter::OrderAction::Cancel {
            reason: "KITCHEN_CLOSED".into(),
            note: None,
        };
        let done = kitchen
            .order_action("c2", cancel, "manager", NOW)
            .expect("ok");
        assert_eq!(done, Ok(()));
        assert_eq!(waiting(&kitchen), (3, 0));
    }

    #[test]
    fn a_station_without_screens_prints_on_the_fallback_printer() {
        let mut kitchen = kitchen();
        kitchen.set_print_fallback(["grill".to_owned(), "fry".to_owned()].into());
        kitchen.apply(&order("b1"), NOW).expect("applied");
        // The grill's on the fallback printer; the fryer has its own printer.
        assert_eq!(waiting(&kitchen), (1, 1));
        let (job, _) = kitchen.store.next_print_job("p-pass").expect("read");
        let job = job.expect("a job");
        assert_eq!(job.kind, "fallback");
        assert!(String::from_utf8_lossy(&job.bytes).contains(" SCREEN DOWN - GRILL "));
        // Reprints: the grill's (fallback printer), the bag ticket; none for drinks' printer.
        assert_eq!(
            kitchen.reprint("b1", Some("grill"), NOW).expect("ok"),
            Ok(1)
        );
        assert_eq!(kitchen.reprint("b1", None, NOW).expect("ok"), Ok(1));
        assert_eq!(
            kitchen.reprint("nope", None, NOW).expect("ok"),
            Err(PrintRejection::UnknownOrder("nope".into()))
        );
        kitchen.set_print_routes(Routes::default());
        assert_eq!(
            kitchen.reprint("b1", Some("fry"), NOW).expect("ok"),
            Err(PrintRejection::NoPrinter("station fry".into()))
        );
        assert_eq!(waiting(&kitchen), (1, 3));
    }
}
