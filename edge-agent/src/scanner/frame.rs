//! Framing for serial scanners: bytes in, in whatever chunks the reads return, complete frames
//! out. Pure: no IO and no clock (the serial task calls [`Framer::flush`] when a `none`-suffix
//! scanner has been quiet for its `idle_ms`). docs/scanners.md ("Framing") has the rules.

use crate::scan::MAX_FRAME_LEN;

use crate::config::Suffix;

const CR: u8 = b'\r';
const LF: u8 = b'\n';

/// One frame as the scanner sent it, without its terminator (and prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame's bytes, at most [`MAX_FRAME_LEN`] of them: an over-long frame is cut.
    pub bytes: Vec<u8>,
    /// How long the frame really was (`bytes.len()` unless it was cut).
    pub len: usize,
}

impl Frame {
    /// Longer than a scan may be: the kitchen records it as rejected.
    pub fn overlong(&self) -> bool {
        self.len > MAX_FRAME_LEN
    }
}

/// Cuts a byte stream into frames by the scanner's suffix.
///
/// Memory is bounded whatever arrives: at most [`MAX_FRAME_LEN`] bytes of a frame are kept; the
/// rest is only counted.
#[derive(Debug)]
pub struct Framer {
    suffix: Suffix,
    prefix: Vec<u8>,
    /// The frame so far, cut at `MAX_FRAME_LEN` plus the prefix's length.
    bytes: Vec<u8>,
    /// Bytes of the frame so far, including those not kept.
    len: usize,
    /// The last byte of the frame so far (kept or not).
    last: Option<u8>,
    /// A frame just ended on its terminator: the other line-end byte is ignored if it comes
    /// next (a scanner sending CR LF to an agent set to `cr`).
    just_ended: bool,
}

impl Framer {
    /// `prefix` (may be empty) is stripped from the start of each frame that has it.
    pub fn new(suffix: Suffix, prefix: &[u8]) -> Self {
        Self {
            suffix,
            prefix: prefix.to_vec(),
            bytes: Vec::with_capacity(MAX_FRAME_LEN + prefix.len()),
            len: 0,
            last: None,
            just_ended: false,
        }
    }

    /// Whether bytes of an unfinished frame are held.
    pub fn pending(&self) -> bool {
        self.len > 0
    }

    /// Takes in `chunk`; every frame it completes is appended to `frames`, in order.
    pub fn push(&mut self, chunk: &[u8], frames: &mut Vec<Frame>) {
        for &byte in chunk {
            let just_ended = std::mem::take(&mut self.just_ended);
            match (self.suffix, byte) {
                (Suffix::Cr, CR) | (Suffix::Lf, LF) => {
                    // A CR LF (or LF CR) sender to an agent set to the other one: the byte
                    // before the terminator is not data either.
                    let other = if byte == CR { LF } else { CR };
                    self.end(frames, Some(other));
                    self.just_ended = true;
                }
                (Suffix::Cr, LF) | (Suffix::Lf, CR) if just_ended => {}
                (Suffix::Crlf, LF) if self.last == Some(CR) => self.end(frames, Some(CR)),
                _ => self.add(byte),
            }
        }
    }

    /// Ends the frame held, if any (the `none` suffix: the scanner has gone quiet).
    pub fn flush(&mut self) -> Option<Frame> {
        let mut frames = Vec::with_capacity(1);
        self.end(&mut frames, None);
        self.just_ended = false;
        frames.pop()
    }

    fn add(&mut self, byte: u8) {
        if self.bytes.len() < MAX_FRAME_LEN + self.prefix.len() {
            self.bytes.push(byte);
        }
        // Saturating: a scanner that never sends a terminator cannot overflow the count.
        self.len = self.len.saturating_add(1);
        self.last = Some(byte);
    }

