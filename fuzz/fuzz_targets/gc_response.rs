//! The HTTP/1.1 client's incremental response parser (`http1::ResponseParser`, used for
//! GC answers and JWKS fetches; RFC 9112 §6.3 framing: Content-Length, chunked,
//! until-close) on arbitrary bytes in arbitrary chunks, ending with `handle_eof`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mc_service::http1::ResponseParser;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(*first % 64) + 1;
    let mut p = ResponseParser::new();
    let mut done = false;
    for piece in rest.chunks(chunk) {
        match p.handle_data(piece) {
            Ok(Some(resp)) => {
                let _ = resp.header("content-length");
                done = true;
                break;
            }
            Ok(None) => {}
            Err(_) => {
                done = true;
                break;
            }
        }
    }
    if !done {
        let _ = p.handle_eof();
    }
    // The whole input in one piece must not panic either.
    let mut q = ResponseParser::new();
    if let Ok(None) = q.handle_data(rest) {
        if let Ok(resp) = q.handle_eof() {
            let _ = resp.header("content-type");
        }
    }
});
