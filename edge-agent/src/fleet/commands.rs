//! Head office's commands (docs/fleet.md): reading one off its topic and payload, running it,
//! the reply, and the memory of the last commands run so a redelivery is answered, not run
//! again. The command's own work is asked of the sync through its kick; nothing here touches
//! the kitchen.

use std::{collections::VecDeque, sync::atomic::Ordering, time::Duration};

use serde_json::{Value, json};

use crate::{
    status::{Live, StoreFacts, Work},
    store::Readers,
};

/// Commands remembered with their replies.
pub const REMEMBERED: usize = 256;
/// How long a command waits for the sync round it asked for.
const SYNC_WAIT: Duration = Duration::from_secs(45);
/// The longest command id taken (it names a reply topic).
const MAX_ID: usize = 200;

/// A command as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub id: String,
    pub name: String,
    /// Why it cannot be run (answered `ok: false`).
    pub malformed: Option<String>,
}

/// Reads a command from its name (the topic's last level) and payload. `None`: there is no id
/// to answer to, so it is dropped.
pub fn parse(name: &str, payload: &[u8]) -> Option<Command> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    let id = value.get("id")?.as_str()?.trim();
    if id.is_empty() || id.len() > MAX_ID {
        return None;
    }
    let malformed = match value.get("sent_at") {
        None | Some(Value::Null) => None,
        Some(sent_at) if sent_at.as_i64().is_some() => None,
        Some(_) => Some("malformed command: sent_at must be a number (ms)".to_owned()),
    };
    Some(Command {
        id: id.to_owned(),
        name: name.to_owned(),
        malformed,
    })
}

/// Whether `id` can be a topic level (the default reply topic ends with it).
pub fn topic_safe(id: &str) -> bool {
    !id.contains(['/', '+', '#']) && !id.chars().any(char::is_control)
}

/// The reply to `command`, `at` now.
pub fn reply(command: &Command, outcome: &Result<Value, String>, at: i64) -> Value {
    match outcome {
        Ok(result) => json!({
            "id": command.id, "command": command.name, "ok": true, "at": at, "result": result,
        }),
        Err(error) => json!({
            "id": command.id, "command": command.name, "ok": false, "at": at, "error": error,
        }),
    }
}

/// The last `REMEMBERED` commands run, by id, with their replies.
#[derive(Debug, Default)]
pub struct Memory {
    replies: VecDeque<(String, Value)>,
}

impl Memory {
    pub fn get(&self, id: &str) -> Option<&Value> {
        self.replies
            .iter()
            .find(|(known, _)| known == id)
            .map(|(_, reply)| reply)
    }

    pub fn remember(&mut self, id: String, reply: Value) {
        if self.replies.len() >= REMEMBERED {
            self.replies.pop_front();
        }
        self.replies.push_back((id, reply));
    }
}

/// What commands run against.
pub struct Context<'a> {
    pub live: &'a Live,
    pub readers: &'a Readers,
    pub started: std::time::Instant,
}

/// Runs a well-formed command: its `result`, or why it failed.
pub async fn run(name: &str, context: &Context<'_>) -> Result<Value, String> {
    let live = context.live;
    match name {
        "ping" => Ok(json!({"pong": true, "uptime_s": context.started.elapsed().as_secs()})),
        "reference" => {
            kick(live, Work::Reference).await?;
            if let Some(reason) = live.reference.refused() {
                return Err(format!(
                    "the reference data in postgresql was refused: {reason}"
                ));
            }
            Ok(json!({"version": live.sync.reference_version.load(Ordering::Relaxed)}))
        }
        "reconcile" => {
            kick(live, Work::Reconcile).await?;
            Ok(json!({"reconciled": live.sync.reconciled.load(Ordering::Relaxed)}))
        }
        "sync" => {
            kick(live, Work::Push).await?;
            let pushed = live.sync.pushed();
            let (backlog, _) = context
                .readers
                .with(move |store| store.sync_backlog(pushed))
                .await
                .map_err(|error| format!("store: {error}"))?;
            Ok(json!({"backlog": backlog}))
        }
        "diagnostics" => {
            let pushed = live.sync.pushed();
            let facts = context
                .readers
                .with(move |store| {
                    let (backlog, oldest) = store.sync_backlog(pushed)?;
                    Ok(StoreFacts {
                        backlog,
                        oldest_unsynced_ms: oldest,
                        gaps: json!(store.sequence_gaps()?),
                    })
                })
                .await
                .map_err(|error| format!("store: {error}"))?;
            Ok(json!({
                "status": live.status_json(&facts, kitchen_daemon::clock::now_ms()),
                "log": kitchen_daemon::logging::recent_problems(),
            }))
        }
        _ => Err("unknown command".into()),
    }
}

/// Asks the sync for `work` and waits for the round that did it.
async fn kick(live: &Live, work: Work) -> Result<(), String> {
    if !live.sync.configured.load(Ordering::Relaxed) {
        return Err("no sync with postgresql on this box (database_url is not set)".into());
    }
    let ticket = live.kick.ask(work);
    match tokio::time::timeout(SYNC_WAIT, live.kick.done(ticket)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("sync failed: {error}")),
        Err(_) => Err(format!(
            "the sync did not finish within {} s",
            SYNC_WAIT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_and_the_unanswerable_dropped() {
        assert_eq!(
            parse("ping", br#"{"id":"c-1","sent_at":1764700040000}"#),
            Some(Command {
                id: "c-1".into(),
                name: "ping".into(),
                malformed: None
            })
        );
        assert_eq!(
            parse("ping", br#"{"id":"c-2","extra":true}"#).map(|c| c.malformed),
            Some(None)
        );
        assert_eq!(
            parse("sync", br#"{"id":"c-3","sent_at":"yesterday"}"#).map(|c| c.malformed),
            Some(Some(
                "malformed command: sent_at must be a number (ms)".into()
            ))
        );
        for payload in [
            &b"not json"[..],
            br#"{"sent_at":1}"#,
            br#"{"id":7}"#,
            br#"{"id":"  "}"#,
            br#"["c-4"]"#,
        ] {
            assert_eq!(parse("ping", payload), None, "{payload:?}");
        }
        assert!(topic_safe("0193f1c2-7a55"));
        assert!(!topic_safe("a/b") && !topic_safe("a+") && !topic_safe("#"));
    }

    #[test]
    fn replies_say_ok_with_a_result_or_an_error() {
        let command = parse("reference", br#"{"id":"c-1"}"#).expect("a command");
        assert_eq!(
            reply(&command, &Ok(json!({"version": 8})), 5),
            json!({"id":"c-1","command":"reference","ok":true,"at":5,"result":{"version":8}})
        );
        assert_eq!(
            reply(&command, &Err("unknown command".into()), 6),
            json!({"id":"c-1","command":"reference","ok":false,"at":6,"error":"unknown command"})
        );
    }

    #[test]
    fn the_memory_keeps_the_last_commands() {
        let mut memory = Memory::default();
        for n in 0..=REMEMBERED {
            memory.remember(format!("c-{n}"), json!(n));
        }
        assert_eq!(memory.get("c-0"), None);
        assert_eq!(memory.get("c-1"), Some(&json!(1)));
        assert_eq!(
            memory.get(&format!("c-{REMEMBERED}")),
            Some(&json!(REMEMBERED))
        );
    }
}