    /// Ends the frame: drops a last byte `trailing` (a line-end byte that belongs to the
    /// terminator), strips the prefix, cuts what is over the limit and emits the frame unless
    /// nothing is left.
    fn end(&mut self, frames: &mut Vec<Frame>, trailing: Option<u8>) {
        let capacity = MAX_FRAME_LEN + self.prefix.len();
        let mut bytes = std::mem::replace(&mut self.bytes, Vec::with_capacity(capacity));
        let mut len = std::mem::take(&mut self.len);
        let last = self.last.take();
        if len > 0 && trailing.is_some() && last == trailing {
            if bytes.len() == len {
                bytes.pop();
            }
            len -= 1;
        }
        if !self.prefix.is_empty() && bytes.starts_with(&self.prefix) {
            bytes.drain(..self.prefix.len());
            len -= self.prefix.len();
        }
        bytes.truncate(MAX_FRAME_LEN);
        if len > 0 {
            frames.push(Frame { bytes, len });
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    /// The frames of `input` fed in one chunk (then flushed, for the `none` suffix), as
    /// `(text, len)`.
    fn frames(suffix: Suffix, prefix: &str, input: &[u8]) -> Vec<(String, usize)> {
        let mut framer = Framer::new(suffix, prefix.as_bytes());
        let mut frames = Vec::new();
        framer.push(input, &mut frames);
        if suffix == Suffix::None {
            frames.extend(framer.flush());
        }
        frames
            .into_iter()
            .map(|f| (String::from_utf8_lossy(&f.bytes).into_owned(), f.len))
            .collect()
    }

    fn check(suffix: Suffix, input: &[u8], expected: &[&str]) {
        let got: Vec<String> = frames(suffix, "", input)
            .into_iter()
            .map(|(text, len)| {
                assert_eq!(text.len(), len, "{text:?} not cut");
                text
            })
            .collect();
        assert_eq!(
            got,
            expected,
            "{suffix:?} {:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn each_suffix_ends_frames_where_it_should() {
        use Suffix::*;
        check(Cr, b"ORDER:o1\rORDER:o2\r", &["ORDER:o1", "ORDER:o2"]);
        // A CR LF scanner set to cr (and an LF CR one): the LF is not data.
        check(Cr, b"A1\r\nB2\r\n", &["A1", "B2"]);
        check(Cr, b"A1\n\rB2\n\r", &["A1", "B2"]);
        // Stray line ends make no empty frames; an LF inside a frame is data under cr.
        check(Cr, b"\r\r\n\rA1\r\r", &["A1"]);
        check(Cr, b"A\n1\r", &["A\n1"]);
        check(Lf, b"A1\nB2\n", &["A1", "B2"]);
        check(Lf, b"A1\r\nB2\r\n", &["A1", "B2"]);
        check(Lf, b"A1\n\rB2\n\r\n\n", &["A1", "B2"]);
        check(Crlf, b"A1\r\nB2\r\n\r\n", &["A1", "B2"]);
        // Under crlf a lone CR or LF is data (a multi-line code).
        check(Crlf, b"line 1\nline 2\rend\r\n", &["line 1\nline 2\rend"]);
        // Under none nothing is a terminator: the frame ends when the scanner goes quiet.
        check(None, b"A1\r\n", &["A1\r\n"]);
        // Without its terminator a frame is held, not emitted.
        check(Cr, b"A1\rB2", &["A1"]);
    }

    #[test]
    fn a_frame_is_emitted_once_its_terminator_arrives() {
        let mut framer = Framer::new(Suffix::Crlf, b"");
        let mut frames = Vec::new();
        for chunk in [&b"ORD"[..], b"ER:o", b"1\r"] {
            framer.push(chunk, &mut frames);
            assert!(frames.is_empty());
            assert!(framer.pending());
        }
        framer.push(b"\nORDER:o2\r\nOR", &mut frames);
        let texts: Vec<&[u8]> = frames.iter().map(|f| f.bytes.as_slice()).collect();
        assert_eq!(texts, [&b"ORDER:o1"[..], b"ORDER:o2"]);
        assert!(framer.pending());
        assert_eq!(
            framer.flush(),
            Some(Frame {
                bytes: b"OR".to_vec(),
                len: 2
            })
        );
        assert!(!framer.pending());
        assert_eq!(framer.flush(), None);
    }

    #[test]
    fn over_long_frames_are_cut_counted_and_emitted_once() {
        let mut input = vec![b'A'; 1000];
        input.extend_from_slice(b"\r\nB1\r\n");
        let got = frames(Suffix::Cr, "", &input);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], ("A".repeat(MAX_FRAME_LEN), 1000));
        assert_eq!(got[1], ("B1".to_owned(), 2));
        // Exactly the limit is not over-long; the terminator's CR is not counted.
        let exact = [vec![b'C'; MAX_FRAME_LEN], b"\r\n".to_vec()].concat();
        let got = frames(Suffix::Crlf, "", &exact);
        assert_eq!(got, [("C".repeat(MAX_FRAME_LEN), MAX_FRAME_LEN)]);
        let frame = Frame {
            bytes: vec![b'C'; MAX_FRAME_LEN],
            len: MAX_FRAME_LEN + 1,
        };
        assert!(frame.overlong());
        assert!(
            !Frame {
                len: MAX_FRAME_LEN,
                ..frame
            }
            .overlong()
        );
    }

    #[test]
    fn bytes_pass_through_untouched() {
        let mut framer = Framer::new(Suffix::Cr, b"");
        let mut frames = Vec::new();
        framer.push(b"\xff\xfe\x00\x1d]C1\x80\r", &mut frames);
        assert_eq!(frames[0].bytes, b"\xff\xfe\x00\x1d]C1\x80");
        // AIM identifiers are the parser's business, not the framer's.
        check(Suffix::Cr, b"]E04006381333931\r", &["]E04006381333931"]);
    }

    #[test]
    fn the_prefix_is_stripped_when_present() {
        assert_eq!(
            frames(Suffix::Cr, "SCN:", b"SCN:ORDER:o1\rORDER:o2\rSCN:\r"),
            [("ORDER:o1".to_owned(), 8), ("ORDER:o2".to_owned(), 8)]
        );
        // The prefix does not count towards the length limit: all 256 bytes after it arrive.
        let mut input = b"SCN:".to_vec();
        input.extend(vec![b'D'; MAX_FRAME_LEN]);
        input.push(b'\r');
        let got = frames(Suffix::Cr, "SCN:", &input);
        assert_eq!(got, [("D".repeat(MAX_FRAME_LEN), MAX_FRAME_LEN)]);
    }

    /// Whatever the read boundaries, the same frames come out: 200 seeded random streams of
    /// codes, line ends, junk and over-long runs, each fed whole and in random chunks.
    #[test]
    fn chunk_boundaries_do_not_change_the_frames() {
        let pieces: [&[u8]; 10] = [
            b"ORDER:o1",
            b"\r",
            b"\n",
            b"\r\n",
            b"]C1(01)09506000134352",
            b"\xff\xfe",
            b"PRE",
            b"\x00",
            &[b'x'; 300],
            b"PREORDER:o2",
        ];
        let mut rng = StdRng::seed_from_u64(0x5ca9);
        for round in 0..200 {
            let stream: Vec<u8> = (0..rng.gen_range(0..60))
                .flat_map(|_| pieces[rng.gen_range(0..pieces.len())].iter().copied())
                .collect();
            for suffix in [Suffix::Cr, Suffix::Lf, Suffix::Crlf, Suffix::None] {
                let mut framer = Framer::new(suffix, b"PRE");
                let mut whole = Vec::new();
                framer.push(&stream, &mut whole);
                whole.extend(framer.flush());
                let whole: Vec<(String, usize)> = whole
                    .into_iter()
                    .map(|f| (String::from_utf8_lossy(&f.bytes).into_owned(), f.len))
                    .collect();
                let mut framer = Framer::new(suffix, b"PRE");
                let mut chunked = Vec::new();
                let mut rest = stream.as_slice();
                while !rest.is_empty() {
                    let (chunk, tail) = rest.split_at(rng.gen_range(1..=rest.len().min(40)));
                    framer.push(chunk, &mut chunked);
                    rest = tail;
                }
                chunked.extend(framer.flush());
                let chunked: Vec<(String, usize)> = chunked
                    .into_iter()
                    .map(|f| {
                        assert!(f.bytes.len() <= MAX_FRAME_LEN && f.len >= f.bytes.len());
                        (String::from_utf8_lossy(&f.bytes).into_owned(), f.len)
                    })
                    .collect();
                assert_eq!(chunked, whole, "round {round}, {suffix:?}");
            }
        }
    }
}
