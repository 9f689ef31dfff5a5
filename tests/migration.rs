//! Live migration end to end (docs/protocol.md rules 17–21, docs/gc-api.md "Migration"):
//! two real `mc-service` processes and `mc-devgc` on loopback, sharing one dev dir (one
//! signing key, one binding secret, as the MCs of a cluster do).
//!
//! - SIGTERM on MC-A, and the GC setting MC-A `draining`: a meeting spread over both of
//!   MC-A's shards moves to MC-B; every participant gets `RedirectToMc` with MC-B's
//!   endpoint, recovers there with the same identity and finds the same roster, mutes
//!   (with `host_muted_by`), streams and stream assignments; nobody sees a leave or a
//!   join; messages after the move arrive in order; MC-A exits 0 long before its drain
//!   timeout (SIGTERM) or stays up (GC).
//! - A participant that does not follow leaves with TIMEOUT on MC-B after its grace.
//! - Refusals: a bad signature is 401 and creates nothing (an oversize body 413); a
//!   draining target answers 503 and the meeting stays on MC-A until the drain timeout
//!   ends it (MEETING_ENDED).
//! - Without a GC nothing migrates, and `--redirect-endpoint` applies at the drain's end.

mod harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use harness::client::{runtime, SigClient, M};
use harness::devgc::DevGc;
use harness::{free_tcp_port, http_raw, split_response, Server};
use mc_service::auth::jwt::Role;
use mc_service::auth::DevKeys;
use mc_service::signaling::proto::{client_message as C, pb, ServerMessage};

/// Two MCs registered with one development GC.
struct Cluster {
    gc: DevGc,
    a: Server,
    b: Server,
}

