//! Kitchen tickets on ESC/POS printers, pure: which printer gets what (`Routes`), the tickets'
//! bytes (`layout`, over the commands in `escpos`) and what a printer's real-time status
//! replies mean (`status`). The print queue is the store's; sending is the `printer` adapter's.

pub mod escpos;
pub mod layout;
pub mod status;
#[cfg(test)]
mod tests;

pub use layout::{Context, expo_ticket, station_ticket, ticket_code, void_ticket};
pub use status::{BadReply, Fault, PrinterStatus};

/// Columns of font A on 58 mm and 80 mm paper.
pub fn columns_for_paper(paper_mm: u32) -> Option<usize> {
    match paper_mm {
        58 => Some(32),
        80 => Some(48),
        _ => None,
    }
}

/// What a print job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A new (or changed) order at a station with a printer.
    Station,
    /// A station's ticket on the fallback printer: none of its tablets is connected.
    Fallback,
    /// The bag ticket, when the order is ready.
    Expo,
    /// Asked for again from a display.
    Reprint,
    /// An order a station printed was cancelled.
    Void,
}

impl JobKind {
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Station => "station",
            JobKind::Fallback => "fallback",
            JobKind::Expo => "expo",
            JobKind::Reprint => "reprint",
            JobKind::Void => "void",
        }
    }
}

/// One configured printer as the kitchen routes tickets to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub printer: String,
    pub columns: usize,
    /// Stations whose tickets it prints.
    pub stations: Vec<String>,
    /// Prints the bag ticket when an order is ready.
    pub expo: bool,
    /// Prints the tickets of a station whose tablets are all gone.
    pub fallback: bool,
}

/// Every printer's route; empty: the kitchen prints nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    pub printers: Vec<Route>,
}

impl Routes {
    pub fn is_empty(&self) -> bool {
        self.printers.is_empty()
    }

    /// The printers of `station`.
    pub fn station(&self, station: &str) -> impl Iterator<Item = &Route> {
        self.printers
            .iter()
            .filter(move |r| r.stations.iter().any(|s| s == station))
    }

    pub fn expo(&self) -> impl Iterator<Item = &Route> {
        self.printers.iter().filter(|r| r.expo)
    }

    pub fn fallback(&self) -> Option<&Route> {
        self.printers.iter().find(|r| r.fallback)
    }

    pub fn named(&self, printer: &str) -> Option<&Route> {
        self.printers.iter().find(|r| r.printer == printer)
    }
}
