use super::{escpos::pc437, layout::wrap, *};
use crate::record::mentions_allergen;
use crate::record::{Ticket, TicketLine};

fn line(
    name: &str,
    quantity: u32,
    station: Option<&str>,
    modifiers: Vec<TicketLine>,
) -> TicketLine {
    TicketLine {
        line_no: 0,
        name: name.into(),
        quantity,
        note: String::new(),
        modifiers,
        item_id: None,
        station_id: station.map(str::to_owned),
        otter_ids: Default::default(),
    }
}

fn ticket(lines: Vec<TicketLine>) -> Ticket {
    Ticket {
        order_id: "o-1".into(),
        store_id: "s".into(),
        source: "ubereats".into(),
        friendly_id: "A1B2".into(),
        status: String::new(),
        customer_name: "Ana".into(),
        customer_note: String::new(),
        received_at_ms: 0,
        lines,
        bumped_at: vec![],
        ready: false,
        stations: vec![],
        promised_at_ms: 0,
        prep_minutes: None,
        awaiting_accept: false,
        otter_calls: vec![],
        allergens: vec![],
        allergen_acks: vec![],
        rush_at_ms: None,
        lines_done: vec![],
    }
}

fn context(columns: usize) -> Context {
    Context {
        columns,
        banner: None,
        received: "18:40".into(),
        due: "18:55".into(),
        allergen_words: vec!["peanut".into(), "tree nut".into()],
    }
}

#[test]
fn a_station_ticket_is_exactly_these_bytes() {
    let mut fries = line("Fries", 1, Some("fry"), vec![]);
    fries.note = "extra crispy".into();
    let burger = line(
        "Burger",
        2,
        Some("grill"),
        vec![line("No pickles", 1, None, vec![])],
    );
    let bytes = station_ticket(&ticket(vec![fries, burger]), "fry", "Fryer", &context(32));
    let mut expected: Vec<u8> = vec![0x1B, b'@', 0x1B, b't', 0];
    expected.extend([0x1B, b'a', 1, 0x1D, b'!', 0x11]);
    expected.extend(b"#A1B2\n");
    expected.extend([0x1D, b'!', 0, 0x1B, b'a', 0, 0x1B, b'a', 1, 0x1B, b'E', 1]);
    expected.extend(b"FRYER\n");
    expected.extend([0x1B, b'E', 0, 0x1B, b'a', 0]);
    expected.extend(b"ubereats - Ana\nIn 18:40 - Due 18:55\n");
    expected.extend(b"--------------------------------\n");
    expected.extend([0x1B, b'E', 1]);
    expected.extend(b"1 x Fries\n");
    expected.extend([0x1B, b'E', 0]);
    expected.extend(b"   Note: extra crispy\n");
    expected.extend(b"--------------------------------\n");
    expected.extend(b"+ 2 x Burger (grill)\n");
    // The barcode a station scanner bumps with: 2-dot modules, 48 dots high.
    expected.extend([0x1B, b'a', 1, 0x1D, b'h', 48, 0x1D, b'w', 2, 0x1D, b'H', 2]);
    expected.extend([0x1D, b'k', 73, 11]);
    expected.extend(b"{BORDER:o-1\n");
    expected.extend([0x1B, b'a', 0]);
    expected.extend(b"\n\n\n");
    expected.extend([0x1D, b'V', 66, 3]);
    assert_eq!(bytes, expected, "{}", String::from_utf8_lossy(&bytes));
}

#[test]
fn allergen_notes_print_reversed_and_match_whole_words() {
    let words = vec!["peanut".to_owned(), "tree nut".to_owned()];
    assert!(mentions_allergen("NO PEANUT please", &words));
    assert!(mentions_allergen("allergic to tree-nut", &words));
    assert!(!mentions_allergen("peanuts", &words[1..]));
    assert!(!mentions_allergen("walnut tree", &words[1..]));
    assert!(!mentions_allergen("anything", &[]));
    let mut order = ticket(vec![line("Satay", 1, Some("grill"), vec![])]);
    order.customer_note = "Peanut allergy!".into();
    let bytes = station_ticket(&order, "grill", "Grill", &context(48));
    let needle = [
        &[0x1D, b'B', 1, 0x1B, b'E', 1][..],
        b"ALLERGY: Peanut allergy!\n",
        &[0x1B, b'E', 0, 0x1D, b'B', 0],
    ]
    .concat();
    assert!(bytes.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn the_expo_ticket_carries_the_order_large_and_its_barcode() {
    let order = ticket(vec![line(
        "Meal",
        1,
        Some("grill"),
        vec![line("Fries", 1, Some("fry"), vec![])],
    )]);
    let code = ticket_code(&order, 48);
    assert_eq!(code, "ORDER:o-1");
    let bytes = expo_ticket(&order, &code, &context(48));
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("READY\n") && text.contains("[ ] 1 x Meal\n"),
        "{text}"
    );
    assert!(text.contains("\n       Fries\n"), "{text}");
    // 3× the size: `GS ! 0x22`.
    assert!(bytes.windows(3).any(|w| w == [0x1D, b'!', 0x22]));
    // GS k 73, n = 11: "{B" + "ORDER:o-1", modules 3 wide.
    let barcode = [
        &[0x1D, b'w', 3, 0x1D, b'H', 2, 0x1D, b'k', 73, 11][..],
        b"{BORDER:o-1",
    ]
    .concat();
    assert!(bytes.windows(barcode.len()).any(|w| w == barcode));
    // A UUID does not fit 58 mm paper: the friendly id instead.
    let mut long = order.clone();
    long.order_id = "4f0c2a7e-1d2b-4c3d-9e8f-0a1b2c3d4e5f".into();
    assert_eq!(ticket_code(&long, 32), "A1B2");
    assert_eq!(ticket_code(&long, 48), format!("ORDER:{}", long.order_id));
}

#[test]
fn text_wraps_with_hanging_indent_and_cuts_long_words() {
    assert_eq!(wrap("one two three", 8, 0, 2), ["one two", "  three"]);
    assert_eq!(wrap("abcdefghij", 4, 0, 0), ["abcd", "efgh", "ij"]);
    assert_eq!(wrap("", 8, 2, 2), Vec::<String>::new());
    assert_eq!(pc437("Crème brûlée\x1b×2"), b"Cr\x8Ame br\x96l\x82e x2");
}

#[test]
fn status_replies_decode_and_refuse_what_is_not_one() {
    let ready = PrinterStatus::decode([0x12, 0x12, 0x12, 0x12]).expect("valid");
    assert_eq!(ready.fault(), None);
    // Epson's example: off-line, paper end stop, roll end.
    let out = PrinterStatus::decode([0x1A, 0x32, 0x12, 0x72]).expect("valid");
    assert!(out.offline && out.paper_out && !out.cover_open);
    assert_eq!(out.fault(), Some(Fault::PaperOut));
    let cover = PrinterStatus::decode([0x1A, 0x16, 0x12, 0x12]).expect("valid");
    assert_eq!(cover.fault(), Some(Fault::CoverOpen));
    let near = PrinterStatus::decode([0x12, 0x12, 0x12, 0x1E]).expect("valid");
    assert!(near.paper_near_end && near.fault().is_none());
    assert_eq!(
        PrinterStatus::decode([0x12, 0x00, 0x12, 0x12]),
        Err(BadReply { query: 2, byte: 0 })
    );
    for status in [ready, out, cover, near] {
        assert_eq!(PrinterStatus::decode(status.encode()), Ok(status));
    }
}
