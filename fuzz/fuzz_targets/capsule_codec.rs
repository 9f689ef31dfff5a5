//! The CONNECT stream's capsule decoder: any bytes, split anywhere, decode to the same
//! capsules (or the same first error) as in one piece, without panicking; what the
//! encoder writes decodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mc_service::h3::capsule::{self, Capsule, CapsuleDecoder, CapsuleError};

fn decode(pieces: &[&[u8]]) -> (Vec<Capsule>, Option<CapsuleError>) {
    let mut d = CapsuleDecoder::default();
    let mut out = Vec::new();
    for piece in pieces {
        let mut data = *piece;
        loop {
            match d.feed(&mut data) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
        assert!(data.is_empty(), "the decoder stops only when its input is used up");
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let whole = decode(&[rest]);
    // The same bytes cut into pieces of `split` bytes (at least one).
    let n = usize::from(split).max(1);
    let pieces: Vec<&[u8]> = rest.chunks(n).collect();
    assert_eq!(decode(&pieces), whole);
    // Round trip: a close capsule made from the input decodes to itself.
    let code = u32::from_be_bytes([
        rest.first().copied().unwrap_or(0),
        rest.get(1).copied().unwrap_or(0),
        rest.get(2).copied().unwrap_or(0),
        rest.get(3).copied().unwrap_or(0),
    ]);
    let reason = rest.get(4..).unwrap_or(&[]);
    let mut wire = Vec::new();
    capsule::put_close(&mut wire, code, reason);
    let (caps, err) = decode(&[&wire]);
    assert!(err.is_none());
    assert_eq!(
        caps,
        vec![Capsule::Close {
            code,
            reason: reason[..reason.len().min(capsule::MAX_REASON)].to_vec()
        }]
    );
});
