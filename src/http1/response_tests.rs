//! Response parser tests: framing, interim responses, truncation, garbage, limits, and
//! a seeded property test (any split parses alike; mutations never panic).

use super::*;

const HEAD: usize = 16 * 1024;
const BODY: usize = 64 * 1024;

/// Everything in one piece, then the close if the data did not complete it.
fn parse_all(raw: &[u8]) -> Result<Option<Response>, HttpError> {
    ResponseParser::new().handle_data(raw)
}

fn parse_to_eof(raw: &[u8], limits: Limits) -> Result<Response, HttpError> {
    let mut p = ResponseParser::with_limits(limits);
    match p.handle_data(raw)? {
        Some(r) => Ok(r),
        None => p.handle_eof(),
    }
}

#[test]
fn content_length_body_byte_by_byte() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
    let mut p = ResponseParser::new();
    for (i, b) in raw.iter().enumerate() {
        let r = p.handle_data(&[*b]).unwrap();
        assert_eq!(r.is_some(), i == raw.len() - 1);
        if let Some(r) = r {
            assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
            assert_eq!(r.header("x-a"), Some("b"));
            assert_eq!(r.header("X-A"), Some("b"));
        }
    }
}

#[test]
fn chunked_and_close_delimited_and_interim() {
    let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n";
    let r = parse_all(raw).unwrap().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (201, &b"abcde"[..]));
    assert_eq!(parse_all(&raw[..raw.len() - 2]).unwrap(), None);

    let mut p = ResponseParser::new();
    assert_eq!(
        p.handle_data(b"HTTP/1.0 500 Oops\r\n\r\nbody").unwrap(),
        None
    );
    let r = p.handle_eof().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (500, &b"body"[..]));

    for empty in [
        &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    ] {
        let r = parse_all(empty).unwrap().unwrap();
        assert!(r.body.is_empty());
    }
}

