//! The scan parser's table tests and its never-panics checks.

use super::{gs1::decimal, *};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("valid test date")
}

fn today() -> NaiveDate {
    day(2025, 6, 15)
}

fn check(raw: &[u8], expected: Result<Scan, ScanError>) {
    assert_eq!(
        parse(raw, today()),
        expected,
        "scan {:?}",
        String::from_utf8_lossy(raw)
    );
}

fn product(gtin14: &str) -> Result<Scan, ScanError> {
    Ok(Scan::Product {
        gtin14: gtin14.to_owned(),
    })
}

fn gs1(gs1: Gs1) -> Result<Scan, ScanError> {
    Ok(Scan::Gs1(gs1))
}

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn bad_check(field: &str, expected: char, found: char) -> Result<Scan, ScanError> {
    Err(ScanError::BadCheckDigit {
        field: field.to_owned(),
        expected,
        found,
    })
}

fn impossible(ai: &str, value: &str) -> Result<Scan, ScanError> {
    Err(ScanError::ImpossibleDate {
        ai: ai.to_owned(),
        value: value.to_owned(),
    })
}

#[test]
fn retail_codes() {
    check(b"4006381333931", product("04006381333931"));
    check(b"]E04006381333931", product("04006381333931"));
    check(b"]E00036000291452", product("00036000291452"));
    check(b"036000291452", product("00036000291452"));
    check(b"]E0036000291452", product("00036000291452"));
    check(b"96385074", product("00000096385074"));
    check(b"]E496385074", product("00000096385074"));
    check(b"4006381333931\r\n", product("04006381333931"));
    check(b"  96385074\n", product("00000096385074"));
    check(b"4006381333932", bad_check("EAN-13", '1', '2'));
    check(b"]E04006381333932", bad_check("EAN-13", '1', '2'));
    check(b"]E0036000291453", bad_check("UPC-A", '2', '3'));
    check(b"]E496385075", bad_check("EAN-8", '4', '5'));
    // Without a symbology identifier, 8 or 12 digits with a wrong check digit may be a
    // friendly id.
    check(b"96385075", Ok(Scan::FriendlyId("96385075".to_owned())));
    check(
        b"036000291453",
        Ok(Scan::FriendlyId("036000291453".to_owned())),
    );
    check(b"]E4123", Err(unrecognised("]E4 data must be 8 digits")));
}

#[test]
fn tickets_and_friendly_ids() {
    let ticket = |id: &str| {
        Ok(Scan::Ticket {
            order_id: id.to_owned(),
        })
    };
    let friendly = |id: &str| Ok(Scan::FriendlyId(id.to_owned()));
    check(b"ORDER:0193a1b2-7c4d", ticket("0193a1b2-7c4d"));
    check(b"order:A17\r\n", ticket("A17"));
    check(b"]Q1ORDER:A17", ticket("A17"));
    check(
        b"ORDER:",
        Err(unrecognised(
            "a ticket's order id must be 1–64 printable ASCII characters",
        )),
    );
    check(
        b"ORDER:a b",
        Err(unrecognised(
            "a ticket's order id must be 1–64 printable ASCII characters",
        )),
    );
    check(b"A17", friendly("A17"));
    check(b"W-0042", friendly("W-0042"));
    check(b"123", friendly("123"));
    check(b"ABCDEFGHIJKL", friendly("ABCDEFGHIJKL"));
    let neither = || {
        Err(unrecognised(
            "not a ticket, friendly id, product code or GS1 element string",
        ))
    };
    check(b"AB", neither());
    check(b"ABCDEFGHIJKLM", neither());
    check(b"A 17", neither());
    check("CAFÉ".as_bytes(), neither());
}

#[test]
fn thirteen_digits_that_are_gs1() {
    // Not an EAN-13 (the check digit would be 4): (17)251231(37)001.
    check(
        b"1725123137001",
        gs1(Gs1 {
            use_by: Some(day(2025, 12, 31)),
            count: Some(1),
            ..Gs1::default()
        }),
    );
}

