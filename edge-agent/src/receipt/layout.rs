//! What a ticket says and where, in ESC/POS: the station ticket (the order's lines with their
//! modifiers and notes, the station's own in bold) and the Expo bag ticket (the order number
//! large, a checklist, where it goes, the barcode the scanners read). Text is wrapped to the
//! paper's columns in font A; nothing here knows a clock or a printer.

use super::escpos::{Align, Escpos, code128_modules};
use crate::record::{Ticket, TicketLine, mentions_allergen};

/// Dots per column of font A (12 × 24): 48 columns fill 576 dots (80 mm), 32 fill 384 (58 mm).
const DOTS_PER_COLUMN: usize = 12;
/// Barcode height in dots (about 10 mm at 203 dpi); on station tickets 6 mm.
const BARCODE_HEIGHT: u8 = 80;
const STATION_BARCODE_HEIGHT: u8 = 48;

/// What the ticket says besides the order: times already written in the kitchen's local time,
/// and why it prints (none: the first print).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Paper columns in font A (32 for 58 mm paper, 48 for 80 mm).
    pub columns: usize,
    /// A banner on top, e.g. `REPRINT`, `UPDATED`, `SCREEN DOWN - FRYER`.
    pub banner: Option<String>,
    /// When the order came in, `HH:MM`.
    pub received: String,
    /// When it is promised, `HH:MM`.
    pub due: String,
    /// Words that mark a note as an allergy (case-insensitive, whole words): such a note is
    /// printed white on black. Empty until the reference data carries the kitchen's list.
    pub allergen_words: Vec<String>,
}

/// The ticket for `station` (its display name `station_name`).
pub fn station_ticket(ticket: &Ticket, station: &str, station_name: &str, cx: &Context) -> Vec<u8> {
    let width = cx.columns.max(16);
    let mut out = Escpos::new();
    banner(&mut out, cx);
    order_number(&mut out, &ticket.friendly_id, width, 2);
    out.align(Align::Center)
        .bold(true)
        .line(&station_name.to_uppercase())
        .bold(false)
        .align(Align::Left);
    who(&mut out, ticket, width);
    wrapped(
        &mut out,
        &format!("In {} - Due {}", cx.received, cx.due),
        width,
        0,
    );
    out.line(&"-".repeat(width));
    let (here, elsewhere): (Vec<&TicketLine>, Vec<&TicketLine>) = ticket
        .lines
        .iter()
        .partition(|line| concerns(line, station));
    for line in here {
        item(&mut out, line, station, 0, "", cx, width);
    }
    if !elsewhere.is_empty() {
        out.line(&"-".repeat(width));
        for line in elsewhere {
            let at = line.station_id.as_deref().unwrap_or("?");
            wrapped(
                &mut out,
                &format!("+ {} x {} ({at})", line.quantity, line.name),
                width,
                4,
            );
        }
    }
    customer_note(&mut out, ticket, cx, width);
    // A station scanner reading it bumps the order there: a station without a screen bumps
    // by scanning its tickets.
    barcode(
        &mut out,
        &ticket_code(ticket, width),
        width,
        2,
        STATION_BARCODE_HEIGHT,
    );
    out.feed(3).cut();
    out.into_bytes()
}

/// The slip a station with a printer gets when an order it has a ticket for is cancelled:
/// the order number and `Do not make this order`, under a `CANCELLED` banner.
pub fn void_ticket(friendly_id: &str, station_name: &str, cx: &Context) -> Vec<u8> {
    let width = cx.columns.max(16);
    let mut out = Escpos::new();
    banner(&mut out, cx);
    order_number(&mut out, friendly_id, width, 2);
    out.align(Align::Center)
        .bold(true)
        .line(&station_name.to_uppercase())
        .bold(false)
        .line("Do not make this order.")
        .align(Align::Left);
    out.feed(3).cut();
    out.into_bytes()
}

/// The bag ticket Expo prints when the order is ready: the order number large, every line
/// with a box to tick, the source and customer, and a CODE128 of `code` (what the Expo
/// scanner reads to hand it off).
pub fn expo_ticket(ticket: &Ticket, code: &str, cx: &Context) -> Vec<u8> {
    let width = cx.columns.max(16);
    let mut out = Escpos::new();
    banner(&mut out, cx);
    out.align(Align::Center)
        .bold(true)
        .line("READY")
        .bold(false);
    order_number(&mut out, &ticket.friendly_id, width, 3);
    out.align(Align::Center);
    if !ticket.source.trim().is_empty() {
        out.bold(true)
            .line(&clip(&ticket.source.to_uppercase(), width))
            .bold(false);
    }
    if !ticket.customer_name.trim().is_empty() {
        out.line(&clip(&ticket.customer_name, width));
    }
    out.align(Align::Left);
    wrapped(
        &mut out,
        &format!("In {} - Due {}", cx.received, cx.due),
        width,
        0,
    );
    out.line(&"-".repeat(width));
    for line in &ticket.lines {
        item(&mut out, line, "", 0, "[ ] ", cx, width);
    }
    customer_note(&mut out, ticket, cx, width);
    out.line(&"-".repeat(width));
    barcode(&mut out, code, width, 3, BARCODE_HEIGHT);
    out.feed(3).cut();
    out.into_bytes()
}

/// `code` as CODE128, centred, with the widest modules (up to `widest` dots) that fit the
/// paper — wider bars read better; as text when even 1-dot modules do not fit.
fn barcode(out: &mut Escpos, code: &str, width: usize, widest: u8, height: u8) {
    let dots = width * DOTS_PER_COLUMN;
    let chars = code.chars().count();
    match (1..=widest)
        .rev()
        .find(|m| code128_modules(chars) * usize::from(*m) <= dots)
    {
        Some(module) => out.align(Align::Center).code128(code, module, height),
        None => out.align(Align::Center).line(code),
    }
    .align(Align::Left);
}

