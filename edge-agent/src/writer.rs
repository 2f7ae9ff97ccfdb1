//! The store's one writer: a dedicated thread owns the `Kitchen` (and with it the SQLite write
//! connection) and runs write jobs in the order they are handed in; async callers wait for
//! their commit. After each job the log entries it committed are broadcast to the live event
//! streams.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use kitchen_proto::OrderEvent;
use tokio::sync::{broadcast, oneshot, watch};

pub use crate::kitchen::{
    BatchError, FloorRejection, PrintRejection, Recovered, Recovery, RestoredRecord, StockRejection,
};
pub use crate::otter::OtterRejection;
use crate::{
    device::{Device, DeviceError},
    kitchen::Kitchen,
    record::{AllergenAck, Availability, LineDone, Lot, Rush, Session},
    store::{Applied, LoggedEvent, NewDevice, PairingCode, StoreError},
};

type Job = Box<dyn FnOnce(&mut Kitchen, i64) + Send>;

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store writer stopped")]
    Gone,
}

/// How long the writer's jobs (each one transaction) take, for `/metrics`.
#[derive(Debug, Default)]
pub struct WriteStats {
    pub jobs: AtomicU64,
    pub total_us: AtomicU64,
    pub max_us: AtomicU64,
}

/// Handle to the writer thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct StoreWriter {
    sender: tokio::sync::mpsc::Sender<Job>,
    /// The clock's tick goes ahead of queued writes: the watchdog's proof of progress must not
    /// wait behind a flood of them (the thread takes it between two jobs).
    priority: std::sync::mpsc::Sender<Job>,
    pub stats: Arc<WriteStats>,
    /// Print jobs committed so far: the printer tasks wake when it moves.
    print_jobs: watch::Sender<u64>,
}

