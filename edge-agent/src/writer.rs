//! The store's one writer: a dedicated thread owns the SQLite connection and applies events in
//! the order they are handed in; async callers wait for their commit.

use kitchen_proto::OrderEvent;
use tokio::sync::{mpsc, oneshot, watch};

use crate::store::{Applied, Store, StoreError};

type Reply = oneshot::Sender<Result<Applied, StoreError>>;

/// Handle to the writer thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct StoreWriter {
    sender: mpsc::Sender<(OrderEvent, Reply)>,
}

impl StoreWriter {
    /// Moves `store` onto its own thread. `log_seq` is told the newest event-log sequence after
    /// every commit that appended to the log.
    pub fn spawn(mut store: Store, log_seq: watch::Sender<i64>) -> std::io::Result<Self> {
        let (sender, mut receiver) = mpsc::channel::<(OrderEvent, Reply)>(256);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Some((order_event, reply)) = receiver.blocking_recv() {
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64);
                    let applied = store.apply(&order_event, now_ms);
                    if let Ok(Applied::Applied { log_seq: seq, .. }) = &applied {
                        log_seq.send_replace(*seq);
                    }
                    let _ = reply.send(applied);
                }
            })?;
        Ok(Self { sender })
    }

    /// Applies `order_event` and returns once its transaction committed. `Err(None)` means the
    /// writer thread is gone.
    pub async fn apply(&self, order_event: OrderEvent) -> Result<Applied, Option<StoreError>> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((order_event, reply))
            .await
            .map_err(|_| None)?;
        answer.await.map_err(|_| None)?.map_err(Some)
    }
}
