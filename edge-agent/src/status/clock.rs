//! Whether the box's clock is known good: written by housekeeping (from systemd-timesyncd), read
//! by `/api/status`, the displays and the fleet telemetry. Until it is, use-by dates cannot be
//! checked, so new stock with one is refused (`kitchen::stock`).

use std::sync::atomic::{AtomicU8, Ordering};

use serde_json::{Value, json};

/// What the log says when the clock is (or becomes) not synchronised.
pub const NOT_SYNCHRONISED: &str =
    "the clock is not synchronised: new stock with a use-by date is refused until it is";

const UNKNOWN: u8 = 0;
const SYNCHRONISED: u8 = 1;
const UNSYNCHRONISED: u8 = 2;

/// The clock's state: synchronised, not (yet), or unknown (nothing to ask: trusted).
#[derive(Debug, Default)]
pub struct ClockState(AtomicU8);

impl ClockState {
    /// Records the latest reading; returns whether it changed.
    pub fn set(&self, synchronised: Option<bool>) -> bool {
        let value = match synchronised {
            None => UNKNOWN,
            Some(true) => SYNCHRONISED,
            Some(false) => UNSYNCHRONISED,
        };
        self.0.swap(value, Ordering::Relaxed) != value
    }

    pub fn synchronised(&self) -> Option<bool> {
        match self.0.load(Ordering::Relaxed) {
            SYNCHRONISED => Some(true),
            UNSYNCHRONISED => Some(false),
            _ => None,
        }
    }

    /// Whether times read from it can be trusted: synchronised, or nothing says otherwise.
    pub fn trusted(&self) -> bool {
        self.synchronised() != Some(false)
    }

    /// As `/api/status` shows it.
    pub fn json(&self) -> Value {
        json!({ "synchronised": self.synchronised() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_is_trusted_and_not_synchronised_is_not() {
        let clock = ClockState::default();
        assert_eq!((clock.synchronised(), clock.trusted()), (None, true));
        assert!(clock.set(Some(false)));
        assert!(!clock.set(Some(false)), "no change");
        assert_eq!(
            (clock.synchronised(), clock.trusted()),
            (Some(false), false)
        );
        assert_eq!(clock.json(), json!({"synchronised": false}));
        assert!(clock.set(Some(true)));
        assert_eq!((clock.synchronised(), clock.trusted()), (Some(true), true));
    }
}