/// The barcode an Expo ticket carries for an order: `ORDER:<id>` (what `scan::parse` reads as
/// a ticket) when it fits the paper with 1-dot modules, else the friendly id (which the
/// scanners resolve against the open orders).
pub fn ticket_code(ticket: &Ticket, columns: usize) -> String {
    let full = format!("ORDER:{}", ticket.order_id);
    if code128_modules(full.chars().count()) <= columns * DOTS_PER_COLUMN
        || ticket.friendly_id.trim().is_empty()
    {
        full
    } else {
        ticket.friendly_id.trim().to_owned()
    }
}

/// Whether `line` or anything inside it is made at `station`.
fn concerns(line: &TicketLine, station: &str) -> bool {
    line.station_id.as_deref() == Some(station)
        || line.modifiers.iter().any(|m| concerns(m, station))
}

fn banner(out: &mut Escpos, cx: &Context) {
    if let Some(banner) = &cx.banner {
        out.align(Align::Center)
            .reverse(true)
            .bold(true)
            .line(&format!(" {} ", banner.to_uppercase()))
            .bold(false)
            .reverse(false)
            .align(Align::Left);
    }
}

/// `#<friendly id>` centred, `scale` times normal when it fits the paper, smaller when not.
fn order_number(out: &mut Escpos, friendly_id: &str, width: usize, scale: u8) {
    let text = format!("#{}", friendly_id.trim());
    let scale = (1..=scale)
        .rev()
        .find(|s| text.chars().count() * usize::from(*s) <= width)
        .unwrap_or(1);
    out.align(Align::Center)
        .size(scale, scale)
        .line(&text)
        .size(1, 1)
        .align(Align::Left);
}

fn who(out: &mut Escpos, ticket: &Ticket, width: usize) {
    let who = [ticket.source.trim(), ticket.customer_name.trim()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" - ");
    if !who.is_empty() {
        wrapped(out, &who, width, 0);
    }
}

/// One line and, indented below it, its modifiers and notes; made at `station` in bold.
fn item(
    out: &mut Escpos,
    line: &TicketLine,
    station: &str,
    depth: usize,
    checkbox: &str,
    cx: &Context,
    width: usize,
) {
    let indent = if depth == 0 {
        0
    } else {
        checkbox.len() + 3 * depth
    };
    let text = if depth == 0 {
        format!("{checkbox}{} x {}", line.quantity, line.name)
    } else if line.quantity > 1 {
        format!("{} x {}", line.quantity, line.name)
    } else {
        line.name.clone()
    };
    let here = !station.is_empty() && line.station_id.as_deref() == Some(station);
    let hang = if depth == 0 { checkbox.len() + 4 } else { 2 };
    if here {
        out.bold(true);
    }
    wrapped_at(out, &text, width, indent, indent + hang);
    if here {
        out.bold(false);
    }
    if !line.note.trim().is_empty() {
        // Under the line's name: past the checkbox on the bag ticket.
        let under = if depth == 0 { checkbox.len() } else { indent };
        note(out, &line.note, under + 3, cx, width);
    }
    for modifier in &line.modifiers {
        item(out, modifier, station, depth + 1, checkbox, cx, width);
    }
}

fn customer_note(out: &mut Escpos, ticket: &Ticket, cx: &Context, width: usize) {
    if !ticket.customer_note.trim().is_empty() {
        out.line(&"-".repeat(width));
        note(out, &ticket.customer_note, 0, cx, width);
    }
}

/// A note, `Note: …`; one naming an allergen `ALLERGY: …`, white on black.
fn note(out: &mut Escpos, text: &str, indent: usize, cx: &Context, width: usize) {
    let allergy = mentions_allergen(text, &cx.allergen_words);
    let text = if allergy {
        format!("ALLERGY: {}", text.trim())
    } else {
        format!("Note: {}", text.trim())
    };
    if allergy {
        out.reverse(true).bold(true);
    }
    wrapped_at(out, &text, width, indent, indent + 2);
    if allergy {
        out.bold(false).reverse(false);
    }
}

fn wrapped(out: &mut Escpos, text: &str, width: usize, hang: usize) {
    wrapped_at(out, text, width, 0, hang);
}

/// `text` in lines of at most `width` columns: the first indented by `first`, the next by
/// `rest`; words longer than a line are cut.
fn wrapped_at(out: &mut Escpos, text: &str, width: usize, first: usize, rest: usize) {
    for line in wrap(text, width, first, rest) {
        out.line(&line);
    }
}

pub(super) fn wrap(text: &str, width: usize, first: usize, rest: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = " ".repeat(first.min(width / 2));
    let mut empty = true;
    let rest = rest.min(width / 2);
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = current.chars().count();
            let gap = usize::from(!empty);
            if used + gap + word.len() <= width {
                if !empty {
                    current.push(' ');
                }
                current.extend(&word);
                empty = false;
                break;
            }
            if empty {
                // A word longer than the line: cut it.
                let room = width - used;
                current.extend(&word[..room]);
                word.drain(..room);
            }
            lines.push(std::mem::replace(&mut current, " ".repeat(rest)));
            empty = true;
            if word.is_empty() {
                break;
            }
        }
    }
    if !empty {
        lines.push(current);
    }
    lines
}

fn clip(text: &str, width: usize) -> String {
    text.trim().chars().take(width).collect()
}
