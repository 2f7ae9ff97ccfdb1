//! The live state every adapter shares: the reference data in use, the kitchen feed, the sync
//! and the scanners. Adapters (feed, sync, scanner) write it; HTTP only reads it. It holds no
//! IO of its own.

mod feed;
mod reference;
mod scanners;
mod sync;

pub use feed::FeedStats;
pub use reference::{ReferenceCell, ReferenceStatus};
pub use scanners::{Link, ScannerStatus, Scanners};
pub use sync::SyncStats;
