//! Sessions and a meeting wired together in memory: bytes in, bytes out, with the
//! encode-once fan-out a driver would use.
use super::*;
use crate::signaling::codec::{encode_frame, encode_to_bytes, FrameDecoder, DEFAULT_MAX_FRAME};
use crate::signaling::session::{Session, SessionConfig, SessionEvent};

struct Client {
    conn: ConnKey,
    session: Session,
    rx: FrameDecoder,
}

fn frame(m: client_message::Message) -> Vec<u8> {
    let mut v = Vec::new();
    encode_frame(&ClientMessage::of(m), &mut v, DEFAULT_MAX_FRAME).unwrap();
    v
}

/// Feeds the client's bytes through its session into the meeting, then delivers the
/// meeting's output to every session (encoding each shared message once).
fn pump(h: &mut H, clients: &mut [Client], from: usize, bytes: &[u8]) {
    let now = h.now;
    let cl = &mut clients[from];
    cl.session.handle_bytes(now, bytes);
    while let Some(ev) = cl.session.poll_event() {
        match ev {
            SessionEvent::Join { request, .. } => {
                let sub = format!("user-{}", cl.conn.conn);
                h.m.handle_join(now, cl.conn, ident(&sub, Role::Host), request)
                    .unwrap();
            }
            SessionEvent::Message(m) => h.m.handle_message(now, cl.conn, m).unwrap(),
        }
    }
    let mut last: Option<(Arc<ServerMessage>, bytes::Bytes)> = None;
    while let Some(o) = h.m.poll_outbound() {
        match o {
            Outbound::Send { to, msg } => {
                let bytes = match &last {
                    Some((m, b)) if Arc::ptr_eq(m, &msg) => b.clone(),
                    _ => encode_to_bytes(msg.as_ref(), DEFAULT_MAX_FRAME).unwrap(),
                };
                last = Some((msg, bytes.clone()));
                let c = clients.iter_mut().find(|c| c.conn == to).unwrap();
                c.session.send_frame(bytes).unwrap();
            }
            Outbound::Close { to, code, .. } => clients
                .iter_mut()
                .find(|c| c.conn == to)
                .unwrap()
                .session
                .close(code),
        }
    }
}

fn received(c: &mut Client) -> Vec<S> {
    while let Some(b) = c.session.poll_transmit() {
        let n = b.len();
        c.rx.push(b);
        c.session.advance_transmit(n);
    }
    let mut v = Vec::new();
    while let Some(m) = c.rx.next_message::<ServerMessage>().unwrap() {
        v.extend(m.message);
    }
    v
}

#[test]
fn two_clients_join_and_mute_over_the_wire() {
    let mut h = H::new();
    let mut clients: Vec<Client> = (1..=2)
        .map(|n| Client {
            conn: c(n),
            session: Session::new(SessionConfig::default(), h.now),
            rx: FrameDecoder::default(),
        })
        .collect();
    let join = frame(client_message::Message::JoinRequest(join_req("", "")));
    pump(&mut h, &mut clients, 0, &join);
    pump(&mut h, &mut clients, 1, &join);
    let a = received(&mut clients[0]);
    assert!(matches!(
        &a[..],
        [S::JoinResponse(_), S::ParticipantJoined(_)]
    ));
    let b = received(&mut clients[1]);
    assert!(matches!(&b[..], [S::JoinResponse(r)] if r.existing_participants.len() == 1));
    let mute = frame(client_message::Message::MuteRequest(pb::MuteRequest {
        audio_muted: true,
        video_muted: false,
    }));
    // Split across reads.
    pump(&mut h, &mut clients, 1, &mute[..3]);
    pump(&mut h, &mut clients, 1, &mute[3..]);
    for cl in clients.iter_mut() {
        let got = received(cl);
        assert!(matches!(&got[..], [S::ParticipantMuteUpdate(u)] if u.audio_self_muted));
    }
    assert!(clients.iter().all(|c| c.session.poll_close().is_none()));
}
