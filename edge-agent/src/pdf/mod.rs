//! PDF documents, pure (bytes out, no IO): a small page layout — a title, a subtitle, headings,
//! lines of text and tables with fixed column widths that break across pages with their header
//! row repeated, and "Page n of N" on every page — written with `pdf-writer` in the standard
//! Helvetica fonts (WinAnsiEncoding, nothing embedded). The prep and transfer-unit reports
//! (`prep_report`, `transfers_report`) are built on it.

mod font;
pub mod labels;
pub mod prep_report;
pub mod transfers_report;

use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str, TextStr};

pub use font::{Font, text_width, win_ansi};

/// An A4 page, in points.
pub const PAGE_WIDTH: f32 = 595.0;
pub const PAGE_HEIGHT: f32 = 842.0;
/// Margins all round; the content is `PAGE_WIDTH − 2 × MARGIN` wide.
pub const MARGIN: f32 = 40.0;
/// The widest a table may be.
pub const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN;

/// Body text and table cells.
const TEXT_SIZE: f32 = 9.0;
const ROW_HEIGHT: f32 = 14.0;
const TITLE_SIZE: f32 = 16.0;
const HEADING_SIZE: f32 = 12.0;
/// The footer's baseline; the body stops above it.
const FOOTER_Y: f32 = 24.0;
const BODY_BOTTOM: f32 = MARGIN + 8.0;
/// Space a cell keeps from its neighbours.
const CELL_PADDING: f32 = 3.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub header: String,
    /// Points; the columns of a table together at most `CONTENT_WIDTH`.
    pub width: f32,
    pub align: Align,
}

impl Column {
    pub fn left(header: &str, width: f32) -> Self {
        Self {
            header: header.to_owned(),
            width,
            align: Align::Left,
        }
    }

    pub fn right(header: &str, width: f32) -> Self {
        Self {
            header: header.to_owned(),
            width,
            align: Align::Right,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub cells: Vec<String>,
    /// Set in bold on a grey band (what needs attention).
    pub strong: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    /// Said instead of the table when it has no rows.
    pub empty: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(String),
    Text(String),
    Table(Table),
}

/// A document to lay out: the title and subtitle head its first page, the footer's left side
/// and "Page n of N" every page.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub title: String,
    pub subtitle: String,
    pub footer: String,
    pub blocks: Vec<Block>,
}

/// Something placed on a page; `y` is the text's baseline or the shape's bottom, from the
/// page's foot, as PDF counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    Text {
        x: f32,
        y: f32,
        size: f32,
        font: Font,
        text: String,
    },
    /// A thin horizontal line.
    Rule { x: f32, y: f32, width: f32 },
    /// A black bar (a barcode's).
    Bar {
        x: f32,
        y: f32,
        width: f32,
        height: f32,
    },
    /// A light grey band behind a row.
    Shade {
        x: f32,
        y: f32,
        width: f32,
        height: f32,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub marks: Vec<Mark>,
}