impl StoreWriter {
    /// Moves `kitchen` onto its own thread; committed log entries go to `events`.
    pub fn spawn(
        mut kitchen: Kitchen,
        events: broadcast::Sender<Arc<LoggedEvent>>,
    ) -> std::io::Result<Self> {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Job>(256);
        let (priority, priority_jobs) = std::sync::mpsc::channel::<Job>();
        let stats = Arc::new(WriteStats::default());
        let thread_stats = stats.clone();
        let print_jobs = watch::Sender::new(0u64);
        let thread_print_jobs = print_jobs.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let next = |receiver: &mut tokio::sync::mpsc::Receiver<Job>| {
                    priority_jobs
                        .try_recv()
                        .ok()
                        .or_else(|| receiver.blocking_recv())
                };
                while let Some(job) = next(&mut receiver) {
                    let started = std::time::Instant::now();
                    job(&mut kitchen, kitchen_daemon::clock::now_ms());
                    let us = started.elapsed().as_micros() as u64;
                    thread_stats.jobs.fetch_add(1, Ordering::Relaxed);
                    thread_stats.total_us.fetch_add(us, Ordering::Relaxed);
                    thread_stats.max_us.fetch_max(us, Ordering::Relaxed);
                    for entry in kitchen.take_committed() {
                        // No live stream listening is fine: they replay from the log.
                        let _ = events.send(Arc::new(entry));
                    }
                    let printed = kitchen.take_print_jobs() as u64;
                    if printed > 0 {
                        thread_print_jobs.send_modify(|jobs| *jobs += printed);
                    }
                }
            })?;
        Ok(Self {
            sender,
            priority,
            stats,
            print_jobs,
        })
    }

    /// Runs `job` on the writer thread and returns its result once committed.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Kitchen, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, WriteError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |kitchen, now_ms| {
            let _ = reply.send(job(kitchen, now_ms));
        });
        self.sender.send(job).await.map_err(|_| WriteError::Gone)?;
        Ok(answer.await.map_err(|_| WriteError::Gone)??)
    }

    /// Applies an order event (see `Kitchen::apply`).
    pub async fn apply(&self, order_event: OrderEvent) -> Result<Applied, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.apply(&order_event, now_ms))
            .await
    }

    /// Applies order events in one transaction (see `Kitchen::apply_all`).
    pub async fn apply_all(&self, events: Vec<OrderEvent>) -> Result<Vec<Applied>, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.apply_all(&events, now_ms))
            .await
    }

    /// Rebuilds the kitchen on a new card (see `Kitchen::recover`).
    pub async fn recover(&self, recovery: Recovery) -> Result<Recovered, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.recover(&recovery, now_ms))
            .await
    }

    /// Bumps (`bumped`) or recalls an order at stations; `None`: no such order.
    pub async fn bump(
        &self,
        order_id: String,
        stations: Vec<String>,
        bumped: bool,
        device: String,
    ) -> Result<Option<Vec<String>>, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.bump(&order_id, &stations, bumped, &device, now_ms))
            .await
    }

    /// Bumps an order at one station as its cook does (see `Kitchen::bump_at_station`).
    pub async fn bump_at_station(
        &self,
        order_id: String,
        station: String,
        device: String,
    ) -> Result<Result<Vec<String>, FloorRejection>, WriteError> {
        self.run(move |kitchen, now_ms| {
            kitchen.bump_at_station(&order_id, &station, &device, now_ms)
        })
        .await
    }

    /// Acknowledges an order's allergen warning at a station.
    pub async fn acknowledge_allergen(
        &self,
        order_id: String,
        station: String,
        device: String,
    ) -> Result<Result<AllergenAck, FloorRejection>, WriteError> {
        self.run(move |kitchen, now_ms| {
            kitchen.acknowledge_allergen(&order_id, &station, &device, now_ms)
        })
        .await
    }

    /// Taps an order's line off at a station, or back on.
    pub async fn tap_line(
        &self,
        order_id: String,
        line_no: i64,
        station: String,
        done: bool,
        device: String,
    ) -> Result<Result<LineDone, FloorRejection>, WriteError> {
        self.run(move |kitchen, now_ms| {
            kitchen.tap_line(&order_id, line_no, &station, done, &device, now_ms)
        })
        .await
    }

    /// Marks an order rush, or takes the mark off.
    pub async fn rush(
        &self,
        order_id: String,
        rush: bool,
        device: String,
    ) -> Result<Result<Rush, FloorRejection>, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.rush(&order_id, rush, &device, now_ms))
            .await
    }

    /// Starts a batch session (see `Kitchen::start_batch`).
    pub async fn start_batch(
        &self,
        station_id: String,
        item_id: String,
        quantity: Option<u32>,
        device: String,
    ) -> Result<Result<Session, BatchError>, WriteError> {
        self.run(move |kitchen, now_ms| {
            kitchen.start_batch(&station_id, &item_id, quantity, &device, now_ms)
        })
        .await
    }

    /// Completes a batch session; `None`: no such session.
    pub async fn complete_batch(&self, session_id: String) -> Result<Option<Session>, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.complete_batch(&session_id, now_ms))
            .await
    }

    /// Records and acts on a scan (see `Kitchen::scan`).
    pub async fn scan(
        &self,
        device: String,
        role: crate::scan::ScanRole,
        raw: Vec<u8>,
        frame_len: usize,
    ) -> Result<crate::record::ScanRecord, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.scan(&device, &role, &raw, frame_len, now_ms))
            .await
    }

    /// Discards open stock; `Ok(Err(rejection))`: no such stock, or not open.
    pub async fn discard_stock(
        &self,
        stock_id: String,
        device: String,
    ) -> Result<Result<Lot, StockRejection>, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.discard_stock(&stock_id, &device, now_ms))
            .await
    }

    /// Deletes rows an older agent left in the outbox once PostgreSQL has committed them, up to
    /// and including `last`.
    pub async fn delete_synced(&self, last: i64) -> Result<usize, WriteError> {
        self.run(move |kitchen, _| kitchen.delete_synced(last))
            .await
    }

    /// Records that the event log's synced records up to `seq` are in PostgreSQL (the sync's
    /// cursor, written every few minutes: a commit of its own).
    pub async fn set_pushed_through(&self, seq: i64) -> Result<(), WriteError> {
        self.run(move |kitchen, _| kitchen.set_pushed_through(seq))
            .await
    }

    /// Swaps in new reference data (see `Kitchen::set_reference`).
    pub async fn set_reference(
        &self,
        reference: std::sync::Arc<kitchen_proto::reference::Reference>,
        source: String,
    ) -> Result<(), WriteError> {
        self.run(move |kitchen, now_ms| kitchen.set_reference(reference, &source, now_ms))
            .await
    }

    /// Pairs a device directly (a manager's request, or the console).
    pub async fn pair_device(
        &self,
        new: NewDevice,
    ) -> Result<Result<Device, DeviceError>, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.pair_device(&new, now_ms))
            .await
    }

    /// Pairs with the provisioning code; `None` once it has been used.
    pub async fn pair_bootstrap(
        &self,
        new: NewDevice,
    ) -> Result<Option<Result<Device, DeviceError>>, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.pair_bootstrap(&new, now_ms))
            .await
    }

    /// Pairs with a manager's code; `None`: no such code, or expired.
    pub async fn pair_with_code(
        &self,
        code_hash: String,
        new: NewDevice,
    ) -> Result<Option<Result<Device, DeviceError>>, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.pair_with_code(&code_hash, new, now_ms))
            .await
    }

    pub async fn add_pairing_code(&self, code: PairingCode) -> Result<(), WriteError> {
        self.run(move |kitchen, _| kitchen.add_pairing_code(&code))
            .await
    }

    /// Revokes a device; `None`: no such device.
    pub async fn revoke_device(&self, id: String) -> Result<Option<Device>, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.revoke_device(&id, now_ms))
            .await
    }

    /// Lets the clock move scheduled orders into the count, and tells the kitchen whether the
    /// clock can be trusted. Ahead of queued writes: the thread takes it after the job it is
    /// running.
    pub async fn tick(&self, clock_trusted: bool) -> Result<(), WriteError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |kitchen, now_ms| {
            kitchen.set_clock_trusted(clock_trusted);
            let _ = reply.send(kitchen.tick(now_ms));
        });
        self.priority.send(job).map_err(|_| WriteError::Gone)?;
        // Wakes the thread if it waits for work; when the queue is full it is busy and finds
        // the tick after its current job anyway.
        let _ = self.sender.try_send(Box::new(|_, _| {}));
        Ok(answer.await.map_err(|_| WriteError::Gone)??)
    }

    /// An Expo or manager action on an order (see `Kitchen::order_action`).
    pub async fn order_action(
        &self,
        order_id: String,
        action: crate::otter::OrderAction,
        device: String,
    ) -> Result<Result<(), OtterRejection>, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.order_action(&order_id, action, &device, now_ms))
            .await
    }

    /// 86es an item (`Some(until)`) or puts it back on (`None`).
    pub async fn availability(
        &self,
        item_id: String,
        until: Option<crate::otter::Until>,
        note: String,
        device: String,
        staff: Option<String>,
    ) -> Result<Result<Availability, OtterRejection>, WriteError> {
        self.run(move |kitchen, now_ms| match until {
            Some(until) => kitchen.suspend(&item_id, until, &note, &device, staff, now_ms),
            None => kitchen.unsuspend(&item_id, &device, staff, now_ms),
        })
        .await
    }

    /// The relay's calls read back from PostgreSQL, up to `change_id`.
    pub async fn otter_calls(
        &self,
        calls: Vec<crate::store::CallChange>,
        change_id: i64,
    ) -> Result<usize, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.otter_calls(&calls, change_id, now_ms))
            .await
    }

    /// Trims the event log to `keep` entries and processed ids to `keep_ms`.
    pub async fn prune(&self, keep: i64, keep_ms: i64) -> Result<usize, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.prune(keep, keep_ms, now_ms))
            .await
    }

    /// Moves whenever print jobs were committed (the printer tasks wait on it).
    pub fn print_jobs(&self) -> watch::Receiver<u64> {
        self.print_jobs.subscribe()
    }

    /// The stations whose tablets are all gone: their new tickets print on the fallback
    /// printer.
    pub async fn set_print_fallback(
        &self,
        stations: std::collections::BTreeSet<String>,
    ) -> Result<(), WriteError> {
        self.run(move |kitchen, _| {
            kitchen.set_print_fallback(stations);
            Ok(())
        })
        .await
    }

    /// Prints an order again (see `Kitchen::reprint`).
    pub async fn reprint(
        &self,
        order_id: String,
        station: Option<String>,
    ) -> Result<Result<usize, PrintRejection>, WriteError> {
        self.run(move |kitchen, now_ms| kitchen.reprint(&order_id, station.as_deref(), now_ms))
            .await
    }

    /// A print job's outcome: `Ok` printed; `Err((why, next try))`.
    pub async fn print_outcome(
        &self,
        job_id: i64,
        outcome: Result<(), (String, i64)>,
    ) -> Result<(), WriteError> {
        self.run(move |kitchen, now_ms| match outcome {
            Ok(()) => kitchen.print_done(job_id, now_ms).map(|_| ()),
            Err((error, next_try_ms)) => kitchen.print_failed(job_id, &error, next_try_ms),
        })
        .await
    }
}
