//! Header sections (RFC 9204) for the only requests this server answers: decoding a
//! request's field section and encoding a response's. The server advertises a zero-size
//! dynamic table, so every field section refers to the static table only; the QPACK
//! field-line coding itself is the `wtransport-proto` crate's.
//!
//! Before that decoder sees a peer's section, [`walk`] checks its shape without
//! allocating: every prefixed integer fits in 62 bits, every string lies inside the
//! section, nothing refers to a dynamic table, and there are at most
//! [`MAX_FIELD_LINES`] field lines. The decoder builds a pair of strings and a map
//! entry per line, so the line cap is what bounds a request's decoding cost, not the
//! section's size in bytes.

use wtransport_proto::qpack::{Decoder, Encoder};

use super::{code, frame};

/// The parts of a request the router and the application look at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestHead {
    pub method: String,
    /// `:protocol` of an extended CONNECT (RFC 9220), e.g. `webtransport`.
    pub protocol: Option<String>,
    pub scheme: Option<String>,
    pub authority: Option<String>,
    /// `:path` with its query.
    pub path: String,
    pub origin: Option<String>,
}

impl RequestHead {
    /// An extended CONNECT for a WebTransport session (draft-ietf-webtrans-http3 §3.2).
    pub fn is_webtransport(&self) -> bool {
        self.method == "CONNECT" && self.protocol.as_deref() == Some("webtransport")
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// The query, if any.
    pub fn query(&self) -> Option<&str> {
        self.path.split_once('?').map(|(_, q)| q)
    }
}

/// Why a field section could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not decodable (or refers to a dynamic table we never allowed): a connection
    /// error (RFC 9204 §2.2.3).
    Decompression,
    /// Decodable but not a well-formed request (RFC 9114 §4.1.2): a stream error.
    Malformed(&'static str),
}

impl HeadError {
    pub fn code(self) -> u64 {
        match self {
            Self::Decompression => code::QPACK_DECOMPRESSION_FAILED,
            Self::Malformed(_) => code::H3_MESSAGE_ERROR,
        }
    }
}

/// Most field lines a request's section may carry. A browser's WebTransport CONNECT
/// carries about a dozen (`:method`, `:protocol`, `:scheme`, `:authority`, `:path`,
/// `origin`, `user-agent`, `sec-webtransport-http3-draft02`, `accept-language`, a few
/// more); 64 leaves room for five times that and for extensions we do not know of,
/// while a section of the largest size allowed could otherwise hold thousands of
/// one-byte static references, each a string pair and a map entry to the decoder.
/// More lines is a malformed request (H3_MESSAGE_ERROR on its stream), not an
/// undecodable section.
pub const MAX_FIELD_LINES: usize = 64;

/// Largest value of a prefixed integer in a peer's section: 62 bits, as for QUIC
/// varints. A length or index this large already fails every later check; capping it
/// keeps the decoder's arithmetic (a shift of 7 more bits per continuation byte) far
/// from overflowing.
const MAX_PREFIXED_INT: u64 = (1 << 62) - 1;

/// The shift of the last continuation byte a prefixed integer of at most 62 bits may
/// need: nine continuation bytes carry 63 bits past the prefix.
const MAX_CONTINUATION_SHIFT: u32 = 56;

/// Read a prefixed integer (RFC 9204 §4.1.1, RFC 7541 §5.1) whose first byte is
/// `data[*pos]`, with its value in the low `prefix` bits of that byte, and move `pos`
/// past it. None when it runs past the end of `data` or beyond [`MAX_PREFIXED_INT`].
fn prefixed_int(data: &[u8], pos: &mut usize, prefix: u32) -> Option<u64> {
    let max_prefix = (1u64 << prefix) - 1;
    let mut value = u64::from(*data.get(*pos)?) & max_prefix;
    *pos += 1;
    if value < max_prefix {
        return Some(value);
    }
    let mut shift = 0u32;
    loop {
        let byte = *data.get(*pos)?;
        *pos += 1;
        // 127 << 56 is below 2^63 and `value` stays below 2^62 before the add: no
        // overflow on the way to the check.
        value += u64::from(byte & 0x7f) << shift;
        if value > MAX_PREFIXED_INT {
            return None;
        }
        if byte & 0x80 == 0 {
            return Some(value);
        }
        if shift == MAX_CONTINUATION_SHIFT {
            // A tenth continuation byte: nothing a 62-bit value needs, even as padding.
            return None;
        }
        shift += 7;
    }
}

/// Skip a string literal (RFC 9204 §4.1.2) whose length is a prefixed integer of
/// `prefix` bits in `data[*pos]` (the Huffman flag above it is not looked at: only the
/// length matters here). None when the string runs past the end of `data`.
fn skip_string(data: &[u8], pos: &mut usize, prefix: u32) -> Option<()> {
    let len = prefixed_int(data, pos, prefix)?;
    let end = u64::try_from(*pos).ok()?.checked_add(len)?;
    if end > data.len() as u64 {
        return None;
    }
    *pos = end as usize;
    Some(())
}

/// Entries of the static table (RFC 9204 Appendix A): indices 0 to 98.
const STATIC_TABLE_LEN: u64 = 99;

/// The number of field lines in an encoded field section (RFC 9204 §4.5), or None when
/// it is not one this server can decode: a Required Insert Count other than 0 (we
/// advertised no dynamic table), a reference to the dynamic table or past the static
/// one, a prefixed integer beyond 62 bits, a string or integer cut short by the end of
/// the section. Nothing is allocated and nothing is decoded: string contents (Huffman
/// or not, UTF-8 or not) are left to the decoder.
fn field_lines(block: &[u8]) -> Option<usize> {
    let mut pos = 0;
    // §4.5.1.1: Required Insert Count, an 8-bit prefix integer; 0 is the byte 0x00.
    if prefixed_int(block, &mut pos, 8)? != 0 {
        return None;
    }
    // §4.5.1.2: the sign bit and Delta Base, a 7-bit prefix integer. With no dynamic
    // reference allowed the Base never matters; only its encoding is checked.
    prefixed_int(block, &mut pos, 7)?;
    let static_index = |index: u64| (index < STATIC_TABLE_LEN).then_some(());
    let mut lines = 0;
    while let Some(&first) = block.get(pos) {
        lines += 1;
        if first & 0x80 != 0 {
            // §4.5.2 indexed field line: 1 T index(6+); T = 0 is the dynamic table.
            if first & 0x40 == 0 {
                return None;
            }
            static_index(prefixed_int(block, &mut pos, 6)?)?;
        } else if first & 0x40 != 0 {
            // §4.5.4 literal with name reference: 0 1 N T index(4+), value.
            if first & 0x10 == 0 {
                return None;
            }
            static_index(prefixed_int(block, &mut pos, 4)?)?;
            skip_string(block, &mut pos, 7)?;
        } else if first & 0x20 != 0 {
            // §4.5.6 literal with literal name: 0 0 1 N H length(3+), name, value.
            skip_string(block, &mut pos, 3)?;
            skip_string(block, &mut pos, 7)?;
        } else {
            // §4.5.3 indexed with post-base index (0001) and §4.5.5 literal with
            // post-base name reference (0000): both name the dynamic table.
            return None;
        }
    }
    Some(lines)
}

/// Check a peer's field section before it is decoded (see the module docs): an
/// undecodable section is a connection error, a decodable one of more than
/// [`MAX_FIELD_LINES`] lines a malformed request.
pub fn walk(block: &[u8]) -> Result<(), HeadError> {
    let lines = field_lines(block).ok_or(HeadError::Decompression)?;
    if lines > MAX_FIELD_LINES {
        return Err(HeadError::Malformed("too many field lines"));
    }
    Ok(())
}

/// Decode a request's field section (the payload of its HEADERS frame).
pub fn decode_request(block: &[u8]) -> Result<RequestHead, HeadError> {
    let fields = decode_fields(block)?;
    let get = |name: &str| fields.get(name).cloned();
    let method = get(":method").ok_or(HeadError::Malformed("missing :method"))?;
    let head = RequestHead {
        protocol: get(":protocol"),
        scheme: get(":scheme"),
        authority: get(":authority"),
        path: get(":path").unwrap_or_default(),
        origin: get("origin"),
        method,
    };
    if head.protocol.is_some() && head.method != "CONNECT" {
        return Err(HeadError::Malformed(
            ":protocol outside an extended CONNECT",
        ));
    }
    let plain_connect = head.method == "CONNECT" && head.protocol.is_none();
    if plain_connect {
        // RFC 9114 §4.4: a classic CONNECT names only an authority.
        if head.authority.is_none() {
            return Err(HeadError::Malformed("CONNECT without :authority"));
        }
    } else if head.scheme.is_none() || head.path.is_empty() {
        return Err(HeadError::Malformed("missing :scheme or :path"));
    }
    if head.path.len() > 4096 {
        return Err(HeadError::Malformed(":path too long"));
    }
    Ok(head)
}

/// A HEADERS frame carrying a response with `status`. A successful WebTransport
/// response names the draft it speaks (`sec-webtransport-http3-draft: draft02`),
/// which Chromium requires.
pub fn response_frame(status: u16, webtransport: bool) -> Vec<u8> {
    let status = status.to_string();
    let mut fields: Vec<(&str, &str)> = vec![(":status", &status)];
    if webtransport && status == "200" {
        fields.push(("sec-webtransport-http3-draft", "draft02"));
    }
    let block = Encoder::encode(fields);
    let mut out = Vec::with_capacity(block.len() + 4);
    frame::put_header(&mut out, frame::HEADERS, block.len() as u64);
    out.extend_from_slice(&block);
    out
}

/// Encode a request (tests and the in-memory client).
pub fn request_block(fields: &[(&str, &str)]) -> Vec<u8> {
    Encoder::encode(fields.iter().copied()).into_vec()
}

/// Decode a response's `:status` (tests and the in-memory client).
pub fn decode_status(block: &[u8]) -> Option<u16> {
    decode_fields(block).ok()?.get(":status")?.parse().ok()
}

/// The fields of a section that passes [`walk`]. wtransport-proto's decoder shifts each
/// continuation byte of a prefixed integer by 7 more bits without bound, which panics
/// where overflow checks are on once an integer has ten or more continuation bytes: the
/// walk refuses those first, so the decoder only ever reads integers of at most nine.
fn decode_fields(block: &[u8]) -> Result<std::collections::HashMap<String, String>, HeadError> {
    walk(block)?;
    Decoder::decode(block).map_err(|_| HeadError::Decompression)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn connect(path: &str) -> Vec<u8> {
        request_block(&[
            (":method", "CONNECT"),
            (":protocol", "webtransport"),
            (":scheme", "https"),
            (":authority", "127.0.0.1:4433"),
            (":path", path),
            ("origin", "https://example.test"),
        ])
    }

    #[test]
    fn a_webtransport_connect_decodes() {
        let head = decode_request(&connect("/echo?x=1")).unwrap();
        assert!(head.is_webtransport());
        assert_eq!(head.path_only(), "/echo");
        assert_eq!(head.query(), Some("x=1"));
        assert_eq!(head.origin.as_deref(), Some("https://example.test"));
    }

    #[test]
    fn malformed_and_undecodable_blocks_are_told_apart() {
        assert_eq!(
            decode_request(&request_block(&[(":path", "/")])),
            Err(HeadError::Malformed("missing :method"))
        );
        assert_eq!(decode_request(&[]), Err(HeadError::Decompression));
        // A non-zero Required Insert Count refers to a dynamic table.
        assert_eq!(decode_request(&[0x02, 0x00]), Err(HeadError::Decompression));
        assert_eq!(
            decode_request(&[0x00, 0x00, 0xff]),
            Err(HeadError::Decompression)
        );
        // An indexed field line whose index runs on for eleven continuation bytes: a
        // prefixed integer far wider than 64 bits.
        let mut long = vec![0x00, 0x00, 0xff];
        long.extend_from_slice(&[0x80; 10]);
        long.push(0x00);
        assert_eq!(decode_request(&long), Err(HeadError::Decompression));
        assert_eq!(
            decode_request(&request_block(&[
                (":method", "GET"),
                (":protocol", "webtransport")
            ])),
            Err(HeadError::Malformed(
                ":protocol outside an extended CONNECT"
            ))
        );
    }

    /// A section of the given raw field lines after a zero prefix.
    fn section(lines: &[u8]) -> Vec<u8> {
        let mut block = vec![0x00, 0x00];
        block.extend_from_slice(lines);
        block
    }

    #[test]
    fn a_browser_connect_walks() {
        let block = request_block(&[
            (":method", "CONNECT"),
            (":protocol", "webtransport"),
            (":scheme", "https"),
            (":authority", "meet.example.test:443"),
            (":path", "/?token=abc"),
            ("origin", "https://meet.example.test"),
            (
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0",
            ),
            ("sec-webtransport-http3-draft02", "1"),
            ("accept-language", "en-GB,en;q=0.9"),
            ("accept-encoding", "gzip, deflate, br"),
            ("sec-fetch-mode", "cors"),
            ("priority", "u=1, i"),
        ]);
        assert_eq!(field_lines(&block), Some(12));
        assert_eq!(walk(&block), Ok(()));
        assert!(decode_request(&block).unwrap().is_webtransport());
    }

    #[test]
    fn more_than_max_field_lines_is_malformed() {
        // A CONNECT of six lines padded with one-byte static references
        // (0xC0 | 31: accept-encoding: gzip, deflate, br).
        let padded = |total: usize| {
            let mut block = connect("/");
            let lines = field_lines(&block).unwrap();
            block.extend(std::iter::repeat_n(0xC0 | 31, total - lines));
            block
        };
        let at_cap = padded(MAX_FIELD_LINES);
        assert_eq!(field_lines(&at_cap), Some(MAX_FIELD_LINES));
        assert!(decode_request(&at_cap).unwrap().is_webtransport());
        assert_eq!(
            decode_request(&padded(MAX_FIELD_LINES + 1)),
            Err(HeadError::Malformed("too many field lines"))
        );
        // The largest section allowed, all one-byte lines.
        assert_eq!(
            decode_request(&section(&[0xC0 | 31; 8 * 1024 - 2])),
            Err(HeadError::Malformed("too many field lines"))
        );
        // An undecodable section past the cap is still undecodable: a connection error.
        let mut block = padded(MAX_FIELD_LINES + 1);
        block.push(0x80);
        assert_eq!(decode_request(&block), Err(HeadError::Decompression));
    }

    #[test]
    fn prefixed_integers_of_up_to_62_bits_are_read() {
        let read = |bytes: &[u8], prefix| {
            let mut pos = 0;
            let v = prefixed_int(bytes, &mut pos, prefix);
            v.map(|v| (v, pos))
        };
        // RFC 7541 C.1: 10 in a 5-bit prefix, 1337 in a 5-bit prefix, 42 in 8 bits.
        assert_eq!(read(&[0x0a], 5), Some((10, 1)));
        assert_eq!(read(&[0x1f, 0x9a, 0x0a], 5), Some((1337, 3)));
        assert_eq!(read(&[0x2a], 8), Some((42, 1)));
        // The prefix's own maximum needs a zero continuation byte.
        assert_eq!(read(&[0x3f, 0x00], 6), Some((63, 2)));
        // Exactly 62 bits: 63 in the prefix, 2^62 - 64 in nine continuation bytes.
        let mut max = vec![0x3f];
        let mut rest = MAX_PREFIXED_INT - 63;
        while rest >= 0x80 {
            max.push(rest as u8 | 0x80);
            rest >>= 7;
        }
        max.push(rest as u8);
        assert_eq!(max.len(), 10);
        assert_eq!(read(&max, 6), Some((MAX_PREFIXED_INT, 10)));
        // One more is 2^62: refused.
        let last = max.len() - 1;
        max[last] += 1;
        assert_eq!(read(&max, 6), None);
        // Ten continuation bytes, even of zero bits, are refused.
        let mut padded = vec![0x3f];
        padded.extend_from_slice(&[0x80; 9]);
        padded.push(0x00);
        assert_eq!(read(&padded, 6), None);
        // Nine are fine.
        let mut nine = vec![0x3f];
        nine.extend_from_slice(&[0x80; 8]);
        nine.push(0x00);
        assert_eq!(read(&nine, 6), Some((63, 10)));
        // Cut short: no first byte, or a continuation bit on the last byte.
        assert_eq!(read(&[], 6), None);
        assert_eq!(read(&[0x3f], 6), None);
        assert_eq!(read(&[0x3f, 0x80, 0x80], 6), None);
    }

    #[test]
    fn cut_strings_and_integers_are_undecodable() {
        // Three lines: an indexed one (:method GET), one with a name reference and a
        // literal value (:method GET again), one with a literal name whose length takes
        // a continuation byte (11 = 7 + 4) and a literal value.
        let mut lines = vec![0xC0 | 17, 0x50 | 15, 0x00, 0x03];
        lines.extend_from_slice(b"GET");
        lines.extend_from_slice(&[0x27, 0x04]);
        lines.extend_from_slice(b"x-long-name");
        lines.push(0x0a);
        lines.extend_from_slice(b"some value");
        let full = section(&lines);
        assert_eq!(field_lines(&full), Some(3));
        assert_eq!(Decoder::decode(&full).unwrap().len(), 2);
        // Cut anywhere: whole lines are a shorter section, anything else is undecodable.
        for cut in 0..full.len() {
            let expected = match cut {
                2 => Some(0),
                3 => Some(1),
                9 => Some(2),
                _ => None,
            };
            assert_eq!(field_lines(&full[..cut]), expected, "cut at {cut}");
        }
        // A literal name whose length runs past the section, and a value that does.
        assert_eq!(
            walk(&section(&[0x25, b'a', b'b'])),
            Err(HeadError::Decompression)
        );
        assert_eq!(
            walk(&section(&[0x51, 0x7f, 0xff, 0xff, 0x7f, b'/'])),
            Err(HeadError::Decompression)
        );
        // A string length of 62 bits, far past the section.
        let mut huge = vec![0x27];
        huge.extend_from_slice(&[0xff; 8]);
        huge.push(0x3e);
        assert_eq!(walk(&section(&huge)), Err(HeadError::Decompression));
        // A static index past the table.
        assert_eq!(
            walk(&section(&[0xC0 | 0x3f, 0x24])),
            Err(HeadError::Decompression)
        );
        assert_eq!(walk(&section(&[0xC0 | 0x3f, 0x23])), Ok(()));
    }

    #[test]
    fn dynamic_table_references_are_undecodable() {
        for line in [
            // Indexed field line, dynamic (T = 0).
            &[0x80][..],
            // Literal with name reference, dynamic (T = 0).
            &[0x40, 0x01, b'x'],
            // Indexed field line with post-base index.
            &[0x10],
            // Literal with post-base name reference.
            &[0x00, 0x01, b'x'],
        ] {
            assert_eq!(
                walk(&section(line)),
                Err(HeadError::Decompression),
                "{line:?}"
            );
        }
        // A Required Insert Count other than 0.
        assert_eq!(walk(&[0x01, 0x00]), Err(HeadError::Decompression));
        assert_eq!(walk(&[0xff, 0x00, 0x00]), Err(HeadError::Decompression));
        // A negative Delta Base is only a Base no line refers to.
        assert_eq!(walk(&[0x00, 0x80, 0xd1]), Ok(()));
    }

    proptest! {
        /// Whatever `request_block` encodes (static references with and without their
        /// value, literal names, Huffman or not), the walker accepts with one line per
        /// field and the decoder decodes to the same fields.
        #[test]
        fn the_walker_accepts_what_the_encoder_writes(
            fields in proptest::collection::vec(
                (
                    prop_oneof![
                        proptest::sample::select(vec![
                            ":method", ":path", ":authority", ":scheme", ":protocol",
                            ":status", "origin", "user-agent", "accept-encoding",
                            "accept-language", "content-type",
                        ])
                        .prop_map(str::to_string),
                        "[a-z0-9-]{1,40}",
                    ],
                    prop_oneof![
                        proptest::sample::select(vec![
                            "CONNECT", "GET", "/", "https", "200", "404",
                            "gzip, deflate, br",
                        ])
                        .prop_map(str::to_string),
                        "[ -~]{0,300}",
                    ],
                ),
                0..=MAX_FIELD_LINES,
            )
        ) {
            let pairs: Vec<(&str, &str)> =
                fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let block = request_block(&pairs);
            prop_assert_eq!(field_lines(&block), Some(fields.len()));
            prop_assert_eq!(walk(&block), Ok(()));
            let decoded = decode_fields(&block).expect("the decoder agrees");
            let mut expected = std::collections::HashMap::new();
            for (n, v) in &fields {
                expected.insert(n.clone(), v.clone());
            }
            prop_assert_eq!(decoded, expected);
        }

        /// Any bytes at all: the walker and then the decoder never panic, and what the
        /// walker refuses is never handed to the decoder.
        #[test]
        fn arbitrary_sections_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            let mut block = vec![0x00, 0x00];
            block.extend_from_slice(&bytes);
            let _ = decode_request(&block);
            let _ = decode_request(&bytes);
        }
    }

    #[test]
    fn responses_carry_the_status_and_the_draft() {
        let f = response_frame(200, true);
        let mut data: &[u8] = &f;
        let mut r = frame::FrameReader::default();
        r.next(&mut data);
        let Some(frame::Piece::Payload { data: block, .. }) = r.next(&mut data) else {
            panic!("payload");
        };
        assert_eq!(decode_status(block), Some(200));
        let fields = Decoder::decode(block).unwrap();
        assert_eq!(
            fields
                .get("sec-webtransport-http3-draft")
                .map(String::as_str),
            Some("draft02")
        );
        let f = response_frame(404, true);
        let mut data: &[u8] = &f;
        let mut r = frame::FrameReader::default();
        r.next(&mut data);
        let Some(frame::Piece::Payload { data: block, .. }) = r.next(&mut data) else {
            panic!("payload");
        };
        assert_eq!(decode_status(block), Some(404));
        assert!(!Decoder::decode(block)
            .unwrap()
            .contains_key("sec-webtransport-http3-draft"));
    }
}
