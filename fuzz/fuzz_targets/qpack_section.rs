//! A request's QPACK field section, as the peer sent it in a HEADERS frame: the walk
//! that checks its shape and the decoder behind it never panic, whatever the bytes
//! (their integers included), and they agree: a section the walk finds undecodable
//! is undecodable to `decode_request` too, and a request that decodes, encoded again,
//! decodes to the same head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mc_service::h3::qpack::{self, HeadError};

fuzz_target!(|data: &[u8]| {
    let walked = qpack::walk(data);
    let decoded = qpack::decode_request(data);
    if walked == Err(HeadError::Decompression) {
        assert_eq!(decoded, Err(HeadError::Decompression));
    }
    let Ok(head) = decoded else {
        return;
    };
    let mut fields = vec![(":method", head.method.as_str())];
    for (name, value) in [
        (":protocol", &head.protocol),
        (":scheme", &head.scheme),
        (":authority", &head.authority),
        ("origin", &head.origin),
    ] {
        if let Some(v) = value {
            fields.push((name, v.as_str()));
        }
    }
    if !head.path.is_empty() {
        fields.push((":path", head.path.as_str()));
    }
    let again = qpack::request_block(&fields);
    assert_eq!(qpack::decode_request(&again), Ok(head));
});
