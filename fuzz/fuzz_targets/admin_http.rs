//! The admin HTTP/1.1 request-head parser (`/health`, `/ready`, `/metrics`) on
//! arbitrary bytes, whole and split into growing prefixes as a socket delivers them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mc_service::admin::http::parse_request;

fuzz_target!(|data: &[u8]| {
    let whole = parse_request(data);
    if let Ok(Some((req, head_len))) = &whole {
        assert!(*head_len <= data.len(), "head longer than the input");
        assert!(!req.path.contains('?'), "query left in the path");
    }
    // A reader retries on every read with a longer prefix: any prefix must be handled,
    // and a prefix that completes must agree with the whole buffer.
    let step = data.first().map_or(1, |b| usize::from(*b % 32) + 1);
    let mut end = 0;
    while end < data.len() {
        end = (end + step).min(data.len());
        if let Ok(Some((_, n))) = parse_request(&data[..end]) {
            if let Ok(Some((_, m))) = &whole {
                assert_eq!(n, *m, "prefix and whole disagree on the head length");
            }
            break;
        }
    }
});
