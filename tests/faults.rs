//! Faults a real deployment meets, on loopback with the real binary:
//! a client that stops reading is disconnected without hurting the others; abrupt
//! client disconnects at each stage of the join leave nothing behind; a restart right
//! after SIGKILL comes up on the same ports and serves new joins again; one client
//! address (or IPv6 prefix, in a network namespace of the test's own) holds at most
//! `--max-sessions-per-ip` sessions; participants' disconnects reach their meeting even
//! when the meeting's shard cannot take them at once.

mod harness;

use std::time::{Duration, Instant, SystemTime};

use harness::client::{runtime, SigClient, M};
use harness::Server;
use mc_service::auth::jwt::Role;
use mc_service::auth::DevKeys;
use mc_service::signaling::codec::encode_frame;
use mc_service::signaling::proto::{client_message as C, pb, ClientMessage};

fn token(keys: &DevKeys, meeting: &str, user: &str) -> String {
    keys.mint_meeting_token(
        meeting,
        user,
        Role::Participant,
        SystemTime::now(),
        Duration::from_secs(600),
    )
}

fn metric(server: &Server, name: &str, label: &str) -> f64 {
    let (_, _, body) = server.get("/metrics");
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits up to 5 s for `name{label}` to reach `at_least`; returns its value then.
fn wait_metric(server: &Server, name: &str, label: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = metric(server, name, label);
        if v >= at_least || Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_slow_consumer_is_disconnected_and_the_others_lose_nothing() {
    // 40,000 updates at 4,000/s (paced, within the rate limit set here): about 2 MB for
    // the client that never reads, more than its QUIC stream window plus the server's
    // outbound queue, so the server's writes stall and it is closed as a slow consumer.
    // The meeting's broadcast budget is raised with the session's rate so that one user's
    // quarter of it takes batches of 400; its burst must stay within a quarter of the
    // outbound frame limit, and the bytes limit still closes the slow consumer first.
    const UPDATES: usize = 40_000;
    const BATCH: usize = 400;
    let server = Server::start_dev(&[
        "--shards",
        "2",
        "--session-message-rate",
        "5000",
        "--session-message-burst",
        "5000",
        "--session-outbound-max-bytes",
        "131072",
        "--session-outbound-max-frames",
        "8192",
        "--meeting-broadcast-rate",
        "20000",
        "--meeting-broadcast-burst",
        "2048",
    ]);
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    let m = "slow-consumer";
    runtime().block_on(async {
        let mut reader = SigClient::connect(&url).await;
        reader.join(m, &token(&keys, m, "reader"), "reader").await;
        let mut sender = SigClient::connect(&url).await;
        let r = sender.join(m, &token(&keys, m, "sender"), "sender").await;
        let Some(M::JoinResponse(sr)) = r.message else {
            panic!("{r:?}")
        };
        let mut slow = SigClient::connect(&url).await;
        slow.join(m, &token(&keys, m, "slow"), "slow").await;
        // From here on `slow` never reads again.

        // The sender sends mute toggles in paced batches; its own copies are read in the
        // same task so it is not a slow consumer itself.
        let sender_id = sr.participant_id.clone();
        let drain_sender = tokio::spawn(async move {
            let mut sent = 0;
            let mut mine = 0;
            while sent < UPDATES {
                let mut batch = Vec::new();
                for i in sent..sent + BATCH {
                    let msg = ClientMessage::of(C::Message::MuteRequest(pb::MuteRequest {
                        audio_muted: i % 2 == 0,
                        video_muted: false,
                    }));
                    encode_frame(&msg, &mut batch, 1 << 16).unwrap();
                }
                sender.send_raw(&batch).await;
                sent += BATCH;
                let pace = tokio::time::Instant::now() + Duration::from_millis(100);
                while let Some(msg) = sender.next(pace - tokio::time::Instant::now()).await {
                    if matches!(msg.message, Some(M::ParticipantMuteUpdate(_))) {
                        mine += 1;
                    }
                }
            }
            while mine < UPDATES {
                match sender.next(Duration::from_secs(20)).await {
                    Some(msg) => {
                        if matches!(msg.message, Some(M::ParticipantMuteUpdate(_))) {
                            mine += 1;
                        }
                    }
                    None => panic!("sender stopped after {mine} updates"),
                }
            }
            sender
        });

        // The healthy reader gets every update, in order.
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(90);
        while got < UPDATES {
            assert!(Instant::now() < deadline, "reader got {got}/{UPDATES}");
            let msg = reader
                .next(Duration::from_secs(20))
                .await
                .expect("reader alive");
            if let Some(M::ParticipantMuteUpdate(u)) = msg.message {
                if u.participant_id == sender_id {
                    assert_eq!(
                        u.audio_self_muted,
                        got % 2 == 0,
                        "update {got} out of order"
                    );
                    got += 1;
                }
            }
        }
        let sender = drain_sender.await.unwrap();
        // The slow client was closed as a slow consumer.
        let deadline = Instant::now() + Duration::from_secs(20);
        while metric(
            &server,
            "mc_sessions_closed_total",
            "reason=\"slow_consumer\"",
        ) < 1.0
        {
            assert!(
                Instant::now() < deadline,
                "slow consumer not disconnected\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(slow);
        reader.leave().await;
        sender.leave().await;
    });
}

#[test]
fn abrupt_disconnects_at_every_stage_of_the_join_leave_nothing_behind() {
    // A lost close packet leaves a connection to the idle timeout: keep it short here.
    let server = Server::start_dev(&[
        "--shards",
        "2",
        "--disconnect-grace-secs",
        "1",
        "--idle-timeout-secs",
        "3",
        "--keep-alive-secs",
        "1",
    ]);
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    let m = "abrupt";
    runtime().block_on(async {
        for round in 0..5 {
            // 1. Connect, then vanish before opening the signaling stream.
            let ep = harness::client::endpoint();
            let conn = ep.connect(url.as_str()).await.expect("connect");
            conn.close(wtransport::VarInt::from_u32(7), b"gone");
            // 2. Open the stream, send half a frame, vanish.
            let mut c = SigClient::connect(&url).await;
            c.send_raw(&[0, 0, 1, 0, 1, 2, 3]).await;
            c.crash();
            // 3. Send the join, vanish before the answer.
            let mut c = SigClient::connect(&url).await;
            c.send(C::Message::JoinRequest(pb::JoinRequest {
                meeting_id: m.into(),
                join_token: token(&keys, m, &format!("u{round}")),
                ..Default::default()
            }))
            .await;
            c.crash();
            // 4. Join fully, vanish.
            let mut c = SigClient::connect(&url).await;
            c.join(m, &token(&keys, m, &format!("v{round}")), "v").await;
            c.crash();
        }
    });
    // After the grace period everything is gone: no meetings, no connections.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let meetings = metric(&server, "mc_meetings_active", "");
        let conns = metric(&server, "mc_connections_active", "");
        if meetings == 0.0 && conns == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: meetings {meetings} connections {conns}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.get("/ready").0, 200);
    assert_eq!(metric(&server, "mc_actor_panics_total", ""), 0.0);
}

#[test]
fn after_sigkill_a_restarted_mc_serves_joins_again() {
    let mut server = Server::start_dev(&["--shards", "2"]);
    let dev_dir = server.dev_dir.clone();
    let keys = DevKeys::load_or_create(&dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    runtime().block_on(async {
        let mut c = SigClient::connect(&url).await;
        c.join("k", &token(&keys, "k", "a"), "a").await;
        server.signal(libc::SIGKILL);
        assert!(server.wait_exit(Duration::from_secs(5)).is_some());
        drop(c);
    });
    // Same WebTransport address and dev dir: clients come back to the same place and the
    // restarted MC reuses the certificate and keys. The admin port is a fresh one: other
    // tests running meanwhile may have taken the old one as a client's ephemeral port.
    let http = format!("127.0.0.1:{}", harness::free_tcp_port());
    let wt = server.webtransport.to_string();
    std::mem::forget(server); // the process is gone; keep its dev dir for the restart
    let restarted = Server::start_dev_at(&["--shards", "2"], &http, &wt, &dev_dir);
    assert_eq!(restarted.get("/ready").0, 200);
    runtime().block_on(async {
        let mut c = SigClient::connect(&url).await;
        let r = c.join("k", &token(&keys, "k", "b"), "b").await;
        assert!(matches!(r.message, Some(M::JoinResponse(_))), "{r:?}");
        c.leave().await;
    });
}

#[test]
fn a_killed_mc_restarted_at_once_comes_up_on_the_same_ports() {
    // Nothing the shards leave to the kernel may hold the WebTransport socket past the
    // process (a poll armed in an io_uring would, until the ring's teardown some
    // milliseconds later); the admin listener's accept does sit in glommio's ring, and
    // the restarted process waits for the port. A supervisor restarting the MC at once
    // must see it come up.
    let mut server = Server::start_dev(&["--shards", "2"]);
    for _ in 0..3 {
        // Both shards parked on their sockets, the admin listener accepting.
        std::thread::sleep(Duration::from_millis(100));
        server.signal(libc::SIGKILL);
        // Reaped the moment it exits (SIGKILL cannot be caught: the wait is bounded).
        server.child.wait().unwrap();
        drop(
            std::net::UdpSocket::bind(server.webtransport)
                .expect("the killed MC's WebTransport port is free once it has exited"),
        );
        let (http, wt, dev_dir) = (
            server.http.to_string(),
            server.webtransport.to_string(),
            server.dev_dir.clone(),
        );
        std::mem::forget(server); // the process is gone; keep its dev dir for the restart
        server = Server::start_dev_at(&["--shards", "2"], &http, &wt, &dev_dir);
        assert_eq!(server.get("/ready").0, 200);
    }
}

#[test]
fn sessions_per_client_address_are_limited_and_counted() {
    let server = Server::start_dev(&["--shards", "1", "--max-sessions-per-ip", "2"]);
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    runtime().block_on(async {
        let mut a = SigClient::connect(&url).await;
        a.join("ip", &token(&keys, "ip", "a"), "a").await;
        let mut b = SigClient::connect(&url).await;
        b.join("ip", &token(&keys, "ip", "b"), "b").await;
        let ep = harness::client::endpoint();
        let third = tokio::time::timeout(Duration::from_secs(5), ep.connect(url.as_str())).await;
        assert!(
            matches!(third, Ok(Err(_))),
            "a third session from 127.0.0.1 is refused"
        );
        a.leave().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut c = SigClient::connect(&url).await;
        let r = c.join("ip", &token(&keys, "ip", "c"), "c").await;
        assert!(
            matches!(r.message, Some(M::JoinResponse(_))),
            "a slot came back: {r:?}"
        );
        b.leave().await;
        c.leave().await;
    });
    assert!(
        metric(
            &server,
            "mc_refusals_total",
            "reason=\"max_sessions_per_ip\""
        ) >= 1.0
    );
}

/// Set in this test binary when it runs again inside a network namespace of its own.
const IN_OWN_NETNS: &str = "MC_TEST_IN_OWN_NETNS";

/// Runs the test `name` of this binary again in a network namespace of its own
/// (`unshare --net`; not root: in a user namespace of its own too), whose only interface
/// is a loopback holding `addrs` as well: no packet can leave it. True when called
/// inside it (run the test); false outside, after checking that the run inside passed.
fn in_own_netns(name: &str, addrs: &[&str]) -> bool {
    if std::env::var_os(IN_OWN_NETNS).is_some() {
        let mut steps = vec![vec!["link", "set", "lo", "up"]];
        steps.extend(addrs.iter().map(|a| vec!["addr", "add", *a, "dev", "lo"]));
        for args in steps {
            let out = std::process::Command::new("ip")
                .args(&args)
                .output()
                .expect("ip (iproute2) runs");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        return true;
    }
    let mut unshare = std::process::Command::new("unshare");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        unshare.arg("--map-root-user");
    }
    let out = unshare
        .arg("--net")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(IN_OWN_NETNS, "1")
        .output()
        .expect("unshare (util-linux) runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in its own network namespace:\n{stdout}\n{stderr}"
    );
    false
}

/// `--ipv6-client-prefix`: addresses of one /64 count as one client against
/// `--max-sessions-per-ip`, another /64 is another client, and with 128 each address
/// counts alone. A host holds a whole /64, so counting addresses alone would let one
/// client open as many sessions as it has addresses. Loopback has one IPv6 address, so
/// this runs in a network namespace of its own whose loopback holds a few more.
#[test]
fn ipv6_addresses_of_one_prefix_count_as_one_client() {
    const NAME: &str = "ipv6_addresses_of_one_prefix_count_as_one_client";
    let addrs = [
        "fd00::1/64",
        "fd00::2/64",
        "fd00::3/64",
        "fd00::4/64",
        "fd01::2/64",
    ];
    if !in_own_netns(NAME, &addrs) {
        return;
    }
    let from = |a: &str| -> std::net::SocketAddr { format!("[{a}]:0").parse().unwrap() };
    // Opens a session from `a` and keeps it; false when the handshake is refused.
    type Kept = Vec<(
        wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>,
        wtransport::Connection,
    )>;
    async fn session_from(a: std::net::SocketAddr, url: &str, kept: &mut Kept) -> bool {
        let ep = harness::client::endpoint_at(a);
        match tokio::time::timeout(Duration::from_secs(5), ep.connect(url)).await {
            Ok(Ok(conn)) => {
                kept.push((ep, conn));
                true
            }
            _ => false,
        }
    }
    for (prefix, port, third_accepted) in [("64", 4433, false), ("128", 4434, true)] {
        let dev = std::env::temp_dir().join(format!("mc-test-v6-{}-{prefix}", std::process::id()));
        let server = Server::start_dev_at(
            &[
                "--shards",
                "1",
                "--max-sessions-per-ip",
                "2",
                "--ipv6-client-prefix",
                prefix,
            ],
            &format!("127.0.0.1:{}", harness::free_tcp_port()),
            &format!("[fd00::1]:{port}"),
            &dev,
        );
        let url = &format!("https://[fd00::1]:{port}/");
        runtime().block_on(async {
            let mut kept = Kept::new();
            assert!(session_from(from("fd00::2"), url, &mut kept).await);
            assert!(session_from(from("fd00::3"), url, &mut kept).await);
            assert_eq!(
                session_from(from("fd00::4"), url, &mut kept).await,
                third_accepted,
                "a third address of fd00::/64 with --ipv6-client-prefix {prefix}"
            );
            assert!(
                session_from(from("fd01::2"), url, &mut kept).await,
                "another /64 is another client"
            );
        });
        let refused = metric(
            &server,
            "mc_refusals_total",
            "reason=\"max_sessions_per_ip\"",
        );
        assert_eq!(refused > 0.0, !third_accepted, "refusals: {refused}");
        drop(server);
        let _ = std::fs::remove_dir_all(dev);
    }
}

/// Begins `n` handshakes with the server from 127.0.0.1, each a client's Initial sent
/// from a socket that is closed at once: the server's replies go nowhere, and each
/// handshake waits out its timeout. Each is another client's Initial (one sent again
/// would name the same connection).
fn begin_handshakes_that_never_answer(server: &Server, n: usize) {
    for _ in 0..n {
        let initial = harness::client::client_initial();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.send_to(&initial, server.webtransport).unwrap();
    }
}

/// Initials that name a client's address, sent by someone else (anyone can: a
/// client's Initial keys are public), cannot use up that client's connections: over
/// `--max-sessions-per-ip`, an Initial from an address not yet validated gets a Retry
/// instead of a refusal, and only connections whose address is proven count against
/// the client. The limit still holds for the client's own connections.
#[test]
fn forged_initials_cannot_use_up_a_clients_connections() {
    let server = Server::start_dev(&["--shards", "1", "--max-sessions-per-ip", "2"]);
    // Four handshakes "from" 127.0.0.1.
    begin_handshakes_that_never_answer(&server, 4);
    assert!(
        wait_metric(&server, "mc_connections_active", "", 2.0) >= 2.0,
        "the forged handshakes began"
    );
    // The two forged Initials over the limit got a Retry each.
    let retries = wait_metric(&server, "mc_quic_retries_total", "", 2.0);
    let url = format!("https://{}/", server.webtransport);
    runtime().block_on(async {
        let mut kept = Vec::new();
        for n in 1..=2 {
            let ep = harness::client::endpoint();
            match tokio::time::timeout(Duration::from_secs(5), ep.connect(&url)).await {
                Ok(Ok(conn)) => kept.push((ep, conn)),
                other => panic!("the client's own connection {n} was refused: {other:?}"),
            }
        }
        let ep = harness::client::endpoint();
        let third = tokio::time::timeout(Duration::from_secs(5), ep.connect(&url)).await;
        assert!(
            !matches!(third, Ok(Ok(_))),
            "a third connection of the client's own passed the limit of 2"
        );
    });
    // Each of the client's three connections went through a Retry.
    assert!(metric(&server, "mc_quic_retries_total", "") >= retries + 3.0);
    assert!(
        metric(
            &server,
            "mc_refusals_total",
            "reason=\"max_sessions_per_ip\""
        ) >= 1.0
    );
}

/// A server of one shard and four handshakes, all four begun from 127.0.0.1 by
/// Initials nobody answers.
fn every_handshake_held_by_one_address() -> Server {
    let server = Server::start_dev(&["--shards", "1", "--max-handshakes-per-shard", "4"]);
    begin_handshakes_that_never_answer(&server, 4);
    assert_eq!(
        wait_metric(&server, "mc_connections_active", "", 4.0),
        4.0,
        "four handshakes held"
    );
    server
}

/// With every handshake of a shard held by one client's address, another client whose
/// address is proven takes the place of the oldest of them: a few addresses cannot keep
/// everyone else out. (Its first Initial gets a Retry, as every one from an address not
/// yet validated does while the handshakes are all taken.)
#[test]
fn a_client_holding_every_handshake_makes_room_for_another() {
    let server = every_handshake_held_by_one_address();
    let url = format!("https://{}/", server.webtransport);
    runtime().block_on(async {
        let ep = harness::client::endpoint_at("127.0.0.2:0".parse().unwrap());
        match tokio::time::timeout(Duration::from_secs(5), ep.connect(&url)).await {
            Ok(Ok(_conn)) => {}
            other => panic!("another client was kept out: {other:?}"),
        }
        // More after it, past the length at which the shard prunes its queue of
        // handshakes (twice the limit).
        let mut kept = Vec::new();
        for n in 3..9 {
            let ep = harness::client::endpoint_at(format!("127.0.0.{n}:0").parse().unwrap());
            match tokio::time::timeout(Duration::from_secs(5), ep.connect(&url)).await {
                Ok(Ok(conn)) => kept.push((ep, conn)),
                other => panic!("client 127.0.0.{n} was kept out: {other:?}"),
            }
        }
    });
    assert!(
        metric(
            &server,
            "mc_refusals_total",
            "reason=\"max_handshakes_per_shard\""
        ) >= 1.0,
        "one of the four made room"
    );
    assert!(metric(&server, "mc_quic_retries_total", "") >= 1.0);
}

/// A proven client whose ClientHello the server refuses (here it offers only ALPN
/// "h2") takes no handshake's place: the one that would give way to it is closed only
/// once the new one is accepted.
#[test]
fn a_client_hello_the_server_refuses_closes_no_handshake_to_make_room() {
    let server = every_handshake_held_by_one_address();
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let config = quinn::ClientConfig::new(std::sync::Arc::new(crypto));
    runtime().block_on(async {
        let ep = quinn::Endpoint::client("127.0.0.2:0".parse().unwrap()).unwrap();
        for n in 1..=3 {
            let connecting = ep
                .connect_with(config.clone(), server.webtransport, "localhost")
                .unwrap();
            match tokio::time::timeout(Duration::from_secs(5), connecting).await {
                Ok(Err(_refused)) => {}
                other => panic!("attempt {n} with ALPN h2 was not refused: {other:?}"),
            }
        }
    });
    // Each attempt was retried (its address proven) before its ClientHello was read.
    assert!(wait_metric(&server, "mc_quic_retries_total", "", 3.0) >= 3.0);
    assert_eq!(
        metric(
            &server,
            "mc_refusals_total",
            "reason=\"max_handshakes_per_shard\""
        ),
        0.0,
        "a handshake was closed to make room for one that was never accepted"
    );
    assert_eq!(metric(&server, "mc_connections_active", ""), 4.0);
}

/// A datagram may carry 0 as its source port, which no answer can be sent to (the
/// kernel refuses it). A client's Initial from port 0 starts no handshake; from any
/// other port the same Initial does start one. (That a send to port 0 leaves GSO on is
/// `quic::udp::tests::a_gso_transmit_to_port_0_leaves_gso_on`.) Raw sockets need root,
/// so this runs in a network namespace of its own.
#[test]
fn an_initial_from_port_0_starts_nothing() {
    const NAME: &str = "an_initial_from_port_0_starts_nothing";
    if !in_own_netns(NAME, &[]) {
        return;
    }
    let server = Server::start_dev(&["--shards", "1"]);
    let initial = harness::client::client_initial();
    let raw = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::UDP),
    )
    .expect("a raw socket (root in this namespace)");
    let to = server.webtransport;
    let send_from = |port: u16| {
        let mut datagram = Vec::with_capacity(8 + initial.len());
        datagram.extend_from_slice(&port.to_be_bytes());
        datagram.extend_from_slice(&to.port().to_be_bytes());
        datagram.extend_from_slice(&((8 + initial.len()) as u16).to_be_bytes());
        // No checksum (allowed over IPv4).
        datagram.extend_from_slice(&[0, 0]);
        datagram.extend_from_slice(&initial);
        let sent = raw
            .send_to(&datagram, &to.into())
            .expect("send a raw datagram");
        assert_eq!(sent, datagram.len());
    };
    send_from(0);
    // The shard read it (its counters are published once a second).
    assert!(wait_metric(&server, "mc_udp_datagrams_total", "direction=\"in\"", 1.0) >= 1.0);
    assert_eq!(metric(&server, "mc_connections_active", ""), 0.0);
    send_from(40_000);
    assert_eq!(
        wait_metric(&server, "mc_connections_active", "", 1.0),
        1.0,
        "the same Initial from port 40000 starts a handshake"
    );
}

/// A participant's disconnect the meeting's shard cannot take (its queue, the overflow
/// and the reserve for disconnects all full) waits on the connection's shard and is sent
/// when there is room: nothing is dropped, and the participant leaves after its grace
/// like any other.
#[test]
fn a_disconnect_the_meeting_shard_cannot_take_waits_for_room() {
    // Queues of 4 and an overflow of 1 (a reserve of 2 for disconnects): 32 connections
    // of one shard closing at once overrun them.
    const CRASHING: usize = 32;
    const WAITING: &str = "participants' disconnects wait on this shard";
    let server = Server::start_dev(&[
        "--shards",
        "2",
        "--actor-mailbox-size",
        "4",
        "--mesh-overflow-max",
        "1",
        "--disconnect-grace-secs",
        "1",
    ]);
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    runtime().block_on(async {
        // One endpoint, one UDP socket: all its connections land on one shard.
        let ep = harness::client::endpoint();
        let mut observer = SigClient::connect_on(&ep, &url).await;
        let shard = (0..2)
            .find(|s| metric(&server, "mc_connections_active", &format!("shard=\"{s}\"")) == 1.0)
            .expect("the observer's shard");
        // A meeting owned by the other shard: every disconnect crosses the mesh.
        let m = (0..)
            .map(|i| format!("ghosts-{i}"))
            .find(|m| usize::from(mc_service::router::meeting_shard(m, 2).0) != shard)
            .unwrap();
        observer
            .join(&m, &token(&keys, &m, "observer"), "observer")
            .await;
        let mut overrun = false;
        for round in 0..5 {
            let mut crashing = Vec::new();
            for i in 0..CRASHING {
                let mut c = SigClient::connect_on(&ep, &url).await;
                let user = format!("u{round}-{i}");
                let r = c.join(&m, &token(&keys, &m, &user), &user).await;
                assert!(matches!(r.message, Some(M::JoinResponse(_))), "{r:?}");
                crashing.push(c);
            }
            // Their close packets leave one socket together and are read in few passes.
            for c in crashing {
                c.crash();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            if server.log().contains(WAITING) {
                overrun = true;
                break;
            }
            // Past every grace before the next round.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        assert!(
            overrun,
            "the mesh was never overrun in 5 rounds: the case was not reached"
        );
        // New participants are told who is in the meeting: within 10 s every crashed one
        // has left (its grace is 1 s).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut late = Vec::new();
        loop {
            let mut c = SigClient::connect(&url).await;
            let user = format!("late-{}", late.len());
            let r = c.join(&m, &token(&keys, &m, &user), &user).await;
            let Some(M::JoinResponse(r)) = r.message else {
                panic!("{r:?}")
            };
            late.push(c);
            let left_behind: Vec<String> = r
                .existing_participants
                .into_iter()
                .map(|p| p.name)
                .filter(|name| name.starts_with('u'))
                .collect();
            if left_behind.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "participants left behind: {left_behind:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let dropped = metric(
        &server,
        "mc_messages_dropped_total",
        "actor_type=\"meeting\"",
    );
    assert_eq!(dropped, 0.0, "disconnects were dropped");
}
