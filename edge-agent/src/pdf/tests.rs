use super::*;

fn table(rows: usize) -> Table {
    Table {
        columns: vec![Column::left("Item", 200.0), Column::right("Qty", 60.0)],
        rows: (1..=rows)
            .map(|n| Row {
                cells: vec![format!("item {n}"), n.to_string()],
                strong: n % 10 == 0,
            })
            .collect(),
        empty: "none".to_owned(),
    }
}

fn document(rows: usize) -> Document {
    Document {
        title: "Report".to_owned(),
        subtitle: "Kitchen k1".to_owned(),
        footer: "k1".to_owned(),
        blocks: vec![
            Block::Heading("Stock".to_owned()),
            Block::Table(table(rows)),
        ],
    }
}

/// The rows ("item n") each page holds.
fn rows_per_page(pages: &[Page]) -> Vec<Vec<String>> {
    pages
        .iter()
        .map(|page| {
            page.texts()
                .into_iter()
                .filter(|t| t.starts_with("item "))
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn a_short_table_fits_on_one_page_with_its_footer() {
    let pages = layout(&document(3));
    assert_eq!(pages.len(), 1);
    assert_eq!(
        pages[0].texts(),
        [
            "Report",
            "Kitchen k1",
            "Stock",
            "Item",
            "Qty",
            "item 1",
            "1",
            "item 2",
            "2",
            "item 3",
            "3",
            "k1",
            "Page 1 of 1"
        ]
    );
}

#[test]
fn a_long_table_breaks_across_pages_repeating_its_header_and_numbering_them() {
    let pages = layout(&document(120));
    assert_eq!(pages.len(), 3);
    let rows = rows_per_page(&pages);
    // Every row once, in order, none lost at a break.
    let all: Vec<String> = rows.concat();
    let expected: Vec<String> = (1..=120).map(|n| format!("item {n}")).collect();
    assert_eq!(all, expected);
    // Page 1: from 802 pt (842 − the margin), title, subtitle and heading take 70 pt and the
    // header row 14: rows of 14 pt from 718 while one still ends above the body's foot at 48 pt
    // (47). Then pages of the "continued" line (22 pt) and the header row: 51 rows.
    assert_eq!(rows.iter().map(Vec::len).collect::<Vec<_>>(), [47, 51, 22]);
    for (n, page) in pages.iter().enumerate() {
        let texts = page.texts();
        assert_eq!(texts.last(), Some(&format!("Page {} of 3", n + 1).as_str()));
        assert_eq!(
            texts.iter().filter(|t| **t == "Item").count(),
            1,
            "header on page {n}"
        );
        if n > 0 {
            assert_eq!(texts[0], "Report (continued)");
            assert_eq!(texts[1], "Item", "the header comes first on page {n}");
        }
        // Nothing is drawn below the body's foot but the footer.
        for mark in &page.marks {
            if let Mark::Text { y, text, .. } = mark
                && *y < BODY_BOTTOM
            {
                assert!(text == "k1" || text.starts_with("Page "), "{text} at {y}");
            }
        }
    }
    // Every tenth row is marked: a grey band behind it, set in bold.
    let shades: usize = pages
        .iter()
        .map(|p| {
            p.marks
                .iter()
                .filter(|m| matches!(m, Mark::Shade { .. }))
                .count()
        })
        .sum();
    assert_eq!(shades, 12);
}

#[test]
fn a_heading_is_not_left_alone_at_the_foot_of_a_page() {
    let mut document = document(46);
    document.blocks.push(Block::Heading("Second".to_owned()));
    document.blocks.push(Block::Table(table(2)));
    let pages = layout(&document);
    assert_eq!(pages.len(), 2);
    let second = pages[1].texts();
    assert_eq!(&second[..3], ["Report (continued)", "Second", "Item"]);
}

#[test]
fn an_empty_table_says_so() {
    let pages = layout(&document(0));
    assert_eq!(
        pages[0].texts(),
        ["Report", "Kitchen k1", "Stock", "none", "k1", "Page 1 of 1"]
    );
}

#[test]
fn right_aligned_cells_end_at_the_column_edge_and_long_ones_are_cut() {
    let mut table = table(1);
    table.rows[0].cells = vec!["x".repeat(100), "12345".to_owned()];
    let document = Document {
        blocks: vec![Block::Table(table)],
        ..document(0)
    };
    let pages = layout(&document);
    let marks: Vec<(f32, String)> = pages[0]
        .marks
        .iter()
        .filter_map(|m| match m {
            Mark::Text {
                x,
                text,
                font: Font::Regular,
                size,
                ..
            } if *size == TEXT_SIZE => Some((*x, text.clone())),
            _ => None,
        })
        .collect();
    let (x, cut) = &marks[0];
    assert_eq!(*x, MARGIN + CELL_PADDING);
    assert!(cut.ends_with("...") && cut.len() < 100, "{cut}");
    assert!(text_width(cut, Font::Regular, TEXT_SIZE) <= 200.0 - 2.0 * CELL_PADDING);
    let (x, number) = &marks[1];
    assert_eq!(number, "12345");
    // Five digits of 556/1000 × 9 pt end 3 pt inside the column's right edge (40 + 260).
    assert!(
        (x + 5.0 * 5.004 - (MARGIN + 260.0 - CELL_PADDING)).abs() < 0.01,
        "{x}"
    );
}

#[test]
fn text_is_written_in_win_ansi_with_a_question_mark_for_what_it_cannot_hold() {
    assert_eq!(win_ansi("Slaw (1/6 pan)"), b"Slaw (1/6 pan)");
    assert_eq!(win_ansi("Café €2 – ok"), b"Caf\xe9 \x802 \x96 ok");
    assert_eq!(win_ansi("Phở 🍜\t"), b"Ph? ??");
    assert_eq!(
        text_width("Slaw", Font::Regular, 10.0),
        6.67 + 2.22 + 5.56 + 7.22
    );
    assert_eq!(
        text_width("Slaw", Font::Bold, 10.0),
        6.67 + 2.78 + 5.56 + 7.78
    );
}

#[test]
fn the_pdf_names_its_standard_fonts_and_holds_every_page() {
    let bytes = render(&document(120));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("%PDF-1."), "{}", &text[..20]);
    assert!(text.trim_end().ends_with("%%EOF"));
    assert!(text.contains("/BaseFont /Helvetica\n") || text.contains("/BaseFont /Helvetica>"));
    assert!(text.contains("/BaseFont /Helvetica-Bold"));
    assert_eq!(text.matches("/WinAnsiEncoding").count(), 2);
    assert!(text.contains("/Count 3"));
    assert_eq!(
        text.matches("/Type /Page\n").count() + text.matches("/Type /Page>").count(),
        3
    );
    assert!(text.contains("(Page 2 of 3) Tj"));
    assert!(text.contains("(item 120) Tj"));
}
