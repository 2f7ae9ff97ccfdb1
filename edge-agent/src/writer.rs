//! The store's one writer: a dedicated thread owns the SQLite connection and runs write jobs in
//! the order they are handed in; async callers wait for their commit. After each job the
//! event-log watch is moved if the job appended to the log, which wakes the SSE streams.

use kitchen_proto::OrderEvent;
use tokio::sync::{mpsc, oneshot, watch};

use crate::store::{Applied, Bumped, Store, StoreError};

type Job = Box<dyn FnOnce(&mut Store, i64) + Send>;

/// Handle to the writer thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct StoreWriter {
    sender: mpsc::Sender<Job>,
}

impl StoreWriter {
    /// Moves `store` onto its own thread. `log_seq` is told the newest event-log sequence
    /// after every job that appended to the log.
    pub fn spawn(mut store: Store, log_seq: watch::Sender<i64>) -> std::io::Result<Self> {
        let (sender, mut receiver) = mpsc::channel::<Job>(256);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Some(job) = receiver.blocking_recv() {
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64);
                    job(&mut store, now_ms);
                    if let Ok(newest) = store.last_event_seq() {
                        log_seq.send_if_modified(|seq| {
                            let moved = *seq != newest;
                            *seq = newest;
                            moved
                        });
                    }
                }
            })?;
        Ok(Self { sender })
    }

    /// Runs `job` on the writer thread and returns its result once committed. `Err(None)`
    /// means the writer thread is gone.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Store, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Option<StoreError>> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |store, now_ms| {
            let _ = reply.send(job(store, now_ms));
        });
        self.sender.send(job).await.map_err(|_| None)?;
        answer.await.map_err(|_| None)?.map_err(Some)
    }

    /// Applies `order_event` (see `Store::apply`).
    pub async fn apply(&self, order_event: OrderEvent) -> Result<Applied, Option<StoreError>> {
        self.run(move |store, now_ms| store.apply(&order_event, now_ms))
            .await
    }

    /// Bumps an order at stations (see `Store::bump`).
    pub async fn bump(
        &self,
        order_id: String,
        stations: Vec<String>,
    ) -> Result<Bumped, Option<StoreError>> {
        self.run(move |store, now_ms| store.bump(&order_id, &stations, now_ms))
            .await
    }

    /// Undoes bumps (see `Store::recall`).
    pub async fn recall(
        &self,
        order_id: String,
        stations: Vec<String>,
    ) -> Result<Bumped, Option<StoreError>> {
        self.run(move |store, now_ms| store.recall(&order_id, &stations, now_ms))
            .await
    }
}