impl Page {
    /// The page's text, in the order it was placed (for tests).
    pub fn texts(&self) -> Vec<&str> {
        self.marks
            .iter()
            .filter_map(|mark| match mark {
                Mark::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Lays the document out on pages.
struct Layout {
    pages: Vec<Page>,
    /// The top of the free space on the current page.
    y: f32,
    title: String,
}

impl Layout {
    fn page(&mut self) -> &mut Page {
        // A layout always has its first page (made in `layout`).
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn text(&mut self, x: f32, y: f32, size: f32, font: Font, text: String) {
        self.page().marks.push(Mark::Text {
            x,
            y,
            size,
            font,
            text,
        });
    }

    /// Starts a new page when less than `height` is left; the new page says whose it is.
    fn room(&mut self, height: f32) -> bool {
        if self.y - height >= BODY_BOTTOM {
            return false;
        }
        self.pages.push(Page::default());
        self.y = PAGE_HEIGHT - MARGIN;
        let title = fit(
            &format!("{} (continued)", self.title),
            CONTENT_WIDTH,
            Font::Bold,
            10.0,
        );
        self.text(MARGIN, self.y - 10.0, 10.0, Font::Bold, title);
        self.y -= 22.0;
        true
    }

    fn heading(&mut self, text: &str) {
        self.y -= 6.0;
        let line = fit(text, CONTENT_WIDTH, Font::Bold, HEADING_SIZE);
        self.text(
            MARGIN,
            self.y - HEADING_SIZE,
            HEADING_SIZE,
            Font::Bold,
            line,
        );
        self.y -= HEADING_SIZE + 8.0;
    }

    fn line(&mut self, text: &str) {
        self.room(ROW_HEIGHT);
        let line = fit(text, CONTENT_WIDTH, Font::Regular, TEXT_SIZE + 1.0);
        self.text(MARGIN, self.y - 11.0, TEXT_SIZE + 1.0, Font::Regular, line);
        self.y -= ROW_HEIGHT;
    }

    fn header_row(&mut self, table: &Table) {
        let cells: Vec<String> = table.columns.iter().map(|c| c.header.clone()).collect();
        self.cells(table, &cells, Font::Bold);
        let width = table.columns.iter().map(|c| c.width).sum();
        let y = self.y + 2.0;
        self.page().marks.push(Mark::Rule {
            x: MARGIN,
            y,
            width,
        });
    }

    fn cells(&mut self, table: &Table, cells: &[String], font: Font) {
        let mut x = MARGIN;
        let baseline = self.y - 10.0;
        for (column, cell) in table.columns.iter().zip(cells) {
            let text = fit(cell, column.width - 2.0 * CELL_PADDING, font, TEXT_SIZE);
            let at = match column.align {
                Align::Left => x + CELL_PADDING,
                Align::Right => {
                    x + column.width - CELL_PADDING - text_width(&text, font, TEXT_SIZE)
                }
            };
            if !text.is_empty() {
                self.text(at, baseline, TEXT_SIZE, font, text);
            }
            x += column.width;
        }
        self.y -= ROW_HEIGHT;
    }

    fn table(&mut self, heading: Option<&str>, table: &Table) {
        // A heading is kept with the header row and the first row.
        let head = heading.map_or(0.0, |_| HEADING_SIZE + 14.0);
        self.room(head + 2.0 * ROW_HEIGHT + 4.0);
        if let Some(heading) = heading {
            self.heading(heading);
        }
        if table.rows.is_empty() {
            self.line(&table.empty);
            return;
        }
        self.header_row(table);
        let width: f32 = table.columns.iter().map(|c| c.width).sum();
        for row in &table.rows {
            if self.room(ROW_HEIGHT) {
                self.header_row(table);
            }
            if row.strong {
                let y = self.y - ROW_HEIGHT + 1.0;
                self.page().marks.push(Mark::Shade {
                    x: MARGIN,
                    y,
                    width,
                    height: ROW_HEIGHT,
                });
            }
            let font = if row.strong {
                Font::Bold
            } else {
                Font::Regular
            };
            self.cells(table, &row.cells, font);
        }
        self.y -= 6.0;
    }
}

/// The document on pages, each ending with its footer and "Page n of N".
pub fn layout(document: &Document) -> Vec<Page> {
    let mut layout = Layout {
        pages: vec![Page::default()],
        y: PAGE_HEIGHT - MARGIN,
        title: document.title.clone(),
    };
    let title = fit(&document.title, CONTENT_WIDTH, Font::Bold, TITLE_SIZE);
    layout.text(MARGIN, layout.y - TITLE_SIZE, TITLE_SIZE, Font::Bold, title);
    layout.y -= TITLE_SIZE + 8.0;
    if !document.subtitle.is_empty() {
        layout.line(&document.subtitle);
    }
    layout.y -= 6.0;
    let mut blocks = document.blocks.iter().peekable();
    while let Some(block) = blocks.next() {
        match block {
            Block::Heading(text) => match blocks.peek() {
                Some(Block::Table(table)) => {
                    layout.table(Some(text), table);
                    blocks.next();
                }
                _ => {
                    layout.room(HEADING_SIZE + 14.0 + ROW_HEIGHT);
                    layout.heading(text);
                }
            },
            Block::Text(text) => layout.line(text),
            Block::Table(table) => layout.table(None, table),
        }
    }
    let count = layout.pages.len();
    let footer = fit(&document.footer, CONTENT_WIDTH * 0.7, Font::Regular, 8.0);
    for (number, page) in layout.pages.iter_mut().enumerate() {
        let numbering = format!("Page {} of {count}", number + 1);
        let x = PAGE_WIDTH - MARGIN - text_width(&numbering, Font::Regular, 8.0);
        page.marks.push(Mark::Rule {
            x: MARGIN,
            y: FOOTER_Y + 10.0,
            width: CONTENT_WIDTH,
        });
        page.marks.push(Mark::Text {
            x: MARGIN,
            y: FOOTER_Y,
            size: 8.0,
            font: Font::Regular,
            text: footer.clone(),
        });
        page.marks.push(Mark::Text {
            x,
            y: FOOTER_Y,
            size: 8.0,
            font: Font::Regular,
            text: numbering,
        });
    }
    layout.pages
}

/// `text` cut to fit `width` with "..." at the end when it does not.
pub fn fit(text: &str, width: f32, font: Font, size: f32) -> String {
    if text_width(text, font, size) <= width {
        return text.to_owned();
    }
    let mut cut: String = text.to_owned();
    while !cut.is_empty() && text_width(&format!("{cut}..."), font, size) > width {
        cut.pop();
    }
    format!("{}...", cut.trim_end())
}

/// The document as PDF bytes.
pub fn render(document: &Document) -> Vec<u8> {
    render_pages(&layout(document), PAGE_WIDTH, PAGE_HEIGHT, &document.title)
}

/// Pages laid out already, `width` × `height` points each, as PDF bytes.
pub fn render_pages(pages: &[Page], width: f32, height: f32, title: &str) -> Vec<u8> {
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first_page = 6;
    let page_ref = |n: usize| Ref::new(first_page + 2 * n as i32);
    let content_ref = |n: usize| Ref::new(first_page + 2 * n as i32 + 1);

    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids((0..pages.len()).map(page_ref))
        .count(pages.len() as i32);
    for (id, base) in [(regular, Font::Regular), (bold, Font::Bold)] {
        pdf.type1_font(id)
            .base_font(Name(base.base_name()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    pdf.document_info(info)
        .title(TextStr(title))
        .producer(TextStr("kitchen edge agent"));
    for (n, page) in pages.iter().enumerate() {
        let mut writer = pdf.page(page_ref(n));
        writer
            .media_box(Rect::new(0.0, 0.0, width, height))
            .parent(tree)
            .contents(content_ref(n));
        writer
            .resources()
            .fonts()
            .pair(Name(Font::Regular.resource()), regular)
            .pair(Name(Font::Bold.resource()), bold);
        drop(writer);
        pdf.stream(content_ref(n), &content(page).finish());
    }
    pdf.finish()
}

fn content(page: &Page) -> Content {
    let mut content = Content::new();
    for mark in &page.marks {
        match mark {
            Mark::Text {
                x,
                y,
                size,
                font,
                text,
            } => {
                content
                    .begin_text()
                    .set_font(Name(font.resource()), *size)
                    .next_line(*x, *y)
                    .show(Str(&win_ansi(text)))
                    .end_text();
            }
            Mark::Rule { x, y, width } => {
                content
                    .set_line_width(0.5)
                    .move_to(*x, *y)
                    .line_to(x + width, *y)
                    .stroke();
            }
            Mark::Bar {
                x,
                y,
                width,
                height,
            } => {
                content.rect(*x, *y, *width, *height).fill_nonzero();
            }
            Mark::Shade {
                x,
                y,
                width,
                height,
            } => {
                content
                    .set_fill_gray(0.88)
                    .rect(*x, *y, *width, *height)
                    .fill_nonzero()
                    .set_fill_gray(0.0);
            }
        }
    }
    content
}

#[cfg(test)]
mod tests;
