//! SETTINGS (RFC 9114 §7.2.4): the frame this server sends on its control stream, and
//! the peer's, parsed with limits.

use super::{code, frame, varint, ConnError};

pub const QPACK_MAX_TABLE_CAPACITY: u64 = 0x01;
pub const MAX_FIELD_SECTION_SIZE: u64 = 0x06;
pub const QPACK_BLOCKED_STREAMS: u64 = 0x07;
/// RFC 9220 §3: extended CONNECT.
pub const ENABLE_CONNECT_PROTOCOL: u64 = 0x08;
/// RFC 9297 §2.1.1.
pub const H3_DATAGRAM: u64 = 0x33;
/// The pre-RFC identifier of H3_DATAGRAM, still sent by Chromium.
pub const H3_DATAGRAM_DRAFT04: u64 = 0xff_d277;
/// draft-ietf-webtrans-http3-02 §3.1: what Chromium requires to open a session.
pub const ENABLE_WEBTRANSPORT: u64 = 0x2b60_3742;
/// The draft-02 session limit; and the identifier later drafts use.
pub const WEBTRANSPORT_MAX_SESSIONS_DRAFT02: u64 = 0x2b60_3743;
pub const WEBTRANSPORT_MAX_SESSIONS: u64 = 0xc671_706a;

/// Largest SETTINGS payload accepted from a peer. A handful of settings plus grease
/// take well under 100 bytes.
pub const MAX_PEER_SETTINGS_BYTES: usize = 1024;

/// Our SETTINGS frame: no dynamic QPACK table (so no encoder or decoder stream is
/// needed, RFC 9204 §4.2), our header-section limit, extended CONNECT, datagrams and
/// one WebTransport session per connection, plus one reserved identifier to exercise
/// the peer's handling of unknown settings (RFC 9114 §7.2.4.1).
pub fn frame(max_field_section: u64, grease: u64) -> Vec<u8> {
    let entries = [
        (MAX_FIELD_SECTION_SIZE, max_field_section),
        (ENABLE_CONNECT_PROTOCOL, 1),
        (H3_DATAGRAM, 1),
        (H3_DATAGRAM_DRAFT04, 1),
        (ENABLE_WEBTRANSPORT, 1),
        (WEBTRANSPORT_MAX_SESSIONS_DRAFT02, 1),
        (WEBTRANSPORT_MAX_SESSIONS, 1),
        (0x1f * (grease % 1024) + 0x21, 0),
    ];
    let mut payload = Vec::with_capacity(64);
    for (id, value) in entries {
        varint::put(&mut payload, id);
        varint::put(&mut payload, value);
    }
    let mut out = Vec::with_capacity(payload.len() + 4);
    frame::put_header(&mut out, frame::SETTINGS, payload.len() as u64);
    out.extend_from_slice(&payload);
    out
}

/// What the peer told us.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerSettings {
    /// HTTP datagrams may be sent to the peer (RFC 9297 §2.1.1).
    pub datagrams: bool,
    pub webtransport: bool,
    pub extended_connect: bool,
    pub max_field_section: Option<u64>,
}

/// Parse a SETTINGS payload.
pub fn parse(mut payload: &[u8]) -> Result<PeerSettings, ConnError> {
    let bad = |reason| ConnError::new(code::H3_SETTINGS_ERROR, reason);
    let mut seen: Vec<u64> = Vec::new();
    let mut out = PeerSettings::default();
    while !payload.is_empty() {
        let id = varint::take(&mut payload).ok_or(bad("truncated setting identifier"))?;
        let value = varint::take(&mut payload).ok_or(bad("truncated setting value"))?;
        // HTTP/2 settings without an HTTP/3 meaning (RFC 9114 §7.2.4.1).
        if matches!(id, 0x02..=0x05) {
            return Err(bad("HTTP/2 setting in an HTTP/3 SETTINGS frame"));
        }
        seen.push(id);
        match id {
            H3_DATAGRAM | H3_DATAGRAM_DRAFT04 => out.datagrams |= value == 1,
            ENABLE_WEBTRANSPORT => out.webtransport = value == 1,
            ENABLE_CONNECT_PROTOCOL => out.extended_connect = value == 1,
            MAX_FIELD_SECTION_SIZE => out.max_field_section = Some(value),
            _ => {}
        }
    }
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad("duplicate setting identifier"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h3::frame::{FrameReader, Piece};

    #[test]
    fn our_frame_parses_back() {
        let f = frame(8192, 3);
        let mut data: &[u8] = &f;
        let mut r = FrameReader::default();
        assert!(matches!(
            r.next(&mut data),
            Some(Piece::Start {
                ty: frame::SETTINGS,
                ..
            })
        ));
        let Some(Piece::Payload {
            data: payload,
            end: true,
            ..
        }) = r.next(&mut data)
        else {
            panic!("one payload piece");
        };
        let s = parse(payload).unwrap();
        assert!(s.datagrams && s.webtransport && s.extended_connect);
        assert_eq!(s.max_field_section, Some(8192));
    }

    #[test]
    fn duplicates_reserved_and_truncated_settings_are_errors() {
        let mut dup = Vec::new();
        for _ in 0..2 {
            varint::put(&mut dup, H3_DATAGRAM);
            varint::put(&mut dup, 1);
        }
        assert_eq!(parse(&dup).unwrap_err().code, code::H3_SETTINGS_ERROR);
        let mut h2 = Vec::new();
        varint::put(&mut h2, 0x04);
        varint::put(&mut h2, 1);
        assert_eq!(parse(&h2).unwrap_err().code, code::H3_SETTINGS_ERROR);
        assert_eq!(parse(&[0x33]).unwrap_err().code, code::H3_SETTINGS_ERROR);
        assert_eq!(parse(&[]), Ok(PeerSettings::default()));
    }
}
