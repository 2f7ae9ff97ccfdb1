//! Prep labels for printing: the GS1 element string of `scan::prep_label` as a GS1-128 barcode
//! (Code 128 with FNC1 first, ISO/IEC 15417), drawn as SVG for a printable page or written as
//! ZPL for Zebra label printers. Pure.

use std::fmt::Write;

use crate::scan::GS;

/// Symbol values 0–105 as bar/space widths in modules (bar first), then the stop pattern.
const PATTERNS: [&str; 107] = [
    "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212",
    "221213", "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221",
    "223211", "221132", "221231", "213212", "223112", "312131", "311222", "321122", "321221",
    "312212", "322112", "322211", "212123", "212321", "232121", "111323", "131123", "131321",
    "112313", "132113", "132311", "211313", "231113", "231311", "112133", "112331", "132131",
    "113123", "113321", "133121", "313121", "211331", "231131", "213113", "213311", "213131",
    "311123", "311321", "331121", "312113", "312311", "332111", "314111", "221411", "431111",
    "111224", "111422", "121124", "121421", "141122", "141221", "112214", "112412", "122114",
    "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111", "111242",
    "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
    "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311",
    "113141", "114131", "311141", "411131", "211412", "211214", "211232", "2331112",
];
const CODE_C: u8 = 99;
const CODE_B: u8 = 100;
const FNC1: u8 = 102;
const START_B: u8 = 104;
const START_C: u8 = 105;
const STOP: u8 = 106;
/// Light modules each side of the symbol (ISO/IEC 15417: at least 10).
const QUIET: u32 = 10;

/// The Code 128 symbol values of a GS1-128 barcode for a raw GS1 element string (`GS`
/// between fields): start, FNC1, data (code set C for digit pairs, B otherwise), check, stop.
pub fn gs1_128(element_string: &str) -> Result<Vec<u8>, String> {
    let chars: Vec<char> = element_string.chars().collect();
    if let Some(bad) = chars
        .iter()
        .find(|&&c| c != GS && !(' '..='~').contains(&c))
    {
        return Err(format!("{bad:?} cannot be written in Code 128 set B"));
    }
    let digits_from = |i: usize| chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut set_c = digits_from(0) >= 2;
    let mut values = vec![if set_c { START_C } else { START_B }, FNC1];
    let mut i = 0;
    while i < chars.len() {
        let run = digits_from(i);
        if chars[i] == GS {
            values.push(FNC1);
            i += 1;
        } else if set_c && run >= 2 {
            let pair = chars[i..i + 2]
                .iter()
                .filter_map(|c| c.to_digit(10))
                .fold(0, |n, d| n * 10 + d);
            values.push(pair as u8);
            i += 2;
        } else if set_c {
            values.push(CODE_B);
            set_c = false;
        } else if run >= 4 {
            // An odd run starts with one digit in set B, then pairs.
            if run % 2 == 1 {
                values.push(chars[i] as u8 - b' ');
                i += 1;
            }
            values.push(CODE_C);
            set_c = true;
        } else {
            values.push(chars[i] as u8 - b' ');
            i += 1;
        }
    }
    let check = values
        .iter()
        .enumerate()
        .map(|(position, &value)| position.max(1) as u32 * u32::from(value))
        .sum::<u32>()
        % 103;
    values.push(check as u8);
    values.push(STOP);
    Ok(values)
}

/// Bar and space widths in modules, bar first, for symbol values.
fn widths(values: &[u8]) -> impl Iterator<Item = u32> + '_ {
    values.iter().flat_map(|&value| {
        PATTERNS[usize::from(value)]
            .bytes()
            .map(|width| u32::from(width - b'0'))
    })
}

/// The symbol's width in modules, quiet zones included.
pub fn modules(values: &[u8]) -> u32 {
    widths(values).sum::<u32>() + 2 * QUIET
}

/// The symbol's bars as (left edge, width) in modules from the left of the quiet zone.
pub fn bars(values: &[u8]) -> Vec<(u32, u32)> {
    let mut x = QUIET;
    let mut bars = Vec::new();
    for (index, width) in widths(values).enumerate() {
        if index % 2 == 0 {
            bars.push((x, width));
        }
        x += width;
    }
    bars
}

/// An SVG drawing of the symbol with quiet zones; `module_mm` wide modules, `height_mm` tall.
pub fn svg(values: &[u8], module_mm: f32, height_mm: f32) -> String {
    let total = modules(values);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.2}mm\" height=\"{height_mm}mm\" \
         viewBox=\"0 0 {total} 60\" preserveAspectRatio=\"none\" shape-rendering=\"crispEdges\">\
         <rect width=\"{total}\" height=\"60\" fill=\"#fff\"/>",
        total as f32 * module_mm
    );
    for (x, width) in bars(values) {
        let _ = write!(svg, "<rect x=\"{x}\" width=\"{width}\" height=\"60\"/>");
    }
    svg.push_str("</svg>");
    svg
}

