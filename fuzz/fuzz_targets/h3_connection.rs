//! The HTTP/3 and WebTransport layer with the real connection and applications behind
//! it, driven in memory (quinn-proto client and server endpoints, no sockets): the
//! input is a script of client actions — open streams, write arbitrary or well-formed
//! bytes on the control, request, CONNECT and WebTransport streams, finish or reset
//! them, send datagrams, let time pass. The server must never panic and never hold
//! more than its budget for the client.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mc_service::h3::{capsule, frame, qpack, settings, varint};
use mc_service::quic::QuicArgs;
use mc_service::testing::Pair;
use quinn_proto::{Dir, StreamId, VarInt};

/// Well-formed pieces the script can write, so the fuzzer reaches deep states fast.
fn snippet(which: u8, session: u64) -> Vec<u8> {
    let mut out = Vec::new();
    match which % 7 {
        0 => {
            // A control stream with SETTINGS.
            out.push(0x00);
            let mut payload = Vec::new();
            for (id, v) in [(settings::H3_DATAGRAM, 1), (settings::ENABLE_WEBTRANSPORT, 1)] {
                varint::put(&mut payload, id);
                varint::put(&mut payload, v);
            }
            frame::put_header(&mut out, frame::SETTINGS, payload.len() as u64);
            out.extend_from_slice(&payload);
        }
        1 | 2 => {
            let path = if which % 7 == 1 { "/echo" } else { "/" };
            let block = qpack::request_block(&[
                (":method", "CONNECT"),
                (":protocol", "webtransport"),
                (":scheme", "https"),
                (":authority", "localhost"),
                (":path", path),
            ]);
            frame::put_header(&mut out, frame::HEADERS, block.len() as u64);
            out.extend_from_slice(&block);
        }
        3 => {
            varint::put(&mut out, frame::WEBTRANSPORT_STREAM);
            varint::put(&mut out, session);
        }
        4 => {
            varint::put(&mut out, 0x54);
            varint::put(&mut out, session);
        }
        5 => out = capsule::close_data_frame(u32::from(which), b"fuzz"),
        _ => {
            // A signaling frame header announcing a small payload.
            out.extend_from_slice(&16u32.to_be_bytes());
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let args = QuicArgs {
        enable_echo: true,
        connect_timeout_ms: 2_000,
        join_timeout_ms: 2_000,
        ..QuicArgs::default()
    };
    let budget = args.receive_budget_bytes() as usize;
    let mut p = Pair::new(args);
    p.drive();
    let mut streams: Vec<StreamId> = Vec::new();
    let mut input = data;
    let mut next = || -> Option<u8> {
        let (&b, rest) = input.split_first()?;
        input = rest;
        Some(b)
    };
    let mut steps = 0;
    while let Some(op) = next() {
        steps += 1;
        if steps > 256 {
            break;
        }
        let pick = |streams: &Vec<StreamId>, b: u8| streams.get(usize::from(b) % streams.len().max(1)).copied();
        match op % 9 {
            0 => {
                if let Some(id) = p.client.streams().open(Dir::Uni) {
                    streams.push(id);
                }
            }
            1 => {
                if let Some(id) = p.client.streams().open(Dir::Bi) {
                    streams.push(id);
                }
            }
            2 => {
                let (Some(k), Some(len)) = (next(), next()) else { break };
                let mut bytes = Vec::new();
                for _ in 0..len {
                    match next() {
                        Some(b) => bytes.push(b),
                        None => break,
                    }
                }
                if let Some(id) = pick(&streams, k) {
                    let _ = p.client.send_stream(id).write(&bytes);
                }
            }
            3 => {
                let (Some(k), Some(which)) = (next(), next()) else { break };
                if let Some(id) = pick(&streams, k) {
                    let _ = p.client.send_stream(id).write(&snippet(which, 0));
                }
            }
            4 => {
                let Some(k) = next() else { break };
                if let Some(id) = pick(&streams, k) {
                    let _ = p.client.send_stream(id).finish();
                }
            }
            5 => {
                let (Some(k), Some(code)) = (next(), next()) else { break };
                if let Some(id) = pick(&streams, k) {
                    let _ = p.client.send_stream(id).reset(VarInt::from_u32(u32::from(code)));
                    // Our own uni streams have no receive half.
                    if id.dir() == Dir::Bi {
                        let _ = p.client.recv_stream(id).stop(VarInt::from_u32(u32::from(code)));
                    }
                }
            }
            6 => {
                let Some(len) = next() else { break };
                let mut d = Vec::new();
                for _ in 0..len {
                    match next() {
                        Some(b) => d.push(b),
                        None => break,
                    }
                }
                let _ = p.client.datagrams().send(d.into(), true);
            }
            7 => {
                let Some(ms) = next() else { break };
                p.advance(Duration::from_millis(u64::from(ms) * 10));
            }
            _ => {
                // Read what the server sent, as a client would.
                for id in streams.iter().filter(|id| id.dir() == Dir::Bi) {
                    if let Ok(mut chunks) = p.client.recv_stream(*id).read(true) {
                        while let Ok(Some(_)) = chunks.next(usize::MAX) {}
                        let _ = chunks.finalize();
                    }
                }
                while p.client.datagrams().recv().is_some() {}
            }
        }
        p.drive();
        if let Some((_, conn)) = p.server.as_ref() {
            assert!(
                conn.h3.buffered_bytes() <= budget,
                "the HTTP/3 layer holds {} bytes, over the {budget}-byte budget",
                conn.h3.buffered_bytes()
            );
        }
    }
    // Whatever happened, time runs out cleanly.
    p.advance(Duration::from_secs(3));
    p.advance(Duration::from_secs(40));
});
