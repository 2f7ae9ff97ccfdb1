//! Scans: every frame recorded with its effect in one transaction — a station ticket bumps its
//! order, a stock scan moves prep stock.

use rusqlite::Transaction;
use serde_json::json;

use crate::{
    record::{Record, StockChange, StockChangeKind},
    scan::{Scan, ScanError, ScanRole},
    store::{self, StoreError},
};
use kitchen_proto::reference::UNASSIGNED_STATION;

use super::{Kitchen, Pending, Touched, totals::State};

/// Why a station scan did nothing (stock scans say why in `StockRejection`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanRejection {
    #[error("unknown station {0:?}")]
    UnknownStation(String),
    #[error("no open order #{0}")]
    NoOpenFriendlyId(String),
    #[error("{} open orders are #{friendly_id}: {}; scan the ticket barcode", orders.len(), orders.join(", "))]
    AmbiguousFriendlyId {
        friendly_id: String,
        orders: Vec<String>,
    },
    #[error("no open order {0:?}")]
    NoOpenOrder(String),
}

impl Kitchen {
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
    ) -> Result<crate::record::ScanRecord, StoreError> {
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
            let mut record = crate::record::ScanRecord {
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
            // Tickets: a station scanner bumps at its station, Expo's hands the order off.
            let tickets = station.is_some() || *role == ScanRole::Expo;
            match (&parsed, station) {
                (Err(error), _) => record.reason = error.to_string(),
                (Ok(_), Some(station)) if unknown_station => {
                    record.reason = ScanRejection::UnknownStation(station.to_owned()).to_string();
                }
                (Ok(Scan::Ticket { order_id }), station) if tickets => {
                    state.scan_ticket(tx, order_id, station, &mut record, now_ms, pending)?;
                    touched = Touched::orders(record.order_id.clone().filter(|_| record.accepted));
                }
                (Ok(Scan::FriendlyId(friendly)), station) if tickets => {
                    match store::open_orders_by_friendly_id(tx, friendly)?.as_slice() {
                        [one] => {
                            state.scan_ticket(tx, one, station, &mut record, now_ms, pending)?;
                            touched = Touched::orders(
                                record.order_id.clone().filter(|_| record.accepted),
                            );
                        }
                        [] => {
                            record.reason =
                                ScanRejection::NoOpenFriendlyId(friendly.clone()).to_string();
                        }
                        many => {
                            record.reason = ScanRejection::AmbiguousFriendlyId {
                                friendly_id: friendly.clone(),
                                orders: many.to_vec(),
                            }
                            .to_string();
                        }
                    }
                }
                (Ok(scan), _) => {
                    let reference = state.reference.clone();
                    match super::stock::stock_scan(
                        tx,
                        &reference,
                        role,
                        scan,
                        device,
                        &record.scan_id,
                        super::stock::Today {
                            date: today,
                            trusted: state.clock_trusted,
                        },
                        now_ms,
                    )? {
                        Ok(moved) => {
                            record.action = moved.action.into();
                            record.accepted = true;
                            record.reason = moved.note;
                            record.stock_id = moved.lot.as_ref().map(|l| l.stock_id.clone());
                            stock_change = moved.lot.map(|lot| StockChange {
                                change: if moved.action == "use" {
                                    StockChangeKind::Used
                                } else {
                                    StockChangeKind::Added
                                },
                                item_id: lot.item_id.clone(),
                                lot,
                                transfer: moved.transfer,
                                scan_id: Some(record.scan_id.clone()),
                            });
                        }
                        Err(rejection) => record.reason = rejection.to_string(),
                    }
                }
            }
            store::insert_scan(tx, &record, raw)?;
            pending.log.push(store::append_log(
                tx,
                &Record::scan(record.clone()),
                Some(&tags),
                now_ms,
            )?);
            if let Some(change) = stock_change {
                pending.log.push(store::append_log(
                    tx,
                    &Record::StockChanged(change),
                    Some(&tags),
                    now_ms,
                )?);
            }
            Ok((record, touched))
        })
    }
}
impl State {
    /// A station scanner's ticket for `order_id`: bumps it at `station` when it is open.
    /// A ticket scanned: bumped at `station`, or (Expo, no station) handed off.
    pub(super) fn scan_ticket(
        &mut self,
        tx: &Transaction<'_>,
        order_id: &str,
        station: Option<&str>,
        record: &mut crate::record::ScanRecord,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        record.order_id = Some(order_id.to_owned());
        let Some(station) = station else {
            let action = crate::otter::OrderAction::HandOff;
            let device = record.device.clone();
            match self.order_action(tx, order_id, action, &device, now_ms, pending)? {
                Ok(()) => {
                    record.action = "hand_off".into();
                    record.accepted = true;
                }
                Err(rejection) => record.reason = rejection.to_string(),
            }
            return Ok(());
        };
        if let Some(rejection) = self.unacknowledged(tx, order_id, station)? {
            record.reason = rejection.to_string();
        } else if self.orders.contains_key(order_id) {
            let stations = [station.to_owned()];
            let request = super::orders::BumpRequest {
                order_id,
                stations: &stations,
                bumped: true,
                device: &record.device,
            };
            self.set_bumps(tx, request, now_ms, pending)?;
            record.action = "bump".into();
            record.accepted = true;
        } else {
            record.reason = ScanRejection::NoOpenOrder(order_id.to_owned()).to_string();
        }
        Ok(())
    }
}
