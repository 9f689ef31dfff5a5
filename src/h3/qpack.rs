//! Header sections (RFC 9204) for the only requests this server answers: decoding a
//! request's field section and encoding a response's. The server advertises a zero-size
//! dynamic table, so every field section refers to the static table only; the QPACK
//! field-line coding itself is the `wtransport-proto` crate's.

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

/// Decode a request's field section (the payload of its HEADERS frame).
pub fn decode_request(block: &[u8]) -> Result<RequestHead, HeadError> {
    // Required Insert Count must be 0: we advertised no dynamic table.
    if block.first() != Some(&0) {
        return Err(HeadError::Decompression);
    }
    let fields = decode_fields(block).ok_or(HeadError::Decompression)?;
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
    decode_fields(block)?.get(":status")?.parse().ok()
}

/// The fields of a section, or none if it does not decode. wtransport-proto's decoder
/// shifts each continuation byte of a prefixed integer by 7 more bits without bound: a
/// peer's integer of ten or more continuation bytes overflows the shift, which panics
/// where overflow checks are on (debug and fuzzing builds; a release build wraps it and
/// the section fails to decode or decodes to garbage a later check refuses). That panic
/// is a decoding failure like any other.
fn decode_fields(block: &[u8]) -> Option<std::collections::HashMap<String, String>> {
    std::panic::catch_unwind(|| Decoder::decode(block))
        .ok()?
        .ok()
}

#[cfg(test)]
mod tests {
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