#[test]
fn error_messages() {
    let cases = [
        (&b""[..], "empty scan"),
        (&[b'1'; 300][..], "scan too long: 300 bytes, at most 256"),
        (b"\xc3(", "scan is not text: invalid UTF-8 at byte 0"),
        (
            b"(01)09506000134353",
            "bad check digit in AI (01): expected 2, found 3",
        ),
        (b"(17)250230", "impossible date 250230 in AI (17)"),
        (b"(20)1", "unknown GS1 application identifier (20)"),
        (b"(00)1234", "AI (00) truncated: needs 18 characters, has 4"),
        (
            b"(90)ABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
            "AI (90) too long: at most 30 characters, has 31",
        ),
        (b"(37)1(37)2", "AI (37) appears twice"),
        (
            b"(91)FRIES(10)B1(11)250615(17)250615",
            "bad prep label: missing AI (37), the quantity",
        ),
        (
            b"?!",
            "unrecognised scan: not a ticket, friendly id, product code or GS1 element string",
        ),
    ];
    for (raw, message) in cases {
        let error = parse(raw, today()).expect_err("refused");
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn framing() {
    check(b"", Err(ScanError::Empty));
    check(b" \r\n", Err(ScanError::Empty));
    check(b"]C1", Err(ScanError::Empty));
    check(&[b'1'; 257], Err(ScanError::TooLong { len: 257 }));
    check(b"A1\xff7", Err(ScanError::NotText { at: 2 }));
    assert_eq!(strip_aim(b"]C10109"), (Some("]C1"), &b"0109"[..]));
    assert_eq!(strip_aim(b"]e0x"), (Some("]e0"), &b"x"[..]));
    assert_eq!(strip_aim(b"]CC1"), (None, &b"]CC1"[..]));
    assert_eq!(strip_aim(b"]C"), (None, &b"]C"[..]));
    assert_eq!(strip_aim(b"0109"), (None, &b"0109"[..]));
}

#[test]
fn gs1_element_strings() {
    let gtin_lot_date = Gs1 {
        gtin: s("09506000134352"),
        use_by: Some(day(2025, 12, 31)),
        lot: s("LOT42"),
        ..Gs1::default()
    };
    let same = [
        &b"(01)09506000134352(17)251231(10)LOT42"[..],
        b"]C101095060001343521725123110LOT42",
        b"]d201095060001343521725123110LOT42\r\n",
        b"]Q3010950600013435217251231\x1d10LOT42",
        b"]e0010950600013435217251231\x1d10LOT42\x1d",
        b"\x1d010950600013435217251231\x1d10LOT42",
        b"010950600013435217251231\x1d10LOT42",
        b"01095060001343521725123110LOT42",
    ];
    for raw in same {
        check(raw, gs1(gtin_lot_date.clone()));
    }
    check(
        b"(01)09506000134352(21)SN-7(11)250100(13)240200(15)250231(3103)001250(37)12(90)A1(99)ZZ",
        Err(ScanError::ImpossibleDate {
            ai: "15".to_owned(),
            value: "250231".to_owned(),
        }),
    );
    let everything = Gs1 {
        gtin: s("09506000134352"),
        serial: s("SN-7"),
        production: Some(day(2025, 1, 31)),
        packaging: Some(day(2024, 2, 29)),
        best_before: Some(day(2025, 2, 28)),
        net_kg: s("1.250"),
        count: Some(12),
        internal: vec![
            ("90".to_owned(), "A1".to_owned()),
            ("99".to_owned(), "ZZ".to_owned()),
        ],
        ..Gs1::default()
    };
    check(
        b"(01)09506000134352(21)SN-7(11)250100(13)240200(15)250200(3103)001250(37)12(90)A1(99)ZZ",
        gs1(everything.clone()),
    );
    check(
        b"]C10109506000134352\x1d21SN-7\x1d11250100132402001525020031030012503712\x1d90A1\x1d99ZZ",
        gs1(everything),
    );
    check(
        b"(02)00012345600012(3102)000075",
        gs1(Gs1 {
            content: s("00012345600012"),
            net_kg: s("0.75"),
            ..Gs1::default()
        }),
    );
    check(
        b"(3100)000012(3102)000075",
        Err(ScanError::DuplicateAi {
            ai: "3102".to_owned(),
        }),
    );
    check(
        b"(10)A B",
        Err(ScanError::BadValue {
            ai: "10".to_owned(),
            reason: "character outside the GS1 character set".to_owned(),
        }),
    );
}

#[test]
fn net_weight_decimals() {
    for (ai, value, expected) in [
        ("3100", "000012", "12"),
        ("3101", "000125", "12.5"),
        ("3102", "000075", "0.75"),
        ("3103", "001250", "1.250"),
        ("3105", "123456", "1.23456"),
        ("3100", "000000", "0"),
    ] {
        assert_eq!(decimal(ai, value), expected, "({ai}){value}");
    }
    check(
        b"(3106)000001",
        Err(ScanError::UnknownAi {
            ai: "3106".to_owned(),
        }),
    );
}

#[test]
fn dates() {
    let use_by = |date: NaiveDate| {
        gs1(Gs1 {
            use_by: Some(date),
            ..Gs1::default()
        })
    };
    check(b"(17)251231", use_by(day(2025, 12, 31)));
    check(b"(17)240200", use_by(day(2024, 2, 29)));
    check(b"(17)250200", use_by(day(2025, 2, 28)));
    check(b"(17)250400", use_by(day(2025, 4, 30)));
    check(b"(17)251200", use_by(day(2025, 12, 31)));
    check(b"(17)000229", use_by(day(2000, 2, 29)));
    // The century follows `today` (2025): up to 50 years ahead, 49 back.
    check(b"(17)750101", use_by(day(2075, 1, 1)));
    check(b"(17)760101", use_by(day(1976, 1, 1)));
    check(b"(17)251332", impossible("17", "251332"));
    check(b"(17)250230", impossible("17", "250230"));
    check(b"(17)251301", impossible("17", "251301"));
    check(b"(17)250001", impossible("17", "250001"));
    check(b"(17)250000", impossible("17", "250000"));
    check(b"(11)250431", impossible("11", "250431"));
    assert_eq!(
        parse(b"(17)760101", day(2026, 1, 1)),
        use_by(day(2076, 1, 1))
    );
    assert_eq!(
        parse(b"(17)990101", day(2001, 1, 1)),
        use_by(day(1999, 1, 1))
    );
    assert_eq!(
        parse(b"(17)020101", day(1999, 6, 1)),
        use_by(day(2002, 1, 1))
    );
}

#[test]
fn gs1_errors() {
    let err = |error: ScanError| -> Result<Scan, ScanError> { Err(error) };
    check(b"(01)09506000134353", bad_check("AI (01)", '2', '3'));
    check(b"]C10109506000134353", bad_check("AI (01)", '2', '3'));
    check(b"(00)106141411234567898", bad_check("AI (00)", '7', '8'));
    check(b"(02)00012345600013", bad_check("AI (02)", '2', '3'));
    check(
        b"(01)095060001343(10)A",
        err(ScanError::Truncated {
            ai: "01".to_owned(),
            expected: 14,
            got: 12,
        }),
    );
    check(
        b"]C101095060001343",
        err(ScanError::Truncated {
            ai: "01".to_owned(),
            expected: 14,
            got: 12,
        }),
    );
    check(
        b"]C11725\x1d10A",
        err(ScanError::Truncated {
            ai: "17".to_owned(),
            expected: 6,
            got: 2,
        }),
    );
    check(
        b"(17)2512310",
        err(ScanError::BadValue {
            ai: "17".to_owned(),
            reason: "expected 6 characters, has 7".to_owned(),
        }),
    );
    check(
        b"(20)01",
        err(ScanError::UnknownAi {
            ai: "20".to_owned(),
        }),
    );
    check(
        b"]C1240ABC",
        err(ScanError::UnknownAi {
            ai: "240".to_owned(),
        }),
    );
    check(
        b"]C17003ABC",
        err(ScanError::UnknownAi {
            ai: "7003".to_owned(),
        }),
    );
    check(
        b"]C10109506000134352\x1d",
        gs1(Gs1 {
            gtin: s("09506000134352"),
            ..Gs1::default()
        }),
    );
    check(
        b"]C110ABCDEFGHIJKLMNOPQRSTU",
        err(ScanError::FieldTooLong {
            ai: "10".to_owned(),
            max: 20,
            got: 21,
        }),
    );
    check(
        b"(37)123456789",
        err(ScanError::FieldTooLong {
            ai: "37".to_owned(),
            max: 8,
            got: 9,
        }),
    );
    check(
        b"(37)12A",
        err(ScanError::BadValue {
            ai: "37".to_owned(),
            reason: "must be digits".to_owned(),
        }),
    );
    check(
        b"(10)(37)1",
        err(ScanError::BadValue {
            ai: "10".to_owned(),
            reason: "empty".to_owned(),
        }),
    );
    check(
        b"(10)A(10)B",
        err(ScanError::DuplicateAi {
            ai: "10".to_owned(),
        }),
    );
    check(
        b"(10",
        err(unrecognised("unclosed ( in bracketed GS1 data")),
    );
    check(b"]C1\x1d", err(unrecognised("GS1 data without any field")));
}

#[test]
fn transfer_units() {
    let pallet = Gs1 {
        sscc: s("106141411234567897"),
        content: s("09506000134352"),
        lot: s("L7"),
        count: Some(40),
        use_by: Some(day(2025, 7, 1)),
        ..Gs1::default()
    };
    let expected = Ok(Scan::TransferUnit {
        sscc: "106141411234567897".to_owned(),
        gs1: pallet,
    });
    check(
        b"(00)106141411234567897(02)09506000134352(17)250701(37)40(10)L7",
        expected.clone(),
    );
    check(
        b"]C1001061414112345678970209506000134352172507013740\x1d10L7\r\n",
        expected,
    );
    check(
        b"]C100106141411234567897",
        Ok(Scan::TransferUnit {
            sscc: "106141411234567897".to_owned(),
            gs1: Gs1 {
                sscc: s("106141411234567897"),
                ..Gs1::default()
            },
        }),
    );
}

#[test]
fn prep_labels() {
    let (prepared, use_by) = (day(2025, 6, 15), day(2025, 6, 18));
    let raw = PrepLabel {
        item_id: "SAUCE-BBQ",
        batch_id: "B0615-3",
        prepared,
        use_by,
        quantity: 24,
    }
    .element_string()
    .expect("valid label");
    assert_eq!(raw, "112506151725061891SAUCE-BBQ\u{1d}10B0615-3\u{1d}3724");
    let human = PrepLabel {
        item_id: "SAUCE-BBQ",
        batch_id: "B0615-3",
        prepared,
        use_by,
        quantity: 24,
    }
    .human()
    .expect("valid label");
    assert_eq!(human, "(11)250615(17)250618(91)SAUCE-BBQ(10)B0615-3(37)24");
    let expected = Ok(Scan::PrepLabel {
        item_id: "SAUCE-BBQ".to_owned(),
        batch_id: "B0615-3".to_owned(),
        prepared,
        use_by,
        quantity: 24,
    });
    check(raw.as_bytes(), expected.clone());
    check(format!("]d2{raw}\r\n").as_bytes(), expected.clone());
    check(human.as_bytes(), expected.clone());
    check(
        b"(91)SAUCE-BBQ(10)B0615-3(11)250615(17)250618(37)24",
        expected,
    );
    let prep_error = |reason: &str| -> Result<Scan, ScanError> {
        Err(ScanError::PrepLabel {
            reason: reason.to_owned(),
        })
    };
    check(
        b"(91)SAUCE-BBQ(10)B1(11)250615(17)250618",
        prep_error("missing AI (37), the quantity"),
    );
    check(
        b"(91)SAUCE-BBQ(10)B1(11)250615(17)250618(37)1(01)09506000134352",
        prep_error("unexpected AI (01)"),
    );
    check(
        b"(91)SAUCE-BBQ(10)B1(11)250615(17)250614(37)1",
        prep_error("use-by 2025-06-14 is before prepared 2025-06-15"),
    );
    // Found by fuzzing (fuzz target `scan`): GS1 allows parentheses in AI (91) and (10), the
    // prep label does not, so such a scan is no label the agent could have printed.
    check(
        b"]C1112503141725031791patty)smash\x1d10B250314-1\x1d3724",
        prep_error("the item id, AI (91), must not contain parentheses"),
    );
    check(
        b"]C1112503141725031791patty-smash\x1d10B2503(4-1\x1d3724",
        prep_error("the batch id, AI (10), must not contain parentheses"),
    );
    check(
        b"(11)250314(17)250317(91)SAUCE)BBQ(10)B1(37)1",
        prep_error("the item id, AI (91), must not contain parentheses"),
    );
    assert_eq!(
        PrepLabel {
            item_id: "",
            batch_id: "B1",
            prepared,
            use_by,
            quantity: 1
        }
        .element_string(),
        Err(ScanError::BadValue {
            ai: "91".to_owned(),
            reason: "item id must be 1–90 GS1 characters (letters, digits, !\"%&'*+,-./:;<=>?_)"
                .to_owned(),
        })
    );
    assert!(matches!(
        PrepLabel { item_id: "FRIES", batch_id: "B(1)", prepared, use_by, quantity: 1 }.human(),
        Err(ScanError::BadValue { ai, .. }) if ai == "10"
    ));
    assert!(matches!(
        PrepLabel { item_id: "FRIES", batch_id: "B1", prepared, use_by, quantity: 100_000_000 }.element_string(),
        Err(ScanError::BadValue { ai, .. }) if ai == "37"
    ));
    assert!(matches!(
        PrepLabel {
            item_id: "FRIES",
            batch_id: "B1",
            prepared: use_by,
            use_by: prepared,
            quantity: 1
        }
        .element_string(),
        Err(ScanError::PrepLabel { .. })
    ));
}

/// Label characters: GS1 character set 82 without the parentheses.
const LABEL_CHARS: &[u8] =
    b"!\"%&'*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

fn random_id(rng: &mut StdRng, max: usize) -> String {
    let len = rng.gen_range(1..=max);
    (0..len)
        .map(|_| char::from(LABEL_CHARS[rng.gen_range(0..LABEL_CHARS.len())]))
        .collect()
}

#[test]
fn random_prep_labels_round_trip() {
    let mut rng = StdRng::seed_from_u64(0x5ca9);
    for _ in 0..2_000 {
        let item_id = random_id(&mut rng, 90);
        let batch_id = random_id(&mut rng, 20);
        // Within the two-digit-year window around `today` (1976–2075).
        let prepared = day(1976, 1, 1) + chrono::Days::new(rng.gen_range(0..365 * 98));
        let use_by = prepared + chrono::Days::new(rng.gen_range(0..400));
        let quantity = rng.gen_range(0..=99_999_999);
        let expected = Ok(Scan::PrepLabel {
            item_id: item_id.clone(),
            batch_id: batch_id.clone(),
            prepared,
            use_by,
            quantity,
        });
        let raw = PrepLabel {
            item_id: &item_id,
            batch_id: &batch_id,
            prepared,
            use_by,
            quantity,
        }
        .element_string()
        .expect("valid label");
        let human = PrepLabel {
            item_id: &item_id,
            batch_id: &batch_id,
            prepared,
            use_by,
            quantity,
        }
        .human()
        .expect("valid label");
        check(raw.as_bytes(), expected.clone());
        check(human.as_bytes(), expected);
    }
}

#[test]
fn random_frames_never_panic() {
    const BIASED: &[u8] = b"0123456789()]\x1d\r\nC1dQe0E49ORDER:";
    let mut rng = StdRng::seed_from_u64(0xC0FFEE);
    let mut parsed = 0;
    for _ in 0..20_000 {
        let len = rng.gen_range(0..=300);
        let frame: Vec<u8> = (0..len)
            .map(|_| match rng.gen_range(0..4) {
                0 => rng.r#gen::<u8>(),
                _ => BIASED[rng.gen_range(0..BIASED.len())],
            })
            .collect();
        let result = parse(&frame, today());
        if frame.len() > MAX_FRAME_LEN {
            assert_eq!(result, Err(ScanError::TooLong { len: frame.len() }));
        }
        if result.is_ok() {
            parsed += 1;
        }
    }
    // Some random frames do parse (short digit strings as friendly ids, mostly): the
    // generator reaches the accepting paths, not only the error ones.
    assert!(parsed > 0, "no random frame parsed");
}
