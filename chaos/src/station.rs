//! The kitchen floor's part of the load: the grill's serial scanner at each kitchen (a pty)
//! reading order tickets — each read is a bump at the grill — and batch sessions started and
//! completed through the agents' HTTP API, completions retried until answered as a tablet
//! retries. Recorded for the check like the webhooks: what was sent, and what was answered.

use std::{
    fs::File,
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    load::{Shared, lock},
    system::STATION,
};

/// The item every order is made of, as the reference names it.
pub const ITEM_ID: &str = "double-smash";

/// A ticket read by a kitchen's grill scanner. Whether the agent took it is known only from
/// what it answered on its event stream (`scan.recorded` / `scan.rejected`), read by the
/// tablet; the check looks there.
#[derive(Debug, Clone)]
pub struct Scan {
    pub kitchen: usize,
    pub order_id: String,
    /// The exact bytes sent, without the CR that ends the frame. (While the agent is down
    /// they wait in the pty, as in a scanner's buffer, and are read when it opens it again.)
    pub code: String,
}

/// A batch session a kitchen was asked for.
#[derive(Debug, Clone)]
pub struct Session {
    pub kitchen: usize,
    pub quantity: u32,
    /// The start's answer: status, and the session id of a `201`.
    pub started: Option<(u16, Option<String>)>,
    /// The completion's `200` answer: the units given to each order.
    pub allocations: Option<Vec<(String, u32)>>,
    /// When the start, and the completion, were answered.
    pub answered: (Option<Instant>, Option<Instant>),
}

pub fn ticket(order_id: &str) -> String {
    format!("ORDER:{order_id}")
}

/// Writes a ticket to `scanner`'s master side, CR-terminated, off the runtime (a full pty
/// blocks); gives up after 5 s.
pub async fn scan(record: Shared, scanner: Arc<File>, kitchen: usize, order_id: String) {
    let code = ticket(&order_id);
    let bytes = format!("{code}\r").into_bytes();
    let write = tokio::task::spawn_blocking(move || (&*scanner).write_all(&bytes));
    if !matches!(
        tokio::time::timeout(Duration::from_secs(5), write).await,
        Ok(Ok(Ok(())))
    ) {
        eprintln!("chaos: the scanner pty of kitchen {kitchen} took no ticket for 5 s");
    }
    lock(&record).scans.push(Scan {
        kitchen,
        order_id,
        code,
    });
}

/// Starts a session of `quantity` at `base`'s grill; after `cook`, completes it, retrying
/// until it is answered `200` (completing is idempotent) or `give_up`.
pub async fn session(
    record: Shared,
    base: String,
    kitchen: usize,
    quantity: u32,
    cook: Duration,
    give_up: CancellationToken,
) {
    let client = kitchen_testkit::http::client();
    let index = {
        let mut record = lock(&record);
        record.sessions.push(Session {
            kitchen,
            quantity,
            started: None,
            allocations: None,
            answered: (None, None),
        });
        record.sessions.len() - 1
    };
    let answer = client
        .post(format!("{base}/api/batches/{STATION}/{ITEM_ID}/start"))
        .json(&json!({ "quantity": quantity }))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let Ok(answer) = answer else { return };
    let status = answer.status().as_u16();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    let session_id = body["session_id"].as_str().map(str::to_owned);
    {
        let session = &mut lock(&record).sessions[index];
        session.started = Some((status, session_id.clone()));
        session.answered.0 = Some(Instant::now());
    }
    let (201, Some(session_id)) = (status, session_id) else {
        return;
    };
    let mut backoff = Duration::from_millis(200);
    tokio::time::sleep(cook).await;
    loop {
        let answer = client
            .post(format!("{base}/api/batch-sessions/{session_id}/complete"))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(answer) = answer {
            let status = answer.status();
            if status == 200
                && let Ok(body) = answer.json::<serde_json::Value>().await
            {
                let session = &mut lock(&record).sessions[index];
                session.allocations = Some(allocations_of(&body["allocations"]));
                session.answered.1 = Some(Instant::now());
                return;
            }
            if status.is_client_error() {
                eprintln!("chaos: completing session {session_id} answered {status}");
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = give_up.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A batch session's allocations as the agent writes them (`[{"order_id", "units"}, …]`, in its
/// answer and in its store): (order id, units); entries that are not that shape are skipped.
pub fn allocations_of(list: &serde_json::Value) -> Vec<(String, u32)> {
    list.as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| {
                    Some((
                        a["order_id"].as_str()?.to_owned(),
                        u32::try_from(a["units"].as_u64()?).ok()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}
