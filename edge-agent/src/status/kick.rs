//! Work asked of the sync ahead of its schedule (the fleet's `reference`, `reconcile` and
//! `sync` commands), and word of when it is done. The sync takes what was asked at the start of
//! a round, wakes for it from its pauses (idle and backoff), and says which requests a finished
//! round covered and whether it failed.

use std::sync::Mutex;

use kitchen_daemon::sync::LockExt;
use tokio::sync::{Notify, watch};

/// What a round should do now rather than when it is due.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub reference: bool,
    pub reconcile: bool,
    /// Every round pushes; this only wakes the sync for one.
    pub push: bool,
    /// The newest request this covers.
    pub ticket: u64,
}

impl Asked {
    pub fn any(&self) -> bool {
        self.reference || self.reconcile || self.push
    }
}

/// A finished round: the requests up to `ticket` were covered, with its error if it failed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Done {
    pub ticket: u64,
    pub error: Option<String>,
}

/// The kick handle the sync and the fleet task share.
#[derive(Debug)]
pub struct SyncKick {
    asked: Mutex<Asked>,
    /// The last ticket handed out.
    issued: Mutex<u64>,
    wake: Notify,
    done: watch::Sender<Done>,
}

impl Default for SyncKick {
    fn default() -> Self {
        Self {
            asked: Mutex::default(),
            issued: Mutex::new(0),
            wake: Notify::new(),
            done: watch::Sender::new(Done::default()),
        }
    }
}

/// What to ask the sync for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Reference,
    Reconcile,
    Push,
}

impl SyncKick {
    /// Asks for `work` in the next round and wakes the sync; the ticket to wait for.
    pub fn ask(&self, work: Work) -> u64 {
        let ticket = {
            let mut issued = self.issued.lock_or_recover();
            *issued += 1;
            *issued
        };
        {
            let mut asked = self.asked.lock_or_recover();
            match work {
                Work::Reference => asked.reference = true,
                Work::Reconcile => asked.reconcile = true,
                Work::Push => asked.push = true,
            }
            asked.ticket = asked.ticket.max(ticket);
        }
        // A permit is kept when the sync is not waiting: its next pause ends at once.
        self.wake.notify_one();
        ticket
    }

    /// For the sync, at the start of a round: what was asked since the last one.
    pub fn take(&self) -> Asked {
        std::mem::take(&mut *self.asked.lock_or_recover())
    }

    /// For the sync, at the end of a round that began with `asked`.
    pub fn finish(&self, asked: &Asked, error: Option<String>) {
        if asked.ticket > 0 {
            self.done.send_replace(Done {
                ticket: asked.ticket,
                error,
            });
        }
    }

    /// For the sync's pauses: returns when something is asked.
    pub async fn wanted(&self) {
        self.wake.notified().await;
    }

    /// Waits until a round covering `ticket` finished; its error, if it failed.
    pub async fn done(&self, ticket: u64) -> Result<(), String> {
        let mut done = self.done.subscribe();
        let seen = done
            .wait_for(|done| done.ticket >= ticket)
            .await
            .map_err(|_| "the sync stopped".to_owned())?;
        match &seen.error {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_waits_for_the_round_that_took_it() {
        let kick = std::sync::Arc::new(SyncKick::default());
        assert!(!kick.take().any());
        let first = kick.ask(Work::Reference);
        let second = kick.ask(Work::Push);
        // The sync's pause ends at once: a permit was kept.
        tokio::time::timeout(std::time::Duration::from_secs(1), kick.wanted())
            .await
            .expect("woken");
        let asked = kick.take();
        assert_eq!(
            asked,
            Asked {
                reference: true,
                reconcile: false,
                push: true,
                ticket: second
            }
        );
        let waiter = {
            let kick = kick.clone();
            tokio::spawn(async move { kick.done(first).await })
        };
        // A round that began before the request does not answer it.
        kick.finish(&Asked::default(), None);
        kick.finish(&asked, Some("postgresql: timed out".into()));
        assert_eq!(
            waiter.await.expect("joins"),
            Err("postgresql: timed out".to_owned())
        );
        let third = kick.ask(Work::Reconcile);
        let asked = kick.take();
        kick.finish(&asked, None);
        assert_eq!(kick.done(third).await, Ok(()));
    }
}
