//! The live state every adapter shares: the reference data in use, the kitchen feed, the sync
//! (and the kicks that ask it for work now), the scanners, the tablets' streams, the ticket
//! printers, the fleet channel and the clock; `Live` bundles them and builds the status document. Adapters (feed, sync, scanner,
//! fleet, http) write it; HTTP and the fleet read it. It holds no IO of its own.

pub mod clock;
mod feed;
mod kick;
mod mqtt;
mod printers;
mod reference;
mod report;
mod scanners;
mod streams;
mod sync;

pub use clock::ClockState;
pub use feed::FeedStats;
pub use kick::{Asked, Done, SyncKick, Work};
pub use mqtt::MqttStats;
pub use printers::{Fallback, PrinterState, Printers};
pub use reference::{ReferenceCell, ReferenceStatus};
pub use report::{Live, RefusedLinks, StoreFacts};
pub use scanners::{Link, ScannerStatus, Scanners};
pub use streams::StreamStats;
pub use sync::SyncStats;
