//! ESC/POS bytes: the few commands a kitchen ticket needs, written as Epson's ESC/POS command
//! reference defines them (TM-T20/TM-T88 class thermal printers; the same codes on the
//! Citizen, Star (ESC/POS mode), Bixolon and generic 58/80 mm printers that emulate it), and
//! text in code page PC437, the printers' power-on default.

pub const ESC: u8 = 0x1B;
pub const GS: u8 = 0x1D;
pub const LF: u8 = 0x0A;

/// Bytes for one ticket, built command by command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Escpos {
    bytes: Vec<u8>,
}

/// Horizontal alignment (`ESC a n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left = 0,
    Center = 1,
}

impl Escpos {
    /// `ESC @` (initialise: default modes, clears the buffer's settings) and `ESC t 0` (code
    /// page PC437), so a ticket never inherits what a previous one left set.
    pub fn new() -> Self {
        Self {
            bytes: vec![ESC, b'@', ESC, b't', 0],
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// `ESC a n`.
    pub fn align(&mut self, align: Align) -> &mut Self {
        self.bytes.extend([ESC, b'a', align as u8]);
        self
    }

    /// `ESC E n`: emphasised (bold) on or off.
    pub fn bold(&mut self, on: bool) -> &mut Self {
        self.bytes.extend([ESC, b'E', u8::from(on)]);
        self
    }

    /// `GS ! n`: character size, `width` and `height` times normal (1–8 each).
    pub fn size(&mut self, width: u8, height: u8) -> &mut Self {
        let (width, height) = (width.clamp(1, 8) - 1, height.clamp(1, 8) - 1);
        self.bytes.extend([GS, b'!', (width << 4) | height]);
        self
    }

    /// `GS B n`: white on black (reverse) on or off.
    pub fn reverse(&mut self, on: bool) -> &mut Self {
        self.bytes.extend([GS, b'B', u8::from(on)]);
        self
    }

    /// Text (in PC437) then `LF`, which prints the line.
    pub fn line(&mut self, text: &str) -> &mut Self {
        self.bytes.extend(pc437(text));
        self.bytes.push(LF);
        self
    }

    /// `n` empty lines.
    pub fn feed(&mut self, n: usize) -> &mut Self {
        self.bytes.extend(std::iter::repeat_n(LF, n));
        self
    }

    /// A CODE128 barcode of `data` (printable ASCII, at most 253 bytes) in code set B, its
    /// text printed below: `GS h` height in dots, `GS w` module width in dots, `GS H 2` text
    /// below, `GS k 73 n {B data` (a `{` in the data is written `{{`, as the command wants).
    pub fn code128(&mut self, data: &str, module: u8, height: u8) -> &mut Self {
        let mut encoded = b"{B".to_vec();
        for byte in data.bytes().filter(|b| (0x20..0x7F).contains(b)) {
            if byte == b'{' {
                encoded.push(b'{');
            }
            encoded.push(byte);
        }
        encoded.truncate(255);
        self.bytes
            .extend([GS, b'h', height, GS, b'w', module, GS, b'H', 2]);
        self.bytes.extend([GS, b'k', 73, encoded.len() as u8]);
        self.bytes.extend(encoded);
        self.bytes.push(LF);
        self
    }

    /// Feeds past the cutter and `GS V 66 n`: feed `n` then partial cut.
    pub fn cut(&mut self) -> &mut Self {
        self.bytes.extend([GS, b'V', 66, 3]);
        self
    }
}

/// Modules a CODE128 code set B symbol of `chars` characters takes: start, one symbol per
/// character, check, stop (13), plus the quiet zone each side (10).
pub fn code128_modules(chars: usize) -> usize {
    11 + 11 * chars + 11 + 13 + 20
}

/// `text` in code page PC437: ASCII as it is, the accented letters and signs a menu uses
/// mapped to their PC437 byte, anything else `?`; control characters become spaces so that
/// nothing in an order can issue a printer command.
pub fn pc437(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            c if c.is_control() => b' ',
            other => PC437_HIGH
                .iter()
                .find(|(ch, _)| *ch == other)
                .map_or(b'?', |(_, byte)| *byte),
        })
        .collect()
}

/// The PC437 upper half a kitchen's text may need.
const PC437_HIGH: &[(char, u8)] = &[
    ('Ç', 0x80),
    ('ü', 0x81),
    ('é', 0x82),
    ('â', 0x83),
    ('ä', 0x84),
    ('à', 0x85),
    ('å', 0x86),
    ('ç', 0x87),
    ('ê', 0x88),
    ('ë', 0x89),
    ('è', 0x8A),
    ('ï', 0x8B),
    ('î', 0x8C),
    ('ì', 0x8D),
    ('Ä', 0x8E),
    ('Å', 0x8F),
    ('É', 0x90),
    ('æ', 0x91),
    ('Æ', 0x92),
    ('ô', 0x93),
    ('ö', 0x94),
    ('ò', 0x95),
    ('û', 0x96),
    ('ù', 0x97),
    ('ÿ', 0x98),
    ('Ö', 0x99),
    ('Ü', 0x9A),
    ('¢', 0x9B),
    ('£', 0x9C),
    ('¥', 0x9D),
    ('á', 0xA0),
    ('í', 0xA1),
    ('ó', 0xA2),
    ('ú', 0xA3),
    ('ñ', 0xA4),
    ('Ñ', 0xA5),
    ('¿', 0xA8),
    ('¡', 0xAD),
    ('ß', 0xE1),
    ('°', 0xF8),
    ('·', 0xFA),
    ('–', b'-'),
    ('—', b'-'),
    ('’', b'\''),
    ('‘', b'\''),
    ('“', b'"'),
    ('”', b'"'),
    ('×', b'x'),
    ('…', b'.'),
];