impl Cluster {
    fn start(extra_a: &[&str], extra_b: &[&str]) -> Cluster {
        let gc = DevGc::start(free_tcp_port(), None);
        let url = gc.url();
        let args = |id: &'static str, extra: &[&str]| -> Vec<String> {
            [
                "--shards",
                "2",
                "--mc-id",
                id,
                "--gc-registration-url",
                &url,
                "--gc-heartbeat-interval-secs",
                "1",
            ]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
        };
        let a_args = args("mc-a", extra_a);
        let a = Server::start_dev(&a_args.iter().map(String::as_str).collect::<Vec<_>>());
        let b_args = args("mc-b", extra_b);
        let b = Server::start_dev_in(
            &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
            &a.dev_dir,
        );
        for s in [&a, &b] {
            s.wait_for_log("GC registration successful", Duration::from_secs(10));
        }
        wait_until("both MCs active at the GC", Duration::from_secs(10), || {
            gc.row_status("mc-a").as_deref() == Some("active")
                && gc.row_status("mc-b").as_deref() == Some("active")
        });
        Cluster { gc, a, b }
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sum of every series of `name` whose line contains all of `labels`.
fn metric(server: &Server, name: &str, labels: &[&str]) -> f64 {
    let (_, _, body) = server.get("/metrics");
    body.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lb| l.contains(lb)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn shard_connections(server: &Server) -> Vec<f64> {
    (0..2)
        .map(|s| {
            metric(
                server,
                "mc_connections_active",
                &[&format!("shard=\"{s}\"")],
            )
        })
        .collect()
}

fn token(dir: &Path, meeting: &str, user: &str, role: Role) -> String {
    DevKeys::load_or_create(dir).unwrap().mint_meeting_token(
        meeting,
        user,
        role,
        SystemTime::now(),
        Duration::from_secs(600),
    )
}

/// One participant: its client and the identity its first JoinResponse gave it.
struct P {
    name: String,
    c: SigClient,
    pid: String,
    user_id: u64,
}

async fn join(url: &str, dir: &Path, meeting: &str, user: &str, role: Role, follow: bool) -> P {
    let mut c = SigClient::connect(url).await;
    let r = c
        .join(meeting, &token(dir, meeting, user, role), user)
        .await;
    let Some(M::JoinResponse(jr)) = r.message else {
        panic!("{user} in {meeting}: {r:?}")
    };
    if follow {
        let (dir, meeting, user) = (dir.to_path_buf(), meeting.to_string(), user.to_string());
        c.follow_redirects(move || token(&dir, &meeting, &user, role));
    }
    P {
        name: user.to_string(),
        c,
        pid: jr.participant_id,
        user_id: jr.user_id,
    }
}

/// Read until nothing arrives for `quiet`.
async fn pump(c: &mut SigClient, quiet: Duration) {
    while c.next(quiet).await.is_some() {}
}

/// What one participant knows of the meeting, rebuilt from the messages it received.
#[derive(Debug, Default, PartialEq)]
struct View {
    me: (String, u64),
    /// Everyone else, with their streams (sorted by id).
    roster: BTreeMap<String, pb::Participant>,
    /// The last mute update of every participant with a flag set.
    mutes: BTreeMap<String, pb::ParticipantMuteUpdate>,
    assignments: Option<Vec<pb::StreamAssignment>>,
}

fn view(msgs: &[ServerMessage]) -> View {
    let mut v = View::default();
    for m in msgs.iter().filter_map(|m| m.message.as_ref()) {
        match m {
            M::JoinResponse(r) => {
                v.me = (r.participant_id.clone(), r.user_id);
                v.roster = r
                    .existing_participants
                    .iter()
                    .map(|p| (p.participant_id.clone(), p.clone()))
                    .collect();
            }
            M::ParticipantJoined(j) => {
                if let Some(p) = &j.participant {
                    v.roster.insert(p.participant_id.clone(), p.clone());
                }
            }
            M::ParticipantLeft(l) => {
                v.roster.remove(&l.participant_id);
            }
            M::StreamPublished(s) => {
                if let (Some(p), Some(stream)) = (v.roster.get_mut(&s.participant_id), &s.stream) {
                    p.streams.retain(|x| x.stream_id != stream.stream_id);
                    p.streams.push(stream.clone());
                }
            }
            M::ParticipantMuteUpdate(u) => {
                v.mutes.insert(u.participant_id.clone(), u.clone());
            }
            M::StreamAssignments(a) => v.assignments = Some(a.assignments.clone()),
            _ => {}
        }
    }
    for p in v.roster.values_mut() {
        p.streams.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
    }
    v.mutes.retain(|_, u| {
        u.audio_self_muted || u.video_self_muted || u.audio_host_muted || u.video_host_muted
    });
    v
}

fn publish(id: &str, kind: pb::StreamType) -> C::Message {
    C::Message::PublishStream(pb::PublishStream {
        stream_id: id.into(),
        stream_type: kind as i32,
        metadata: Some(pb::StreamMetadata {
            codec: "vp8".into(),
            max_bitrate: 500_000,
            video: None,
        }),
    })
}

fn mute(audio: bool, video: bool) -> C::Message {
    C::Message::MuteRequest(pb::MuteRequest {
        audio_muted: audio,
        video_muted: video,
    })
}

/// A meeting on `server` with a host (alice), a host-muted participant (dave), published
/// streams (bob, carol), a layout subscription (carol) and a self-muted one (bob), its
/// connections on both of the server's shards. Everyone has seen everything on return.
async fn busy_meeting(server: &Server, meeting: &str, follow: bool) -> Vec<P> {
    let url = format!("https://{}/", server.webtransport);
    let dir = server.dev_dir.clone();
    let mut ps = vec![join(&url, &dir, meeting, "alice", Role::Host, follow).await];
    for user in ["bob", "carol", "dave"] {
        ps.push(join(&url, &dir, meeting, user, Role::Participant, follow).await);
    }
    for i in 0..8 {
        if shard_connections(server).iter().all(|&c| c > 0.0) {
            break;
        }
        let user = format!("extra{i}");
        ps.push(join(&url, &dir, meeting, &user, Role::Participant, follow).await);
    }
    let per_shard = shard_connections(server);
    assert!(
        per_shard.iter().all(|&c| c > 0.0),
        "participants on both shards: {per_shard:?}"
    );
    let dave = ps[3].pid.clone();
    ps[1]
        .c
        .send(publish("cam-b", pb::StreamType::VideoCamera))
        .await;
    ps[1].c.send(publish("mic-b", pb::StreamType::Audio)).await;
    ps[2]
        .c
        .send(publish("scr-c", pb::StreamType::VideoScreen))
        .await;
    ps[1].c.send(mute(false, true)).await;
    ps[0]
        .c
        .send(C::Message::HostMuteRequest(pb::HostMuteRequest {
            participant_id: dave,
            audio_muted: true,
            video_muted: false,
            reason: "noise".into(),
        }))
        .await;
    ps[2]
        .c
        .send(C::Message::SubscribeToLayout(pb::SubscribeToLayout {
            layout_type: pb::LayoutType::Grid as i32,
            config: Some(pb::LayoutConfig {
                rows: 2,
                columns: 2,
                ..Default::default()
            }),
            stream_ids: vec![11, 12, 13, 14],
        }))
        .await;
    for p in &mut ps {
        pump(&mut p.c, Duration::from_millis(400)).await;
    }
    // The state the move must keep, as everyone sees it.
    let alice = ps[0].pid.clone();
    for p in &ps {
        let v = view(&p.c.received);
        let d = v.mutes.get(&ps[3].pid).expect("dave's host mute seen");
        assert!(d.audio_host_muted && d.host_muted_by == alice, "{d:?}");
        assert!(v.mutes.get(&ps[1].pid).is_some_and(|u| u.video_self_muted));
        if p.name != "bob" {
            assert_eq!(v.roster[&ps[1].pid].streams.len(), 2, "{}: {v:?}", p.name);
        }
    }
    let assignments = view(&ps[2].c.received).assignments.expect("carol's layout");
    assert!(!assignments.is_empty());
    ps
}

/// Every participant follows its redirect at once (concurrently, as real clients do)
/// and is back with its recovery JoinResponse; returns them in their original order.
async fn follow_all(ps: Vec<P>) -> Vec<P> {
    let order: Vec<String> = ps.iter().map(|p| p.name.clone()).collect();
    let mut set = tokio::task::JoinSet::new();
    for mut p in ps {
        set.spawn(async move {
            p.c.expect("RedirectToMc", |m| matches!(m, M::RedirectToMc(_)))
                .await;
            p.c.expect("the recovery JoinResponse", |m| {
                matches!(m, M::JoinResponse(_))
            })
            .await;
            p
        });
    }
    let mut back = Vec::new();
    while let Some(p) = set.join_next().await {
        back.push(p.expect("a participant followed its redirect"));
    }
    back.sort_by_key(|p| order.iter().position(|n| *n == p.name));
    back
}

/// Index just past the last `RedirectToMc` in `msgs`.
fn after_redirect(msgs: &[ServerMessage]) -> usize {
    msgs.iter()
        .rposition(|m| matches!(m.message, Some(M::RedirectToMc(_))))
        .map_or(0, |i| i + 1)
}

/// Moves the busy meeting and checks rules 17–20 for everyone; `trigger` starts the
/// drain of MC-A. Returns the participants, now on MC-B.
async fn move_and_check(cluster: &Cluster, meeting: &str, trigger: impl FnOnce()) -> Vec<P> {
    let ps = busy_meeting(&cluster.a, meeting, true).await;
    let before: Vec<View> = ps.iter().map(|p| view(&p.c.received)).collect();
    let marks: Vec<usize> = ps.iter().map(|p| p.c.received.len()).collect();
    trigger();
    let mut ps = follow_all(ps).await;
    for p in &mut ps {
        pump(&mut p.c, Duration::from_millis(400)).await;
    }
    let b_endpoint = format!("https://{}", cluster.b.webtransport);
    for ((p, before), mark) in ps.iter().zip(&before).zip(&marks) {
        let redirect = &p.c.redirects[..];
        assert_eq!(redirect.len(), 1, "{}: one redirect", p.name);
        assert_eq!(redirect[0].new_mc_endpoint, b_endpoint);
        assert_eq!(redirect[0].meeting_id, meeting);
        assert_eq!(redirect[0].reason, "draining");
        let moved = &p.c.received[after_redirect(&p.c.received)..];
        let after = view(moved);
        assert_eq!(
            after.me,
            (p.pid.clone(), p.user_id),
            "{}: same identity",
            p.name
        );
        assert_eq!(
            after.roster, before.roster,
            "{}: same roster and streams",
            p.name
        );
        assert_eq!(after.mutes, before.mutes, "{}: same mutes", p.name);
        assert_eq!(
            after.assignments, before.assignments,
            "{}: same layout",
            p.name
        );
        let join_or_leave = p.c.received[*mark..].iter().find(|m| {
            matches!(
                m.message,
                Some(M::ParticipantLeft(_) | M::ParticipantJoined(_))
            )
        });
        assert!(join_or_leave.is_none(), "{}: {join_or_leave:?}", p.name);
    }

    // Rules 3 and 14 hold again on MC-B: alice's updates reach everyone, in order.
    let marks: Vec<usize> = ps.iter().map(|p| p.c.received.len()).collect();
    let toggles = [true, false, true, false, true];
    for t in toggles {
        ps[0].c.send(mute(false, t)).await;
    }
    let alice = ps[0].pid.clone();
    for (p, mark) in ps.iter_mut().zip(marks) {
        while view_of(&p.c.received[mark..], &alice).len() < toggles.len() {
            let got = p.c.next(Duration::from_secs(5)).await;
            assert!(got.is_some(), "{}: alice's updates stopped", p.name);
        }
        assert_eq!(
            view_of(&p.c.received[mark..], &alice),
            toggles,
            "{}",
            p.name
        );
    }
    assert_eq!(
        metric(
            &cluster.b,
            "mc_meetings_migrated_total",
            &["direction=\"in\"", "result=\"ok\""]
        ),
        1.0
    );
    assert_eq!(
        cluster.gc.owners()[meeting],
        "mc-b",
        "the GC knows the new owner"
    );
    ps
}

/// `video_self_muted` of every mute update about `pid`, in order.
fn view_of(msgs: &[ServerMessage], pid: &str) -> Vec<bool> {
    msgs.iter()
        .filter_map(|m| match &m.message {
            Some(M::ParticipantMuteUpdate(u)) if u.participant_id == pid => {
                Some(u.video_self_muted)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn sigterm_moves_a_live_meeting_to_another_mc() {
    let mut cluster = Cluster::start(&["--drain-timeout-secs", "30"], &[]);
    let t0 = std::cell::Cell::new(None);
    runtime().block_on(async {
        let ps = move_and_check(&cluster, "mig-sigterm", || {
            t0.set(Some(Instant::now()));
            cluster.a.signal(libc::SIGTERM);
        })
        .await;
        for p in ps {
            p.c.leave().await;
        }
    });
    let status = cluster
        .a
        .wait_exit(Duration::from_secs(15))
        .expect("MC-A exits once its meeting moved");
    let took = t0.get().expect("signalled").elapsed();
    assert!(status.success(), "{status:?}\n{}", cluster.a.log());
    assert!(
        took < Duration::from_secs(15),
        "exit took {took:?} of a 30 s drain"
    );
    let log = cluster.a.log();
    for line in [
        "Drain started",
        "Migration: asking the GC for target MCs",
        "Migration: meeting handed over; participants redirected",
        "Drain: no live meetings left",
        "Drain complete",
        "Shutdown complete",
    ] {
        assert!(log.contains(line), "{line:?} not logged:\n{log}");
    }
    assert!(!log.contains("Drain timeout reached"), "{log}");
}

#[test]
fn gc_draining_moves_the_meeting_and_the_mc_stays_up() {
    let mut cluster = Cluster::start(&[], &[]);
    runtime().block_on(async {
        let ps = move_and_check(&cluster, "mig-gc", || {
            cluster.gc.set_status("mc-a", "draining")
        })
        .await;
        let a = &cluster.a;
        assert_eq!(a.get("/health").0, 200);
        let (status, _, body) = a.get("/ready");
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("\"status\":\"draining\""), "{body}");
        assert_eq!(metric(a, "mc_meetings_active", &[]), 0.0);
        assert_eq!(
            metric(
                a,
                "mc_meetings_migrated_total",
                &["direction=\"out\"", "result=\"ok\""]
            ),
            1.0
        );
        assert_eq!(
            metric(a, "mc_meeting_handover_duration_seconds_count", &[]),
            1.0
        );
        assert_eq!(metric(a, "mc_draining", &[]), 1.0);
        for p in ps {
            p.c.leave().await;
        }
    });
    assert!(
        cluster.a.wait_exit(Duration::from_millis(500)).is_none(),
        "MC-A stays up"
    );
}

#[test]
fn a_participant_that_does_not_follow_times_out_on_the_target() {
    let cluster = Cluster::start(&[], &["--disconnect-grace-secs", "3"]);
    let url = format!("https://{}/", cluster.a.webtransport);
    let dir = cluster.a.dev_dir.clone();
    runtime().block_on(async {
        let m = "mig-stray";
        let mut ps = vec![
            join(&url, &dir, m, "alice", Role::Host, true).await,
            join(&url, &dir, m, "bob", Role::Participant, true).await,
        ];
        let mut stray = join(&url, &dir, m, "stray", Role::Participant, false).await;
        for p in &mut ps {
            pump(&mut p.c, Duration::from_millis(300)).await;
        }
        cluster.gc.set_status("mc-a", "draining");
        stray
            .c
            .expect("RedirectToMc", |m| matches!(m, M::RedirectToMc(_)))
            .await;
        let mut ps = follow_all(ps).await;
        // MC-B holds the stray in grace (3 s), then it leaves with TIMEOUT.
        let t = Instant::now();
        for p in &mut ps {
            let left =
                p.c.expect("the stray's TIMEOUT", |m| {
                    matches!(m, M::ParticipantLeft(_))
                })
                .await;
            let M::ParticipantLeft(l) = left else {
                unreachable!()
            };
            assert_eq!(l.participant_id, stray.pid);
            assert_eq!(l.reason, pb::LeaveReason::Timeout as i32);
        }
        assert!(
            t.elapsed() >= Duration::from_secs(2),
            "left before its grace"
        );
        drop(stray);
        for p in ps {
            p.c.leave().await;
        }
    });
}

/// A signed-looking import body for `meeting` (its content does not matter: a bad
/// signature is refused before the body is read).
fn import_post(meeting: &str, signature: &str) -> String {
    let body = serde_json::json!({
        "source": {"id": "mc-x", "webtransport_endpoint": "https://127.0.0.1:1",
                   "http_endpoint": "http://127.0.0.1:1"},
        "snapshot": {"meeting_id": meeting},
    })
    .to_string();
    format!(
        "POST /internal/v1/meetings/import HTTP/1.1\r\nHost: mc\r\nContent-Type: application/json\r\nX-MC-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn refusals_leave_the_meeting_on_the_source() {
    let mut cluster = Cluster::start(
        &["--drain-timeout-secs", "4"],
        &["--live-migration", "off", "--drain-timeout-secs", "60"],
    );
    let (a, b) = (&cluster.a, &cluster.b);

    // A bad signature: 401, nothing created, counted.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let bad = format!("t={now},v1={}", "0".repeat(64));
    let (status, _, body) = split_response(&http_raw(b.http, &import_post("forged", &bad)));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"accepted\":false"), "{body}");
    assert_eq!(metric(b, "mc_meetings_active", &[]), 0.0);
    assert_eq!(
        metric(
            b,
            "mc_meetings_migrated_total",
            &["direction=\"in\"", "result=\"unauthorized\""]
        ),
        1.0
    );
    // Over the size limit: 413 before a byte of the body is read, counted.
    let (status, _, body) = split_response(&http_raw(
        b.http,
        "POST /internal/v1/meetings/import HTTP/1.1\r\nHost: mc\r\nContent-Length: 5242880\r\nConnection: close\r\n\r\n",
    ));
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        metric(
            b,
            "mc_meetings_migrated_total",
            &["direction=\"in\"", "result=\"too_large\""]
        ),
        1.0
    );

    let dir = a.dev_dir.clone();
    let url_a = format!("https://{}/", a.webtransport);
    let url_b = format!("https://{}/", b.webtransport);
    runtime().block_on(async {
        // MC-B drains (and, with migration off, keeps its own meeting meanwhile); the
        // GC still lists it active, so it is MC-A's target, and it answers 503.
        let zed = join(&url_b, &dir, "b-own", "zed", Role::Participant, false).await;
        b.signal(libc::SIGTERM);
        wait_until("MC-B draining", Duration::from_secs(5), || {
            b.get("/ready").0 == 503
        });
        let mut alice = join(&url_a, &dir, "mig-refused", "alice", Role::Host, true).await;
        let mut bob = join(&url_a, &dir, "mig-refused", "bob", Role::Participant, true).await;
        pump(&mut alice.c, Duration::from_millis(300)).await;
        let t0 = Instant::now();
        a.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while metric(a, "mc_meetings_migrated_total", &["direction=\"out\"", "result=\"refused\""]) < 1.0 {
            assert!(Instant::now() < deadline, "no refusal counted:\n{}", a.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(metric(b, "mc_meetings_migrated_total", &["direction=\"in\"", "result=\"draining\""]) >= 1.0);

        // The meeting stays on MC-A and works until the drain timeout ends it.
        alice.c.send(mute(true, false)).await;
        bob.c
            .expect("alice's mute on MC-A", |m| matches!(m, M::ParticipantMuteUpdate(u) if u.audio_self_muted))
            .await;
        for p in [&mut alice, &mut bob] {
            p.c.expect("MEETING_ENDED", |m| {
                matches!(m, M::ParticipantLeft(l) if l.reason == pb::LeaveReason::MeetingEnded as i32)
            })
            .await;
            p.c.expect_closed().await;
            assert!(p.c.redirects.is_empty(), "{}: redirected", p.name);
            assert!(
                !p.c.received.iter().any(|m| matches!(m.message, Some(M::RedirectToMc(_)))),
                "{}: {:?}",
                p.name,
                p.c.received
            );
        }
        assert!(t0.elapsed() >= Duration::from_secs(4), "ended before the drain timeout");
        drop(zed);
    });
    let status = cluster
        .a
        .wait_exit(Duration::from_secs(10))
        .expect("MC-A exits");
    assert!(status.success(), "{status:?}");
    let log = cluster.a.log();
    for line in [
        "Migration: the target refused the meeting; it stays here",
        "Drain timeout reached",
        "Drain complete",
    ] {
        assert!(log.contains(line), "{line:?} not logged:\n{log}");
    }
}

#[test]
fn without_a_gc_the_fixed_redirect_endpoint_still_applies() {
    let mut server = Server::start_dev(&[
        "--shards",
        "1",
        "--drain-timeout-secs",
        "1",
        "--redirect-endpoint",
        "https://mc-elsewhere.example:4433",
    ]);
    let url = format!("https://{}/", server.webtransport);
    let dir = server.dev_dir.clone();
    runtime().block_on(async {
        let mut alice = join(&url, &dir, "dev-redirect", "alice", Role::Host, false).await;
        server.signal(libc::SIGTERM);
        let r = alice
            .c
            .expect("RedirectToMc", |m| matches!(m, M::RedirectToMc(_)))
            .await;
        let M::RedirectToMc(r) = r else {
            unreachable!()
        };
        assert_eq!(r.new_mc_endpoint, "https://mc-elsewhere.example:4433");
        assert_eq!(
            (r.meeting_id.as_str(), r.reason.as_str()),
            ("dev-redirect", "draining")
        );
        alice.c.expect_closed().await;
    });
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
    assert!(
        !server.log().contains("Migration:"),
        "no migration without a GC"
    );
}
