//! The JSON on the fleet topics (docs/fleet.md), read leniently: unknown fields are ignored,
//! a field of the wrong type is treated as absent, only what the relay needs is required.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

/// Why a payload was refused (acknowledged and counted, never retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("not a JSON object")]
    NotJson,
    #[error("missing or invalid {0:?}")]
    Field(&'static str),
}

/// `kitchens/<k>/presence`.
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    pub online: bool,
    /// When the state began, by the box's clock; absent in the will.
    pub since: Option<DateTime<Utc>>,
    pub version: Option<String>,
    pub boot_id: Option<String>,
    pub reason: Option<String>,
}

/// `kitchens/<k>/telemetry`: the document kept whole, plus what goes into columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    pub at: DateTime<Utc>,
    pub version: Option<String>,
    pub boot_id: Option<String>,
    pub feed: Option<String>,
    pub backlog: Option<i64>,
    pub oldest_unsynced: Option<DateTime<Utc>>,
    pub doc: Value,
}

/// `kitchens/<k>/replies/<id>`: kept whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub doc: Value,
}

fn object(payload: &[u8]) -> Result<serde_json::Map<String, Value>, PayloadError> {
    match serde_json::from_slice(payload) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(PayloadError::NotJson),
    }
}

fn text(map: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty() && value.len() <= 200)
        .map(str::to_owned)
}

/// UNIX milliseconds → a time, if plausible (after 2000, before 2200).
pub fn millis(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let ms = value?.as_i64()?;
    if !(946_684_800_000..7_258_118_400_000).contains(&ms) {
        return None;
    }
    Utc.timestamp_millis_opt(ms).single()
}

pub fn presence(payload: &[u8]) -> Result<Presence, PayloadError> {
    let map = object(payload)?;
    let online = match map.get("state").and_then(Value::as_str) {
        Some("online") => true,
        Some("offline") => false,
        _ => return Err(PayloadError::Field("state")),
    };
    Ok(Presence {
        online,
        since: millis(map.get("since")),
        version: text(&map, "version"),
        boot_id: text(&map, "boot_id"),
        reason: text(&map, "reason"),
    })
}

pub fn telemetry(payload: &[u8]) -> Result<Telemetry, PayloadError> {
    let map = object(payload)?;
    let at = millis(map.get("at")).ok_or(PayloadError::Field("at"))?;
    let sync = map.get("sync");
    Ok(Telemetry {
        at,
        version: text(&map, "version"),
        boot_id: text(&map, "boot_id"),
        feed: text(&map, "feed"),
        backlog: sync
            .and_then(|sync| sync.get("backlog"))
            .and_then(Value::as_i64)
            .filter(|backlog| *backlog >= 0),
        oldest_unsynced: millis(sync.and_then(|sync| sync.get("oldest_unsynced_ms"))),
        doc: Value::Object(map),
    })
}

pub fn reply(payload: &[u8]) -> Result<Reply, PayloadError> {
    let map = object(payload)?;
    if !map.get("ok").is_some_and(Value::is_boolean) {
        return Err(PayloadError::Field("ok"));
    }
    Ok(Reply {
        doc: Value::Object(map),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_documents_parse() {
        let online = presence(
            br#"{"state":"online","since":1764700000000,"version":"0.1.0","boot_id":"b1"}"#,
        )
        .expect("online");
        assert!(online.online);
        assert_eq!(
            online.since.map(|t| t.timestamp_millis()),
            Some(1_764_700_000_000)
        );
        let will = presence(
            br#"{"state":"offline","reason":"lost","version":"0.1.0","boot_id":"b1","extra":1}"#,
        )
        .expect("will");
        assert!(!will.online);
        assert_eq!(will.since, None);
        assert_eq!(will.reason.as_deref(), Some("lost"));
        assert_eq!(
            presence(b"{\"state\":\"sleeping\"}"),
            Err(PayloadError::Field("state"))
        );
        assert_eq!(presence(b"not json"), Err(PayloadError::NotJson));
        assert_eq!(presence(b"[1,2]"), Err(PayloadError::NotJson));
    }

    #[test]
    fn telemetry_needs_a_plausible_time() {
        let doc = telemetry(
            br#"{"at":1764700030000,"version":"0.1.0","feed":"connected","sync":{"state":"connected","backlog":3,"oldest_unsynced_ms":null}}"#,
        )
        .expect("telemetry");
        assert_eq!(doc.backlog, Some(3));
        assert_eq!(doc.feed.as_deref(), Some("connected"));
        assert_eq!(doc.oldest_unsynced, None);
        assert_eq!(
            telemetry(br#"{"at":"soon"}"#),
            Err(PayloadError::Field("at"))
        );
        assert_eq!(telemetry(br#"{"at":12}"#), Err(PayloadError::Field("at")));
    }

    #[test]
    fn replies_need_ok() {
        assert!(reply(br#"{"id":"x","command":"ping","ok":true,"result":{"pong":true}}"#).is_ok());
        assert_eq!(reply(br#"{"id":"x"}"#), Err(PayloadError::Field("ok")));
    }
}