/// The symbol values as the field data of ZPL's `^BC` in its default mode: subset invocations
/// (`>;` start C, `>:` start B, `>5` code C, `>6` code B, `>8` FNC1) and the data, `>` escaped
/// as `><`. The printer adds the check character and stop itself.
pub fn zpl_field_data(values: &[u8]) -> String {
    let data = values
        .get(..values.len().saturating_sub(2))
        .unwrap_or_default();
    let mut set_c = false;
    let mut out = String::new();
    for &value in data {
        match value {
            START_C => {
                out.push_str(">;");
                set_c = true;
            }
            START_B => out.push_str(">:"),
            CODE_C => {
                out.push_str(">5");
                set_c = true;
            }
            CODE_B => {
                out.push_str(">6");
                set_c = false;
            }
            FNC1 => out.push_str(">8"),
            value if set_c => {
                let _ = write!(out, "{value:02}");
            }
            value => match char::from(value + b' ') {
                '>' => out.push_str("><"),
                c => out.push(c),
            },
        }
    }
    out
}

/// What a printed prep label says besides its barcode.
#[derive(Debug, Clone)]
pub struct LabelText<'a> {
    pub item_name: &'a str,
    pub quantity: u32,
    pub unit: Option<&'a str>,
    pub batch_id: &'a str,
    pub prepared: chrono::NaiveDate,
    pub use_by: chrono::NaiveDate,
    /// The bracketed human-readable element string.
    pub human: &'a str,
}

/// A 4 × 2 inch (812 × 406 dots at 203 dpi) ZPL label: item, dates, quantity and batch, and
/// the GS1-128 barcode with its bracketed text underneath.
pub fn zpl(values: &[u8], text: &LabelText<'_>) -> String {
    // ^FH lets field data carry `_XX` hex escapes; only `^`, `~` and `_` need them.
    let field = |value: &str| {
        value
            .replace('_', "_5F")
            .replace('^', "_5E")
            .replace('~', "_7E")
    };
    let quantity = match text.unit {
        Some(unit) => format!("{} x {unit}", text.quantity),
        None => text.quantity.to_string(),
    };
    format!(
        "^XA\n^CI28\n^PW812\n^LL406\n\
         ^FO30,25^A0N,50,50^FH^FD{}^FS\n\
         ^FO30,85^A0N,32,32^FDPrepared {}   USE BY {}^FS\n\
         ^FO30,125^A0N,32,32^FH^FDQty {}   Batch {}^FS\n\
         ^FO30,175^BY2,3^BCN,140,N,N,N^FD{}^FS\n\
         ^FO30,325^A0N,26,26^FH^FD{}^FS\n^XZ\n",
        field(text.item_name),
        text.prepared.format("%Y-%m-%d"),
        text.use_by.format("%Y-%m-%d"),
        field(&quantity),
        field(text.batch_id),
        zpl_field_data(values),
        field(text.human),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_gs1_128_with_set_switches_and_the_check_character() {
        // (01)09501101530003: start C, FNC1, eight pairs; check (105 + 102 + 2·1 + 3·9 + 4·50
        // + 5·11 + 6·1 + 7·53 + 8·0 + 9·3) mod 103 = 895 mod 103 = 71.
        assert_eq!(
            gs1_128("0109501101530003").expect("encodable"),
            [105, 102, 1, 9, 50, 11, 1, 53, 0, 3, 71, 106]
        );
        // (91)AB then a GS and (10)12345: C for "91", B for letters, FNC1, an odd run of five
        // digits in C after one in B.
        let values = gs1_128("91AB\u{1d}1012345").expect("encodable");
        assert_eq!(
            values[..values.len() - 2],
            [105, 102, 91, 100, 33, 34, 102, 17, 99, 1, 23, 45]
        );
        let check = values[..values.len() - 2]
            .iter()
            .enumerate()
            .map(|(i, &v)| i.max(1) as u32 * u32::from(v))
            .sum::<u32>()
            % 103;
        assert_eq!(values[values.len() - 2..], [check as u8, 106]);
        assert!(gs1_128("caf\u{e9}").is_err());
    }

    #[test]
    fn every_symbol_is_eleven_modules_and_the_svg_draws_each_bar() {
        for pattern in &PATTERNS[..106] {
            assert_eq!(
                pattern.bytes().map(|b| u32::from(b - b'0')).sum::<u32>(),
                11
            );
        }
        let values = gs1_128("0109501101530003").expect("encodable");
        let svg = svg(&values, 0.33, 15.0);
        // Eleven symbols (start, FNC1, eight pairs, check) of three bars, the stop's four, and
        // the background.
        assert_eq!(svg.matches("<rect").count(), 11 * 3 + 4 + 1);
        let modules: u32 = widths(&values).sum();
        assert_eq!(modules, 11 * 11 + 13);
    }

    #[test]
    fn zpl_names_the_subsets_and_escapes() {
        let values = gs1_128("91A>B\u{1d}1012345").expect("encodable");
        assert_eq!(zpl_field_data(&values), ">;>891>6A><B>81>5012345");
    }
}
