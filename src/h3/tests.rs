//! The HTTP/3 and WebTransport layer against an in-memory client that writes raw bytes
//! on its streams (`crate::testing::Pair`), with the real connection and applications
//! on the server side.

use std::time::Duration;

use bytes::Bytes;
use quinn_proto::{ConnectionError, Dir, Event, ReadError, StreamId, VarInt};

use super::capsule::{self, Capsule, CapsuleDecoder};
use super::conn::MAX_REFUSED_REQUESTS;
use super::frame::{self, FrameReader, Piece};
use super::{code, qpack, settings, varint};
use crate::quic::QuicArgs;
use crate::testing::Pair;

fn echo_args() -> QuicArgs {
    QuicArgs {
        enable_echo: true,
        ..QuicArgs::default()
    }
}

/// A handshaken pair whose client sent its control stream and SETTINGS.
fn pair(args: QuicArgs) -> Pair {
    let mut p = Pair::new(args);
    p.drive();
    let control = p.client.streams().open(Dir::Uni).expect("uni stream");
    let mut bytes = vec![0x00];
    let mut payload = Vec::new();
    for (id, v) in [
        (settings::H3_DATAGRAM, 1),
        (settings::ENABLE_WEBTRANSPORT, 1),
        (settings::ENABLE_CONNECT_PROTOCOL, 1),
    ] {
        varint::put(&mut payload, id);
        varint::put(&mut payload, v);
    }
    frame::put_header(&mut bytes, frame::SETTINGS, payload.len() as u64);
    bytes.extend_from_slice(&payload);
    write(&mut p, control, &bytes);
    p.drive();
    p
}

fn write(p: &mut Pair, id: StreamId, bytes: &[u8]) {
    let n = p.client.send_stream(id).write(bytes).expect("client write");
    assert_eq!(n, bytes.len(), "client flow control");
}

fn headers_frame(fields: &[(&str, &str)]) -> Vec<u8> {
    let block = qpack::request_block(fields);
    let mut out = Vec::new();
    frame::put_header(&mut out, frame::HEADERS, block.len() as u64);
    out.extend_from_slice(&block);
    out
}

