//! Prep labels as PDF: one 4 × 2 inch page a label — the item's name, the dates (USE BY in
//! bold), quantity and batch, the GS1-128 barcode drawn as bars, and its bracketed text — for a
//! label printer driven as a page printer, as the HTML labels say it.

use super::{Font, Mark, Page, fit, render_pages, text_width};
use crate::label::{LabelText, bars, modules};

/// 4 × 2 inches, in points.
pub const LABEL_WIDTH: f32 = 288.0;
pub const LABEL_HEIGHT: f32 = 144.0;
/// The margin all round.
const EDGE: f32 = 9.0;
/// The widest module: 0.3 mm, as on the HTML label; narrower when the symbol needs it to fit.
const MODULE_MAX: f32 = 0.85;
/// The bars' foot and height.
const BARS_Y: f32 = 22.0;
const BARS_HEIGHT: f32 = 64.0;

fn text(page: &mut Page, x: f32, y: f32, size: f32, font: Font, text: String) {
    page.marks.push(Mark::Text {
        x,
        y,
        size,
        font,
        text,
    });
}

/// One label: `values` are the symbol's Code 128 values (`label::gs1_128`).
pub fn label_page(values: &[u8], label: &LabelText<'_>) -> Page {
    let mut page = Page::default();
    let width = LABEL_WIDTH - 2.0 * EDGE;
    let name = fit(label.item_name, width, Font::Bold, 14.0);
    text(
        &mut page,
        EDGE,
        LABEL_HEIGHT - EDGE - 12.0,
        14.0,
        Font::Bold,
        name,
    );
    let prepared = format!("Prepared {}  ", label.prepared.format("%Y-%m-%d"));
    let after = EDGE + text_width(&prepared, Font::Regular, 9.0);
    text(&mut page, EDGE, 109.0, 9.0, Font::Regular, prepared);
    let use_by = format!("USE BY {}", label.use_by.format("%Y-%m-%d"));
    text(&mut page, after, 109.0, 10.0, Font::Bold, use_by);
    let quantity = match label.unit {
        Some(unit) => format!("{} × {unit}", label.quantity),
        None => label.quantity.to_string(),
    };
    let line = format!("Qty {quantity} · Batch {}", label.batch_id);
    text(
        &mut page,
        EDGE,
        96.0,
        9.0,
        Font::Regular,
        fit(&line, width, Font::Regular, 9.0),
    );
    let total = modules(values) as f32;
    let module = MODULE_MAX.min(LABEL_WIDTH / total);
    let left = (LABEL_WIDTH - total * module) / 2.0;
    for (x, bar) in bars(values) {
        page.marks.push(Mark::Bar {
            x: left + x as f32 * module,
            y: BARS_Y,
            width: bar as f32 * module,
            height: BARS_HEIGHT,
        });
    }
    let human = fit(label.human, width, Font::Regular, 7.0);
    text(&mut page, EDGE, 11.0, 7.0, Font::Regular, human);
    page
}

/// The labels, one a page, as PDF bytes.
pub fn render(labels: &[(Vec<u8>, LabelText<'_>)]) -> Vec<u8> {
    let pages: Vec<Page> = labels
        .iter()
        .map(|(values, label)| label_page(values, label))
        .collect();
    render_pages(&pages, LABEL_WIDTH, LABEL_HEIGHT, "Prep labels")
}
