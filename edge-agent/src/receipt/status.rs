//! A printer's real-time status: the four `DLE EOT n` queries and what their one-byte replies
//! mean. Bit meanings as Epson's ESC/POS command reference gives them (the TM-L60II and
//! TM-U295 technical references' `DLE EOT` pages; Citizen's iDP-3221 manual agrees):
//!
//! | n | reply bit | meaning |
//! |---|---|---|
//! | 1 printer | 3 (0x08) | off-line |
//! | 2 off-line cause | 2 (0x04) | cover open |
//! | | 3 (0x08) | paper being fed by the feed button |
//! | | 5 (0x20) | printing stopped: paper end |
//! | | 6 (0x40) | an error occurred (see n = 3) |
//! | 3 error cause | 3 (0x08) | auto-cutter error |
//! | | 5 (0x20) | unrecoverable error |
//! | | 6 (0x40) | auto-recoverable error (e.g. head too hot) |
//! | 4 paper roll sensor | 2, 3 (0x0C) | roll near its end |
//! | | 5, 6 (0x60) | roll end: no paper |
//!
//! Every reply has bits 1 and 4 on and bits 0 and 7 off (`0xx1xx10`): a byte that does not is
//! not a status reply (noise, or a printer that does not speak ESC/POS) and is refused.

use serde::Serialize;

/// The queries, in the order they are sent: `DLE EOT 1` … `DLE EOT 4`.
pub const QUERIES: [[u8; 3]; 4] = [
    [0x10, 0x04, 1],
    [0x10, 0x04, 2],
    [0x10, 0x04, 3],
    [0x10, 0x04, 4],
];

/// The fixed bits of every real-time status reply.
const FIXED_MASK: u8 = 0x93;
const FIXED_VALUE: u8 = 0x12;

/// What the four replies say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PrinterStatus {
    pub offline: bool,
    pub cover_open: bool,
    pub paper_out: bool,
    pub paper_near_end: bool,
    pub feeding: bool,
    pub cutter_error: bool,
    pub unrecoverable_error: bool,
    pub recoverable_error: bool,
}

/// Why a printer cannot print now, as `/api/status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    CoverOpen,
    PaperOut,
    CutterError,
    /// Needs the printer switched off and on (or a service call).
    UnrecoverableError,
    /// Clears by itself (the head cooled down).
    RecoverableError,
    /// Off-line for another reason (the feed button held, an error the replies do not name).
    Offline,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::CoverOpen => "cover_open",
            Fault::PaperOut => "paper_out",
            Fault::CutterError => "cutter_error",
            Fault::UnrecoverableError => "unrecoverable_error",
            Fault::RecoverableError => "recoverable_error",
            Fault::Offline => "offline",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::CoverOpen => "cover open",
            Fault::PaperOut => "paper out",
            Fault::CutterError => "cutter jammed",
            Fault::UnrecoverableError => "printer error: switch it off and on",
            Fault::RecoverableError => "printer error (clears by itself, e.g. head too hot)",
            Fault::Offline => "printer off-line",
        })
    }
}

/// A reply that is not a real-time status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an ESC/POS status reply to DLE EOT {query}: 0x{byte:02X}")]
pub struct BadReply {
    pub query: u8,
    pub byte: u8,
}

impl PrinterStatus {
    /// Reads the replies to `DLE EOT 1`, `2`, `3` and `4`, in that order.
    pub fn decode(replies: [u8; 4]) -> Result<Self, BadReply> {
        for (index, byte) in replies.iter().enumerate() {
            if byte & FIXED_MASK != FIXED_VALUE {
                return Err(BadReply {
                    query: index as u8 + 1,
                    byte: *byte,
                });
            }
        }
        let [printer, offline, error, paper] = replies;
        Ok(Self {
            offline: printer & 0x08 != 0,
            cover_open: offline & 0x04 != 0,
            feeding: offline & 0x08 != 0,
            paper_out: offline & 0x20 != 0 || paper & 0x60 != 0,
            paper_near_end: paper & 0x0C != 0,
            cutter_error: error & 0x08 != 0,
            unrecoverable_error: error & 0x20 != 0,
            recoverable_error: error & 0x40 != 0,
        })
    }

    /// The replies a printer in this state sends (for stand-ins and tests): the inverse of
    /// `decode`.
    pub fn encode(&self) -> [u8; 4] {
        let bit = |on: bool, mask: u8| if on { mask } else { 0 };
        let offline = self.offline
            || self.cover_open
            || self.paper_out
            || self.cutter_error
            || self.unrecoverable_error
            || self.recoverable_error;
        let error = self.cutter_error || self.unrecoverable_error || self.recoverable_error;
        [
            FIXED_VALUE | bit(offline, 0x08),
            FIXED_VALUE
                | bit(self.cover_open, 0x04)
                | bit(self.feeding, 0x08)
                | bit(self.paper_out, 0x20)
                | bit(error, 0x40),
            FIXED_VALUE
                | bit(self.cutter_error, 0x08)
                | bit(self.unrecoverable_error, 0x20)
                | bit(self.recoverable_error, 0x40),
            FIXED_VALUE | bit(self.paper_near_end, 0x0C) | bit(self.paper_out, 0x60),
        ]
    }

    /// What keeps it from printing, the most useful to a cook first; `None`: ready (a roll
    /// near its end still prints).
    pub fn fault(&self) -> Option<Fault> {
        if self.cover_open {
            Some(Fault::CoverOpen)
        } else if self.paper_out {
            Some(Fault::PaperOut)
        } else if self.cutter_error {
            Some(Fault::CutterError)
        } else if self.unrecoverable_error {
            Some(Fault::UnrecoverableError)
        } else if self.recoverable_error {
            Some(Fault::RecoverableError)
        } else if self.offline {
            Some(Fault::Offline)
        } else {
            None
        }
    }
}