#[test]
fn a_finished_parser_takes_nothing_more() {
    let mut p = ResponseParser::new();
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA";
    assert!(p.handle_data(raw).unwrap().is_some());
    assert!(matches!(
        p.handle_data(b"more"),
        Err(HttpError::Malformed(_))
    ));
    assert!(p.handle_eof().is_err());
    let mut p = ResponseParser::new();
    assert!(p.handle_data(b"garbage\r\n\r\n").is_err());
    assert!(p.handle_data(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    assert!(p.handle_eof().is_err());
}

#[test]
fn truncated_responses() {
    for raw in [
        &b""[..],
        b"HTTP/1.1 200",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: v\r\n",
    ] {
        let mut p = ResponseParser::new();
        assert_eq!(p.handle_data(raw).unwrap(), None, "{raw:?}");
        assert_eq!(p.handle_eof().unwrap_err(), HttpError::Truncated, "{raw:?}");
    }
}

#[test]
fn garbage_is_malformed() {
    for raw in [
        &b"garbage\r\n\r\n"[..],
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert!(
            matches!(parse_all(raw), Err(HttpError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(matches!(parse_all(&many), Err(HttpError::Malformed(_))));
    let mut long_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
    long_size.resize(long_size.len() + MAX_CHUNK_LINE + 1, b'x');
    assert!(matches!(
        parse_all(&long_size),
        Err(HttpError::Malformed(_))
    ));
}

#[test]
fn default_limits() {
    let big = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", BODY + 1);
    assert_eq!(
        parse_all(big.as_bytes()).unwrap_err(),
        HttpError::BodyTooLarge(BODY)
    );
    let mut long_head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    long_head.resize(HEAD + 10, b'a');
    assert_eq!(
        parse_all(&long_head).unwrap_err(),
        HttpError::HeadTooLarge(HEAD)
    );
    // Interim responses count against the head limit.
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(HEAD / 25 + 1);
    assert_eq!(
        parse_all(&interim).unwrap_err(),
        HttpError::HeadTooLarge(HEAD)
    );
    // A close-delimited body streamed past the limit.
    let mut p = ResponseParser::new();
    p.handle_data(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
    let chunk = vec![b'a'; 16 * 1024];
    let mut result = Ok(None);
    for _ in 0..10 {
        result = p.handle_data(&chunk);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result.unwrap_err(), HttpError::BodyTooLarge(BODY));
    // A chunked body whose chunks add up past the limit.
    let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        raw.extend_from_slice(format!("{:x}\r\n", BODY / 2).as_bytes());
        raw.extend(std::iter::repeat_n(b'z', BODY / 2));
        raw.extend_from_slice(b"\r\n");
    }
    assert_eq!(parse_all(&raw).unwrap_err(), HttpError::BodyTooLarge(BODY));
    // Endless trailers.
    let mut trailers = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
    for _ in 0..=(HEAD / 8) {
        trailers.extend_from_slice(b"T: abc\r\n");
    }
    assert_eq!(
        parse_all(&trailers).unwrap_err(),
        HttpError::HeadTooLarge(HEAD)
    );
}

#[test]
fn limits_are_per_parser() {
    let small = Limits {
        max_head_bytes: 64,
        max_body_bytes: 4,
    };
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd";
    assert_eq!(parse_to_eof(ok, small).unwrap().body, b"abcd");
    let over = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde";
    assert_eq!(
        parse_to_eof(over, small).unwrap_err(),
        HttpError::BodyTooLarge(4)
    );
    let close = b"HTTP/1.1 200 OK\r\n\r\nabcde";
    assert_eq!(
        parse_to_eof(close, small).unwrap_err(),
        HttpError::BodyTooLarge(4)
    );
    let head = b"HTTP/1.1 200 OK\r\nX-Long: 0123456789012345678901234567890123456789\r\n\r\n";
    assert_eq!(
        parse_to_eof(head, small).unwrap_err(),
        HttpError::HeadTooLarge(64)
    );
    let large = Limits {
        max_head_bytes: 1024,
        max_body_bytes: 1024 * 1024,
    };
    let mut raw =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 1024 * 1024).into_bytes();
    raw.resize(raw.len() + 1024 * 1024, b'k');
    assert_eq!(parse_to_eof(&raw, large).unwrap().body.len(), 1024 * 1024);
}

/// Any split of a valid response parses to the same result; random bytes and random
/// mutations never panic and never exceed the limits.
#[test]
fn property_splits_and_mutations() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let samples: [&[u8]; 4] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"a\":true}x",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 NF\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
        b"HTTP/1.1 503 X\r\nConnection: close\r\n\r\nbusy",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;e=1\r\na\r\n10\r\n0123456789abcdef\r\n0\r\nX: y\r\nZ: w\r\n\r\n",
    ];
    let mut rng = StdRng::seed_from_u64(9);
    for raw in samples {
        let whole = parse_to_eof(raw, Limits::default());
        assert!(whole.is_ok(), "{whole:?}");
        for _ in 0..200 {
            let mut p = ResponseParser::new();
            let mut rest = raw;
            let mut got = None;
            while !rest.is_empty() && got.is_none() {
                let n = rng.random_range(1..=rest.len());
                got = p.handle_data(&rest[..n]).unwrap();
                rest = &rest[n..];
            }
            let got = got.map_or_else(|| p.handle_eof(), Ok);
            assert_eq!(got, whole);
        }
        for _ in 0..500 {
            let mut m = raw.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..m.len());
                m[i] = rng.random();
            }
            if let Ok(r) = parse_to_eof(&m, Limits::default()) {
                assert!(r.body.len() <= BODY);
            }
        }
    }
    for _ in 0..500 {
        let len = rng.random_range(0..2048);
        let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let mut p = ResponseParser::new();
        let _ = p.handle_data(&junk);
        let _ = p.handle_eof();
    }
}
