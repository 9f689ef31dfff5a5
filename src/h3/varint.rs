//! QUIC variable-length integers (RFC 9000 §16), the integer encoding of every HTTP/3
//! frame, stream type, setting and capsule header.

use bytes::BufMut;

/// The largest value a varint can carry: 2^62 − 1.
pub const MAX: u64 = (1 << 62) - 1;

/// Bytes needed to encode `v` (1, 2, 4 or 8). Values above [`MAX`] are not encodable.
pub const fn encoded_len(v: u64) -> usize {
    if v < 1 << 6 {
        1
    } else if v < 1 << 14 {
        2
    } else if v < 1 << 30 {
        4
    } else {
        8
    }
}

/// Append `v` (clamped to [`MAX`]) to `out`.
pub fn put(out: &mut impl BufMut, v: u64) {
    let v = v.min(MAX);
    match encoded_len(v) {
        1 => out.put_u8(v as u8),
        2 => out.put_u16(0x4000 | v as u16),
        4 => out.put_u32(0x8000_0000 | v as u32),
        _ => out.put_u64(0xc000_0000_0000_0000 | v),
    }
}

/// Decode one varint from the front of `data`: the value and the bytes it took, or
/// `None` when `data` ends before the varint does.
pub fn decode(data: &[u8]) -> Option<(u64, usize)> {
    let first = *data.first()?;
    let len = 1usize << (first >> 6);
    let bytes = data.get(..len)?;
    let v = bytes[1..]
        .iter()
        .fold(u64::from(first & 0x3f), |v, b| (v << 8) | u64::from(*b));
    Some((v, len))
}

/// Decode one varint and advance `data` past it.
pub fn take(data: &mut &[u8]) -> Option<u64> {
    let (v, n) = decode(data)?;
    *data = &data[n..];
    Some(v)
}

/// A varint arriving in pieces (a stream type or session id split across reads).
/// Holds at most 8 bytes.
#[derive(Debug, Default, Clone)]
pub struct VarintReader {
    buf: [u8; 8],
    len: u8,
}

impl VarintReader {
    /// Consume bytes from the front of `data` until the varint is complete.
    pub fn feed(&mut self, data: &mut &[u8]) -> Option<u64> {
        while !data.is_empty() {
            let need = if self.len == 0 {
                1
            } else {
                1usize << (self.buf[0] >> 6)
            };
            if usize::from(self.len) < need {
                self.buf[usize::from(self.len)] = data[0];
                self.len += 1;
                *data = &data[1..];
            }
            let need = 1usize << (self.buf[0] >> 6);
            if usize::from(self.len) == need {
                let v = decode(&self.buf[..need]).map(|(v, _)| v);
                self.len = 0;
                return v;
            }
        }
        None
    }

    /// Some bytes of a varint have arrived but not all of them.
    pub fn is_partial(&self) -> bool {
        self.len > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_every_length_boundary() {
        for v in [0, 63, 64, 16_383, 16_384, (1 << 30) - 1, 1 << 30, MAX] {
            let mut out = Vec::new();
            put(&mut out, v);
            assert_eq!(out.len(), encoded_len(v));
            assert_eq!(decode(&out), Some((v, out.len())));
            for cut in 0..out.len() {
                assert_eq!(decode(&out[..cut]), None, "{v} cut at {cut}");
            }
        }
    }

    #[test]
    fn reader_takes_bytes_one_at_a_time() {
        let mut out = Vec::new();
        put(&mut out, 0x2b60_3742);
        put(&mut out, 7);
        let mut r = VarintReader::default();
        let mut got = Vec::new();
        for b in &out {
            let mut one: &[u8] = std::slice::from_ref(b);
            if let Some(v) = r.feed(&mut one) {
                got.push(v);
            }
            assert!(one.is_empty());
        }
        assert_eq!(got, [0x2b60_3742, 7]);
        assert!(!r.is_partial());
    }

    #[test]
    fn reader_stops_after_one_value() {
        let data = [0x41, 0x00, 0x05];
        let mut rest: &[u8] = &data;
        let mut r = VarintReader::default();
        assert_eq!(r.feed(&mut rest), Some(0x100));
        assert_eq!(rest, &[0x05]);
    }
}