fn connect_frame(path: &str) -> Vec<u8> {
    headers_frame(&[
        (":method", "CONNECT"),
        (":protocol", "webtransport"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", path),
    ])
}

/// Open a request stream and send `bytes` on it.
fn request(p: &mut Pair, bytes: &[u8]) -> StreamId {
    let id = p.client.streams().open(Dir::Bi).expect("bidi stream");
    write(p, id, bytes);
    p.drive();
    id
}

/// What the client has read from `id` so far: bytes, and how the stream ended.
#[derive(Debug, Default)]
struct Got {
    bytes: Vec<u8>,
    fin: bool,
    reset: Option<u64>,
}

fn read(p: &mut Pair, id: StreamId) -> Got {
    let mut got = Got::default();
    let mut recv = p.client.recv_stream(id);
    let Ok(mut chunks) = recv.read(true) else {
        return got;
    };
    loop {
        match chunks.next(usize::MAX) {
            Ok(Some(c)) => got.bytes.extend_from_slice(&c.bytes),
            Ok(None) => {
                got.fin = true;
                break;
            }
            Err(ReadError::Reset(code)) => {
                got.reset = Some(code.into_inner());
                break;
            }
            Err(ReadError::Blocked) => break,
        }
    }
    let _ = chunks.finalize();
    got
}

/// The status of the response HEADERS at the front of `bytes`, and what follows it.
fn status(bytes: &[u8]) -> (Option<u16>, Vec<u8>) {
    let mut data = bytes;
    let mut r = FrameReader::default();
    let mut block = Vec::new();
    while let Some(piece) = r.next(&mut data) {
        if let Piece::Payload {
            ty: frame::HEADERS,
            data: d,
            end,
        } = piece
        {
            block.extend_from_slice(d);
            if end {
                return (qpack::decode_status(&block), data.to_vec());
            }
        }
    }
    (None, Vec::new())
}

/// Capsules carried by the DATA frames in `bytes`.
fn capsules(bytes: &[u8]) -> Vec<Capsule> {
    let mut data = bytes;
    let mut r = FrameReader::default();
    let mut dec = CapsuleDecoder::default();
    let mut out = Vec::new();
    while let Some(piece) = r.next(&mut data) {
        if let Piece::Payload {
            ty: frame::DATA,
            data: mut d,
            ..
        } = piece
        {
            while let Ok(Some(c)) = dec.feed(&mut d) {
                out.push(c);
            }
        }
    }
    out
}

/// The capsules of a session closed with 0x100 (protocol rule 5).
fn protocol_violation_close() -> Vec<Capsule> {
    vec![Capsule::Close {
        code: 0x100,
        reason: b"protocol_violation".to_vec(),
    }]
}

/// How the client saw the connection end, if it has.
fn client_lost(p: &mut Pair) -> Option<ConnectionError> {
    let mut lost = None;
    while let Some(ev) = p.client.poll() {
        if let Event::ConnectionLost { reason } = ev {
            lost = Some(reason);
        }
    }
    lost
}

fn app_code(e: &Option<ConnectionError>) -> Option<u64> {
    match e {
        Some(ConnectionError::ApplicationClosed(c)) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

/// Open a WebTransport bidi stream of `session` and write `data`.
fn wt_stream(p: &mut Pair, session: StreamId, data: &[u8]) -> StreamId {
    let mut bytes = Vec::new();
    varint::put(&mut bytes, frame::WEBTRANSPORT_STREAM);
    varint::put(&mut bytes, u64::from(session));
    bytes.extend_from_slice(data);
    request(p, &bytes)
}

fn echo_session(p: &mut Pair) -> StreamId {
    let s = request(p, &connect_frame("/echo"));
    let (st, _) = status(&read(p, s).bytes);
    assert_eq!(st, Some(200));
    s
}

#[test]
fn an_echo_session_echoes_streams_and_datagrams() {
    let mut p = pair(echo_args());
    let s = echo_session(&mut p);
    let w = wt_stream(&mut p, s, b"hello");
    let got = read(&mut p, w);
    assert_eq!(got.bytes, b"hello");
    p.client.send_stream(w).finish().unwrap();
    p.drive();
    assert!(
        read(&mut p, w).fin,
        "the echo finishes when the client does"
    );
    let mut d = Vec::new();
    varint::put(&mut d, s.index());
    d.extend_from_slice(b"dgram");
    p.client
        .datagrams()
        .send(Bytes::from(d.clone()), true)
        .unwrap();
    p.drive();
    assert_eq!(p.client.datagrams().recv().as_deref(), Some(&d[..]));
}

#[test]
fn the_session_id_is_the_connect_stream_id() {
    let mut p = pair(echo_args());
    let first = request(&mut p, &connect_frame("/nope"));
    let got = read(&mut p, first);
    assert_eq!(status(&got.bytes).0, Some(404));
    assert!(got.fin);
    let s = request(&mut p, &connect_frame("/echo"));
    assert_eq!(u64::from(s), 4);
    assert_eq!(status(&read(&mut p, s).bytes).0, Some(200));
    let w = wt_stream(&mut p, s, b"on four");
    assert_eq!(read(&mut p, w).bytes, b"on four");
    // A datagram names the session by its quarter stream id: 1.
    p.client
        .datagrams()
        .send(Bytes::from_static(&[0x01, b'x']), true)
        .unwrap();
    p.drive();
    assert_eq!(
        p.client.datagrams().recv().as_deref(),
        Some(&[0x01, b'x'][..])
    );
    // The client's close on stream 4 ends the session and the connection.
    let mut close = Vec::new();
    let mut cap = Vec::new();
    capsule::put_close(&mut cap, 5, b"done");
    frame::put_header(&mut close, frame::DATA, cap.len() as u64);
    close.extend_from_slice(&cap);
    write(&mut p, s, &close);
    p.drive();
    // The server finishes its side; the connection closes once that is acknowledged.
    assert!(read(&mut p, s).fin);
    p.advance(Duration::from_millis(1100));
    assert_eq!(app_code(&client_lost(&mut p)), Some(code::H3_NO_ERROR));
}

#[test]
fn server_closes_deliver_their_code_before_the_connection_closes() {
    let mut p = pair(QuicArgs {
        join_timeout_ms: 1000,
        ..QuicArgs::default()
    });
    let s = request(&mut p, &connect_frame("/"));
    let (st, _) = status(&read(&mut p, s).bytes);
    assert_eq!(st, Some(200));
    // No signaling stream: the join timeout closes the session with 0x100.
    p.advance(Duration::from_millis(1100));
    p.advance(Duration::from_millis(600));
    let got = read(&mut p, s);
    assert_eq!(capsules(&got.bytes), protocol_violation_close());
    assert!(got.fin, "FIN follows the capsule");
    p.advance(Duration::from_millis(1100));
    assert_eq!(app_code(&client_lost(&mut p)), Some(code::H3_NO_ERROR));
}

#[test]
fn a_client_that_answers_our_close_gets_time_to_close_the_connection_itself() {
    let mut p = pair(QuicArgs {
        join_timeout_ms: 1000,
        ..QuicArgs::default()
    });
    let s = request(&mut p, &connect_frame("/"));
    assert_eq!(status(&read(&mut p, s).bytes).0, Some(200));
    p.advance(Duration::from_millis(1100));
    p.advance(Duration::from_millis(600));
    assert!(read(&mut p, s).fin, "our close capsule and FIN arrived");
    // The client answers with its own FIN, as a browser does before it hands the close
    // to the page: the connection stays up so the browser can close it first...
    p.client.send_stream(s).finish().unwrap();
    p.drive();
    p.advance(Duration::from_millis(100));
    assert_eq!(client_lost(&mut p), None, "no CONNECTION_CLOSE right away");
    assert!(!p.server_closed());
    // ...and only a client that never does is closed by us, shortly after.
    p.advance(Duration::from_millis(300));
    assert_eq!(app_code(&client_lost(&mut p)), Some(code::H3_NO_ERROR));
}

#[test]
fn streams_of_unknown_sessions_are_refused_and_bad_ids_close_the_connection() {
    let mut p = pair(echo_args());
    let s = echo_session(&mut p);
    let stray = wt_stream(&mut p, StreamId::from(VarInt::from_u32(4000)), b"x");
    let got = read(&mut p, stray);
    assert_eq!(got.reset, Some(code::WEBTRANSPORT_BUFFERED_STREAM_REJECTED));
    assert!(got.bytes.is_empty(), "nothing echoed");
    // A datagram for another session is dropped; the session still works.
    p.client
        .datagrams()
        .send(Bytes::from_static(&[0x40, 0x64, b'x']), true)
        .unwrap();
    let w = wt_stream(&mut p, s, b"still here");
    assert_eq!(read(&mut p, w).bytes, b"still here");
    assert!(p.client.datagrams().recv().is_none());
    // Session id 3 is not a client-initiated bidi stream.
    wt_stream(&mut p, StreamId::from(VarInt::from_u32(3)), b"x");
    assert_eq!(app_code(&client_lost(&mut p)), Some(code::H3_ID_ERROR));
}

/// A stream that names a request as its session while the request's HEADERS are still
/// arriving waits; once the request turns out to be no CONNECT (answered here) or a
/// malformed one, the stream is refused, not left unread.
#[test]
fn streams_naming_a_request_that_opens_no_session_are_refused() {
    let mut p = pair(echo_args());
    for fields in [
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", "/"),
        ][..],
        &[(":scheme", "https"), (":path", "/")][..],
    ] {
        let frame = headers_frame(fields);
        let (head, tail) = frame.split_at(frame.len() - 2);
        let req = request(&mut p, head);
        let waiting = wt_stream(&mut p, req, b"x");
        assert_eq!(read(&mut p, waiting).reset, None, "waits for the request");
        write(&mut p, req, tail);
        p.drive();
        let got = read(&mut p, waiting);
        assert_eq!(
            got.reset,
            Some(code::WEBTRANSPORT_BUFFERED_STREAM_REJECTED),
            "{fields:?}"
        );
    }
    // The connection is fine: a session still opens and echoes.
    let s = echo_session(&mut p);
    let w = wt_stream(&mut p, s, b"still here");
    assert_eq!(read(&mut p, w).bytes, b"still here");
}

/// A stream waiting for a request to become its session is refused as soon as the
/// request can no longer become one: reset, finished inside its HEADERS, refused for
/// an oversized section, or turned out to be a WebTransport stream itself. Otherwise it
/// would hold its stream slot and what it carries for the connection's life.
#[test]
fn streams_naming_a_request_that_ends_unfinished_are_refused() {
    let mut p = pair(echo_args());
    let partial = {
        let frame = connect_frame("/echo");
        frame[..frame.len() - 2].to_vec()
    };
    let mut oversized_type = Vec::new();
    varint::put(&mut oversized_type, frame::HEADERS);
    type End = fn(&mut Pair, StreamId);
    let cases: [(&str, Vec<u8>, End); 4] = [
        ("reset", partial.clone(), |p, req| {
            p.client
                .send_stream(req)
                .reset(VarInt::from_u32(0))
                .unwrap();
        }),
        ("finished inside its HEADERS", partial, |p, req| {
            p.client.send_stream(req).finish().unwrap();
        }),
        ("an oversized section", oversized_type, |p, req| {
            let mut len = Vec::new();
            varint::put(
                &mut len,
                u64::from(QuicArgs::default().max_field_section_bytes) + 1,
            );
            write(p, req, &len);
        }),
        // The first byte of the two-byte varint 0x41 (WEBTRANSPORT_STREAM), then the
        // second.
        ("a WebTransport stream", vec![0x40], |p, req| {
            write(p, req, &[0x41]);
        }),
    ];
    for (what, start, end) in cases {
        let req = request(&mut p, &start);
        let waiting = wt_stream(&mut p, req, b"x");
        assert_eq!(read(&mut p, waiting).reset, None, "{what}: waits");
        end(&mut p, req);
        p.drive();
        assert_eq!(
            read(&mut p, waiting).reset,
            Some(code::WEBTRANSPORT_BUFFERED_STREAM_REJECTED),
            "{what}"
        );
    }
    let (_, conn) = p.server.as_ref().expect("server connection");
    assert_eq!(conn.h3.stats().streams_rejected, 4);
    // The connection is fine: a session still opens and echoes.
    let s = echo_session(&mut p);
    let w = wt_stream(&mut p, s, b"still here");
    assert_eq!(read(&mut p, w).bytes, b"still here");
}

/// Header sections that never complete, on many request streams at once: together they
/// hold at most one section's limit, the amount the connection's receive budget counts
/// for them. The stream whose bytes would pass it is refused with H3_EXCESSIVE_LOAD.
#[test]
fn header_sections_in_assembly_together_hold_at_most_one_section() {
    const STREAMS: usize = 8;
    let args = QuicArgs::default();
    let max = args.max_field_section_bytes as usize;
    let mut p = pair(args);
    let mut ids = Vec::new();
    for _ in 0..STREAMS {
        let mut bytes = Vec::new();
        frame::put_header(&mut bytes, frame::HEADERS, max as u64);
        bytes.extend_from_slice(&vec![0; max / 2]);
        ids.push(request(&mut p, &bytes));
    }
    let (_, conn) = p.server.as_ref().expect("server connection");
    let held = conn.h3.buffered_bytes();
    eprintln!(
        "{held} bytes held for {STREAMS} sections of {} bytes each",
        max / 2
    );
    assert!(
        held <= 2 * max,
        "{held} bytes held for {STREAMS} sections of {} bytes each",
        max / 2
    );
    let refused = ids
        .iter()
        .filter(|id| read(&mut p, **id).reset == Some(code::H3_EXCESSIVE_LOAD))
        .count();
    assert_eq!(refused, STREAMS - 2, "two halves fit in one section");
    assert!(!p.server_closed());
}

#[test]
fn reset_streams_give_back_their_credit() {
    let mut p = pair(echo_args());
    let s = echo_session(&mut p);
    for i in 0..300u32 {
        let w = wt_stream(&mut p, s, b"y");
        assert_eq!(read(&mut p, w).bytes, b"y", "stream {i}");
        p.client.send_stream(w).reset(VarInt::from_u32(1)).unwrap();
        let _ = p.client.recv_stream(w).stop(VarInt::from_u32(1));
        p.drive();
    }
    let w = wt_stream(&mut p, s, b"after");
    assert_eq!(read(&mut p, w).bytes, b"after");
}

#[test]
fn a_broken_stream_header_does_not_stop_the_session() {
    let mut p = pair(echo_args());
    let s = echo_session(&mut p);
    // Reset in the middle of the 0x41 signal.
    let a = request(&mut p, &[0x40]);
    p.client.send_stream(a).reset(VarInt::from_u32(0)).unwrap();
    p.drive();
    // A truncated session id, then FIN.
    let b = request(&mut p, &[0x40, 0x41, 0x40]);
    p.client.send_stream(b).finish().unwrap();
    p.drive();
    let w = wt_stream(&mut p, s, b"next");
    assert_eq!(read(&mut p, w).bytes, b"next");
}

#[test]
fn capsules_are_found_wherever_they_arrive() {
    // In the same write as the CONNECT.
    let mut p = pair(echo_args());
    let mut bytes = connect_frame("/echo");
    bytes.extend_from_slice(&capsule::close_data_frame(9, b""));
    let s = request(&mut p, &bytes);
    let got = read(&mut p, s);
    assert_eq!(status(&got.bytes).0, Some(200), "accepted, then closed");
    assert!(got.fin);
    p.advance(Duration::from_millis(1100));
    assert_eq!(app_code(&client_lost(&mut p)), Some(code::H3_NO_ERROR));

    // At the start of a long DATA frame that never completes.
    let mut p = pair(echo_args());
    let s = echo_session(&mut p);
    let mut cap = Vec::new();
    capsule::put_close(&mut cap, 1, b"");
    let mut bytes = Vec::new();
    frame::put_header(&mut bytes, frame::DATA, 10 * 1024);
    bytes.extend_from_slice(&cap);
    write(&mut p, s, &bytes);
    p.drive();
    p.advance(Duration::from_millis(1100));
    assert_eq!(app_code(&client_lost(&mut p)), Some(code::H3_NO_ERROR));

    // A CLOSE too short to carry a code is malformed.
    let mut p = pair(echo_args());
    let s = echo_session(&mut p);
    let mut bad = Vec::new();
    varint::put(&mut bad, capsule::CLOSE_WEBTRANSPORT_SESSION);
    varint::put(&mut bad, 2);
    bad.extend_from_slice(&[0, 1]);
    let mut bytes = Vec::new();
    frame::put_header(&mut bytes, frame::DATA, bad.len() as u64);
    bytes.extend_from_slice(&bad);
    write(&mut p, s, &bytes);
    p.drive();
    assert_eq!(app_code(&client_lost(&mut p)), Some(code::H3_MESSAGE_ERROR));
}

#[test]
fn control_stream_rules_are_enforced() {
    // An empty GOAWAY on the client's control stream.
    let mut p2 = Pair::new(echo_args());
    p2.drive();
    let control = p2.client.streams().open(Dir::Uni).unwrap();
    let mut bytes = vec![0x00];
    frame::put_header(&mut bytes, frame::SETTINGS, 0);
    frame::put_header(&mut bytes, frame::GOAWAY, 0);
    write(&mut p2, control, &bytes);
    p2.drive();
    assert_eq!(app_code(&client_lost(&mut p2)), Some(code::H3_FRAME_ERROR));

    // A client-initiated push stream.
    let mut p = pair(echo_args());
    let push = p.client.streams().open(Dir::Uni).unwrap();
    write(&mut p, push, &[0x01]);
    p.drive();
    assert_eq!(
        app_code(&client_lost(&mut p)),
        Some(code::H3_STREAM_CREATION_ERROR)
    );
}

#[test]
fn an_oversized_header_section_is_refused_without_buffering_it() {
    let mut p = pair(echo_args());
    let mut bytes = Vec::new();
    frame::put_header(&mut bytes, frame::HEADERS, varint::MAX);
    bytes.extend_from_slice(&[0u8; 1000]);
    let id = request(&mut p, &bytes);
    let got = read(&mut p, id);
    assert_eq!(got.reset, Some(code::H3_EXCESSIVE_LOAD));
    // The connection is still usable.
    echo_session(&mut p);
}

/// HEADERS frames that declare a full section and send ten bytes of it, on several
/// request streams at once: the layer holds what arrived, not what was declared.
/// Frames of a reserved type are ignored wherever they arrive (RFC 9114 §7.2.8): many of
/// them packed in one chunk, on the control stream and on a request stream before its
/// HEADERS, are all read through, and what follows them is handled as usual.
#[test]
fn reserved_frames_packed_in_one_chunk_are_skipped() {
    let mut p = pair(QuicArgs::default());
    let junk = [0x21u8, 0x00].repeat(500);
    // The client's control stream is the first uni stream it opened (in `pair`).
    let control = StreamId::new(quinn_proto::Side::Client, Dir::Uni, 0);
    write(&mut p, control, &junk);
    p.drive();
    let mut bytes = junk.clone();
    bytes.extend_from_slice(&connect_frame("/"));
    let s = request(&mut p, &bytes);
    assert_eq!(status(&read(&mut p, s).bytes).0, Some(200));
    assert!(!p.server_closed());
    assert_eq!(p.server.as_ref().unwrap().1.h3.stats().protocol_errors, 0);
}

#[test]
fn declared_header_sections_are_not_reserved_before_they_arrive() {
    const STREAMS: usize = 8;
    let args = QuicArgs::default();
    let max = u64::from(args.max_field_section_bytes);
    let mut p = pair(args);
    for _ in 0..STREAMS {
        let mut bytes = Vec::new();
        frame::put_header(&mut bytes, frame::HEADERS, max);
        bytes.extend_from_slice(&[0; 10]);
        request(&mut p, &bytes);
    }
    let (_, conn) = p.server.as_ref().expect("server connection");
    let held = conn.h3.buffered_bytes();
    assert!(
        held <= STREAMS * 64,
        "{held} bytes held for {STREAMS} sections of {max} bytes declared and 10 sent"
    );
    assert!(!p.server_closed());
}

#[test]
fn a_connection_without_connect_is_closed_after_the_timeout() {
    let mut p = pair(QuicArgs {
        connect_timeout_ms: 1000,
        ..QuicArgs::default()
    });
    p.advance(Duration::from_millis(500));
    assert!(client_lost(&mut p).is_none());
    p.advance(Duration::from_millis(600));
    assert_eq!(app_code(&client_lost(&mut p)), Some(code::H3_NO_ERROR));
    let stats = p.server.as_ref().unwrap().1.h3.stats();
    assert_eq!(stats.connect_timeouts, 1);
}

#[test]
fn a_second_connect_is_answered_429() {
    let mut p = pair(echo_args());
    let s = echo_session(&mut p);
    let again = request(&mut p, &connect_frame("/echo"));
    assert_eq!(status(&read(&mut p, again).bytes).0, Some(429));
    let w = wt_stream(&mut p, s, b"first still works");
    assert_eq!(read(&mut p, w).bytes, b"first still works");
}

/// Requests answered without a session count on the connection, before a session and
/// while one is open: past `MAX_REFUSED_REQUESTS` the connection is closed with
/// H3_EXCESSIVE_LOAD. The accepted CONNECT does not count.
#[test]
fn a_connection_with_too_many_refused_requests_is_closed() {
    let mut p = pair(echo_args());
    let get = headers_frame(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/"),
    ]);
    let no_method = headers_frame(&[(":scheme", "https"), (":path", "/")]);
    // A CONNECT padded past MAX_FIELD_LINES with one-byte static references.
    let mut block = qpack::request_block(&[
        (":method", "CONNECT"),
        (":protocol", "webtransport"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/echo"),
    ]);
    block.extend(std::iter::repeat_n(0xC0 | 31, qpack::MAX_FIELD_LINES));
    let mut too_many_lines = Vec::new();
    frame::put_header(&mut too_many_lines, frame::HEADERS, block.len() as u64);
    too_many_lines.extend_from_slice(&block);
    /// Send a request that must be refused with `expected` (a status, or a reset
    /// code), and count it.
    fn refuse(p: &mut Pair, refused: &mut usize, bytes: &[u8], expected: Result<u16, u64>) {
        let id = request(p, bytes);
        let got = read(p, id);
        match expected {
            Ok(st) => assert_eq!(status(&got.bytes).0, Some(st), "request {refused}"),
            Err(code) => assert_eq!(got.reset, Some(code), "request {refused}"),
        }
        *refused += 1;
        // Our half ends too, so the stream closes and its credit returns.
        let _ = p.client.send_stream(id).reset(VarInt::from_u32(0));
        p.drive();
    }
    let mut refused = 0;
    for _ in 0..2 {
        refuse(&mut p, &mut refused, &connect_frame("/nope"), Ok(404));
        refuse(&mut p, &mut refused, &get, Ok(405));
        refuse(
            &mut p,
            &mut refused,
            &no_method,
            Err(code::H3_MESSAGE_ERROR),
        );
        refuse(
            &mut p,
            &mut refused,
            &too_many_lines,
            Err(code::H3_MESSAGE_ERROR),
        );
    }
    let s = echo_session(&mut p);
    while refused < MAX_REFUSED_REQUESTS {
        refuse(&mut p, &mut refused, &connect_frame("/echo"), Ok(429));
        if refused < MAX_REFUSED_REQUESTS {
            refuse(&mut p, &mut refused, &get, Ok(405));
        }
    }
    assert!(
        client_lost(&mut p).is_none(),
        "{refused} refused: still open"
    );
    let w = wt_stream(&mut p, s, b"still here");
    assert_eq!(read(&mut p, w).bytes, b"still here");
    // One more ends the connection, and the session with it.
    request(&mut p, &get);
    assert_eq!(
        app_code(&client_lost(&mut p)),
        Some(code::H3_EXCESSIVE_LOAD)
    );
    let stats = p.server.as_ref().unwrap().1.h3.stats();
    assert_eq!(stats.requests_refused, MAX_REFUSED_REQUESTS as u64 + 1);
    assert_eq!(stats.too_many_requests, 1);
}

/// A signaling session whose first frame is invalid: the server answers with an
/// ErrorMessage, finishes its stream and closes the session. Returns the CONNECT stream
/// and the signaling stream, with the client holding everything the server sent.
fn refused_signaling(p: &mut Pair) -> (StreamId, StreamId) {
    let s = request(p, &connect_frame("/"));
    assert_eq!(status(&read(p, s).bytes).0, Some(200));
    // A zero-length frame is a protocol error (docs/protocol.md, framing).
    let w = wt_stream(p, s, &[0, 0, 0, 0]);
    p.advance(Duration::from_millis(50));
    let got = read(p, w);
    assert!(!got.bytes.is_empty(), "the ErrorMessage arrived");
    assert!(got.fin, "and our FIN after it");
    (s, w)
}

#[test]
fn reading_ahead_of_a_fan_out_write_changes_nothing() {
    let mut p = pair(QuicArgs::default());
    let s = request(&mut p, &connect_frame("/"));
    assert_eq!(status(&read(&mut p, s).bytes).0, Some(200));
    // Half a frame's length: the session has its stream, and nothing to answer yet.
    let w = wt_stream(&mut p, s, &[0, 0]);
    p.advance(Duration::from_millis(50));
    let (_, conn) = p.server.as_mut().expect("the server has the connection");
    match &conn.app {
        crate::conn::App::Signaling(sig) => assert_eq!(sig.stream(), Some(w)),
        _ => panic!("a signaling session"),
    }
    conn.touch_stream();
    conn.touch_stream();
    p.drive();
    assert!(read(&mut p, w).bytes.is_empty(), "nothing was written");
    // The rest of a zero length: refused as it would have been without the reads.
    write(&mut p, w, &[0, 0]);
    p.advance(Duration::from_millis(50));
    let got = read(&mut p, w);
    assert!(!got.bytes.is_empty(), "the ErrorMessage arrived");
    assert!(got.fin);
}

#[test]
fn a_final_message_gets_time_to_be_read_before_the_session_closes() {
    let mut p = pair(QuicArgs::default());
    let (s, _) = refused_signaling(&mut p);
    // Acknowledged is not read: a browser drops unread stream data when the session
    // closes, so the close waits for the client's application...
    p.advance(Duration::from_millis(300));
    assert!(capsules(&read(&mut p, s).bytes).is_empty(), "no close yet");
    // ...for a bounded time.
    p.advance(Duration::from_millis(300));
    let got = read(&mut p, s);
    assert_eq!(capsules(&got.bytes), protocol_violation_close());
    assert!(got.fin);
}

#[test]
fn a_client_that_finishes_its_stream_after_our_last_message_is_closed_at_once() {
    let mut p = pair(QuicArgs::default());
    let (s, w) = refused_signaling(&mut p);
    p.client.send_stream(w).finish().unwrap();
    p.drive();
    assert_eq!(capsules(&read(&mut p, s).bytes), protocol_violation_close());
}

/// A burst of empty datagrams for the session (quarter id and nothing else), all taken
/// in one pass: each becomes an event of this layer, about 150 bytes, and the queue
/// gives their room back once they are handled instead of keeping it for the
/// connection's life.
#[test]
fn a_burst_of_datagrams_leaves_no_room_held_in_the_event_queue() {
    let mut p = pair(QuicArgs::default());
    let s = request(&mut p, &connect_frame("/"));
    assert_eq!(status(&read(&mut p, s).bytes).0, Some(200));
    let mut d = Vec::new();
    varint::put(&mut d, s.index());
    let mut sent = 0;
    while sent < 400
        && p.client
            .datagrams()
            .send(Bytes::from(d.clone()), false)
            .is_ok()
    {
        sent += 1;
    }
    assert!(sent >= 100, "{sent} datagrams queued");
    p.drive();
    let (_, conn) = p.server.as_ref().unwrap();
    assert!(conn.h3.events.is_empty(), "every event was handled");
    assert!(
        conn.h3.events.capacity() <= super::conn::KEEP_EVENTS,
        "the event queue keeps room for {} events",
        conn.h3.events.capacity()
    );
}

/// A signaling session whose client floods datagrams (its session's and another's)
/// and opens every stream it may, each left inside its header: the datagrams are
/// dropped as they arrive, the streams hold a few bytes each and no more than the
/// stream limits allow, and the session's deadlines still end it all.
#[test]
fn datagrams_and_half_written_streams_hold_nothing_past_the_stream_limits() {
    let args = QuicArgs::default();
    let mut p = pair(args.clone());
    let s = request(&mut p, &connect_frame("/"));
    assert_eq!(status(&read(&mut p, s).bytes).0, Some(200));
    let sig = wt_stream(&mut p, s, &[0, 0]);
    let payload = vec![0xab; 1_000];
    for _ in 0..1_000 {
        for quarter in [s.index(), s.index() + 7] {
            let mut d = Vec::new();
            varint::put(&mut d, quarter);
            d.extend_from_slice(&payload);
            p.client.datagrams().send(Bytes::from(d), true).unwrap();
        }
        p.drive();
    }
    let (_, conn) = p.server.as_ref().unwrap();
    assert_eq!(conn.h3.stats().datagrams_unknown_session, 1_000);
    assert!(conn.h3.events.is_empty(), "every event was handled");
    assert_eq!(conn.h3.buffered_bytes(), 0);

    // Every uni and bidi stream the client may open, each inside its header.
    let mut uni = 0;
    while let Some(id) = p.client.streams().open(Dir::Uni) {
        // WebTransport uni stream type, then the first byte of a 4-byte session id.
        write(&mut p, id, &[0x40, 0x54, 0x80]);
        uni += 1;
    }
    let mut bidi = 0;
    while let Some(id) = p.client.streams().open(Dir::Bi) {
        // The first byte of a 2-byte frame type.
        write(&mut p, id, &[0x40]);
        bidi += 1;
    }
    p.drive();
    assert_eq!(
        uni,
        args.max_uni_streams as usize - 1,
        "the control stream is one"
    );
    assert_eq!(
        bidi,
        args.max_bidi_streams as usize - 2,
        "CONNECT and signaling"
    );
    assert!(
        client_lost(&mut p).is_none(),
        "a stream left unfinished is no error"
    );
    let (_, conn) = p.server.as_ref().unwrap();
    assert!(conn.h3.streams.len() <= 2 + uni + bidi + 1);
    assert_eq!(
        conn.h3.buffered_bytes(),
        0,
        "headers are parsed as they arrive"
    );

    // No join comes: the join deadline ends the session and the connection with it,
    // and everything the streams held goes.
    p.advance(args.join_timeout() + Duration::from_millis(10));
    let got = read(&mut p, sig);
    assert!(!got.bytes.is_empty(), "the ErrorMessage");
    for _ in 0..20 {
        p.advance(Duration::from_millis(250));
    }
    assert!(p.server_closed(), "the connection outlived its session");
}

/// A session that ends while something of it is due later (the join's deadline, a join
/// waiting for its keys) leaves no deadline behind. The connection lingers a while after
/// the session (a second here, longer for a peer with a long ACK delay), and a deadline
/// left in the past would have the shard fire it at every tick of its timer wheel, a
/// thousand times a second, until it drains: a client could make that happen with
/// nothing but a CONNECT and a close.
#[test]
fn an_ended_session_leaves_no_deadline_due() {
    use crate::auth::devkeys::DevKeys;
    use crate::auth::jwt::Role;
    use crate::signaling::codec::encode_frame;
    use crate::signaling::proto::{client_message::Message as C, pb, ClientMessage};
    use std::time::SystemTime;

    let dir = std::env::temp_dir().join(format!("mc-h3-ended-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let keys = DevKeys::load_or_create(&dir).unwrap();
    for wait_for_keys in [false, true] {
        let mut p = pair(QuicArgs {
            join_timeout_ms: 200,
            ..QuicArgs::default()
        });
        let s = request(&mut p, &connect_frame("/"));
        assert_eq!(status(&read(&mut p, s).bytes).0, Some(200));
        if wait_for_keys {
            // The server has no keys yet: the join waits for them, looking again soon.
            let join = ClientMessage::of(C::JoinRequest(pb::JoinRequest {
                meeting_id: "m1".into(),
                join_token: keys.mint_meeting_token(
                    "m1",
                    "alice",
                    Role::Participant,
                    SystemTime::now(),
                    Duration::from_secs(600),
                ),
                ..Default::default()
            }));
            let mut bytes = Vec::new();
            encode_frame(&join, &mut bytes, 1 << 16).unwrap();
            wt_stream(&mut p, s, &bytes);
            p.advance(Duration::from_millis(5));
            assert!(
                p.fixtures.meeting_cmds.is_empty(),
                "the join waits for keys"
            );
        }
        // The client ends the session (FIN on the CONNECT stream), and the clock passes
        // the join's deadline and the key wait's next look.
        p.client.send_stream(s).finish().unwrap();
        p.drive();
        p.advance(Duration::from_millis(300));
        let now = p.now;
        let (_, conn) = p.server.as_mut().expect("the connection lingers");
        assert!(!conn.quic.is_drained());
        let next = conn.poll_timeout();
        assert!(
            next.is_none_or(|t| t > now),
            "waiting for keys: {wait_for_keys}: a deadline {:?} in the past",
            next.map(|t| now - t)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A join whose token names a key not loaded yet waits for the keys; the messages the
/// client sent right after its join (in the same packet here) wait with it, still
/// encoded, and follow it to the meeting, in order, instead of being dropped; and the
/// stream is read again once the join has gone.
#[test]
fn messages_behind_a_join_waiting_for_its_keys_follow_it() {
    use crate::actors::MeetingCmd;
    use crate::auth::devkeys::DevKeys;
    use crate::auth::jwt::Role;
    use crate::signaling::codec::encode_frame;
    use crate::signaling::proto::{client_message::Message as C, pb, ClientMessage};
    use std::time::SystemTime;

    let dir = std::env::temp_dir().join(format!("mc-h3-keywait-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let keys = DevKeys::load_or_create(&dir).unwrap();
    let token = keys.mint_meeting_token(
        "m1",
        "alice",
        Role::Participant,
        SystemTime::now(),
        Duration::from_secs(600),
    );
    let mut p = pair(QuicArgs::default());
    let s = request(&mut p, &connect_frame("/"));
    assert_eq!(status(&read(&mut p, s).bytes).0, Some(200));
    let mute = |audio_muted| {
        ClientMessage::of(C::MuteRequest(pb::MuteRequest {
            audio_muted,
            video_muted: false,
        }))
    };
    let mut bytes = Vec::new();
    let join = ClientMessage::of(C::JoinRequest(pb::JoinRequest {
        meeting_id: "m1".into(),
        join_token: token,
        ..Default::default()
    }));
    for m in [join, mute(true), mute(false)] {
        encode_frame(&m, &mut bytes, 1 << 16).unwrap();
    }
    let sig = wt_stream(&mut p, s, &bytes);
    p.advance(Duration::from_millis(5));
    assert!(
        p.fixtures.meeting_cmds.is_empty(),
        "the join waits for keys"
    );
    // What came behind the join waits encoded: decoded, a message can hold fifty times
    // its size on the wire, and the join may wait two seconds.
    let mutes = |p: &Pair| {
        p.fixtures
            .registry
            .client_messages_total
            .with_label_values(&["mute_request", "0"])
            .get()
    };
    assert_eq!(mutes(&p), 0, "nothing behind the join was decoded");

    p.fixtures
        .verifier
        .store()
        .publish(std::sync::Arc::new(keys.jwks()));
    p.advance(Duration::from_millis(25));
    let muted = |cmd: &MeetingCmd| match cmd {
        MeetingCmd::Message { msg, .. } => match &msg.message {
            Some(C::MuteRequest(m)) => Some(m.audio_muted),
            _ => None,
        },
        _ => None,
    };
    let cmds = std::mem::take(&mut p.fixtures.meeting_cmds);
    assert!(
        matches!(cmds.first(), Some(MeetingCmd::Join { .. })),
        "{cmds:?}"
    );
    assert_eq!(
        cmds.iter().skip(1).map(muted).collect::<Vec<_>>(),
        vec![Some(true), Some(false)],
        "the messages behind the join, in order"
    );
    assert_eq!(mutes(&p), 2);

    // Reading goes on after the join.
    let mut more = Vec::new();
    encode_frame(&mute(true), &mut more, 1 << 16).unwrap();
    write(&mut p, sig, &more);
    p.advance(Duration::from_millis(5));
    let cmds = std::mem::take(&mut p.fixtures.meeting_cmds);
    assert_eq!(cmds.iter().map(muted).collect::<Vec<_>>(), vec![Some(true)]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mc_refusals_total{reason="outbound_budget"}`.
fn outbound_budget_closes(p: &Pair) -> u64 {
    p.fixtures
        .registry
        .refusals_total
        .with_label_values(&["outbound_budget"])
        .get()
}

fn queued(p: &Pair) -> usize {
    match &p.server.as_ref().unwrap().1.app {
        crate::conn::App::Signaling(sig) => sig.queued_bytes(),
        _ => panic!("a signaling session"),
    }
}

/// A signaling session with its stream, the client having sent half a frame length.
fn open_signaling(p: &mut Pair) -> StreamId {
    let s = request(p, &connect_frame("/"));
    assert_eq!(status(&read(p, s).bytes).0, Some(200));
    wt_stream(p, s, &[0, 0])
}

fn frame_cmd(p: &Pair, len: usize) -> crate::actors::ConnCmd {
    crate::actors::ConnCmd::Frame {
        frame: Bytes::from(vec![0u8; len]),
        join_response: false,
        at: p.now,
    }
}

/// Each session's queue is bounded (1 MiB), but a shard holds thousands of sessions:
/// clients that fall behind together could make it hold their limit each. Past the
/// shard's budget, a session that has fallen well behind (more than an eighth of its
/// own limit queued) is closed as a slow consumer when the next frame comes; one that
/// keeps up is not, whatever the others hold.
#[test]
fn sessions_behind_past_the_shard_budget_are_closed_first() {
    let mut p = pair(QuicArgs::default());
    p.fixtures.settings.shard_outbound_max_bytes = 64 * 1024;
    let session_max = p.fixtures.settings.session.outbound_max_bytes;
    open_signaling(&mut p);
    // Frames arrive faster than the client acknowledges: QUIC takes its send window,
    // the session queues the rest.
    let mut most = 0;
    for _ in 0..1_500 {
        let cmd = frame_cmd(&p, 800);
        p.deliver(cmd);
        most = most.max(queued(&p));
        if outbound_budget_closes(&p) > 0 {
            break;
        }
    }
    eprintln!(
        "closed past the shard budget with {most} bytes queued (session limit {session_max})"
    );
    assert_eq!(outbound_budget_closes(&p), 1);
    assert!(most <= session_max / 8 + 800, "{most}");
    assert_eq!(queued(&p), 0, "its queue went with it");
    assert_eq!(p.fixtures.outbound_bytes, 0, "and left the shard's count");

    // A session that keeps up is left alone while the shard is over its budget.
    let mut p = pair(QuicArgs::default());
    p.fixtures.settings.shard_outbound_max_bytes = 64 * 1024;
    p.fixtures.outbound_bytes = 1 << 30;
    let sig = open_signaling(&mut p);
    let mut got = 0;
    for _ in 0..500 {
        let cmd = frame_cmd(&p, 800);
        p.deliver(cmd);
        p.drive();
        got += read(&mut p, sig).bytes.len();
    }
    assert_eq!(got, 500 * 800);
    assert_eq!(outbound_budget_closes(&p), 0);
    assert_eq!(p.fixtures.outbound_bytes, 1 << 30);
}
