//! Codec tests: URLs, framing, truncation, garbage, limits, and a seeded property test.

use super::*;

fn parse_all(raw: &[u8]) -> Result<Option<HttpResponse>, HttpError> {
    ResponseParser::new().handle_data(raw)
}

#[test]
fn url_parsing_and_derivation() {
    let u = HttpUrl::parse("http://gc.svc:8080/api/v1/mc/register").unwrap();
    assert_eq!(
        (u.host(), u.port(), u.target()),
        ("gc.svc", 8080, "/api/v1/mc/register")
    );
    let hb = u.replace_last_segment("register", "heartbeat").unwrap();
    assert_eq!(hb.as_str(), "http://gc.svc:8080/api/v1/mc/heartbeat");
    assert!(hb.replace_last_segment("register", "x").is_none());
    let v6 = HttpUrl::parse("http://[::1]/r?a=1").unwrap();
    assert_eq!((v6.host(), v6.port(), v6.target()), ("::1", 80, "/r?a=1"));
    let req = String::from_utf8(encode_post(&v6, b"{}")).unwrap();
    assert!(
        req.starts_with("POST /r?a=1 HTTP/1.1\r\nHost: [::1]\r\n"),
        "{req}"
    );
    assert!(req.contains("Content-Length: 2\r\n") && req.ends_with("\r\n\r\n{}"));
    assert_eq!(
        HttpUrl::parse("https://gc/register").unwrap_err(),
        HttpError::UnsupportedScheme("https".into())
    );
    assert!(matches!(
        HttpUrl::parse("gc:8080/x"),
        Err(HttpError::UnsupportedScheme(_))
    ));
    assert!(matches!(
        HttpUrl::parse("not a url"),
        Err(HttpError::InvalidUrl { .. })
    ));
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

    let r = parse_all(b"HTTP/1.1 204 No Content\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(r.body.is_empty());
}

#[test]
fn truncated_responses() {
    for raw in [
        &b""[..],
        b"HTTP/1.1 200",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    ] {
        let mut p = ResponseParser::new();
        assert_eq!(p.handle_data(raw).unwrap(), None);
        assert_eq!(p.handle_eof().unwrap_err(), HttpError::Truncated, "{raw:?}");
    }
    let mut p = ResponseParser::new();
    p.handle_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
        .unwrap();
    assert_eq!(p.handle_eof().unwrap_err(), HttpError::Truncated);
}

#[test]
fn garbage_and_limits() {
    for raw in [
        &b"garbage\r\n\r\n"[..],
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
    ] {
        assert!(
            matches!(parse_all(raw), Err(HttpError::Malformed(_))),
            "{raw:?}"
        );
    }
    let big = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY_BYTES + 1
    );
    assert_eq!(
        parse_all(big.as_bytes()).unwrap_err(),
        HttpError::BodyTooLarge
    );
    let mut long_head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    long_head.resize(MAX_HEADER_BYTES + 10, b'a');
    assert_eq!(
        parse_all(&long_head).unwrap_err(),
        HttpError::HeadersTooLarge
    );
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
    assert_eq!(result.unwrap_err(), HttpError::BodyTooLarge);
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(matches!(parse_all(&many), Err(HttpError::Malformed(_))));
}

/// Any split of a valid response parses to the same result; random bytes and random
/// mutations never panic and never exceed the limits.
#[test]
fn property_splits_and_mutations() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let samples: [&[u8]; 3] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"a\":true}x",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 NF\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
        b"HTTP/1.1 503 X\r\nConnection: close\r\n\r\nbusy",
    ];
    let mut rng = StdRng::seed_from_u64(9);
    for raw in samples {
        let whole = {
            let mut p = ResponseParser::new();
            p.handle_data(raw)
                .unwrap()
                .map_or_else(|| p.handle_eof(), Ok)
        };
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
            let mut p = ResponseParser::new();
            if let Ok(Some(r)) = p.handle_data(&m) {
                assert!(r.body.len() <= MAX_BODY_BYTES);
            } else if let Ok(r) = p.handle_eof() {
                assert!(r.body.len() <= MAX_BODY_BYTES);
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
