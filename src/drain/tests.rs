//! The drain with a fake clock: every trigger, every outcome of a hand-over, the
//! timeouts and the bounds.

use std::collections::BTreeMap;

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn target(id: &str) -> Target {
    Target {
        id: id.into(),
        webtransport_endpoint: format!("https://{id}:4433"),
        http_endpoint: format!("http://{id}:8080"),
    }
}

fn live(ids: &[&str]) -> Vec<LiveMeeting> {
    ids.iter()
        .map(|m| LiveMeeting {
            meeting_id: m.to_string(),
            participants: 3,
        })
        .collect()
}

fn report(ids: &[&str], sessions: u64) -> LiveReport {
    LiveReport {
        meetings: live(ids),
        sessions,
    }
}

fn targets(pairs: &[(&str, &str)]) -> Result<BTreeMap<String, Target>, String> {
    Ok(pairs
        .iter()
        .map(|(m, t)| (m.to_string(), target(t)))
        .collect())
}

/// A drain plus a fake clock.
struct T {
    d: Drain,
    t0: Instant,
    now: Instant,
}

impl T {
    fn new() -> Self {
        Self::with(DrainConfig::default())
    }

    fn with(cfg: DrainConfig) -> Self {
        let t0 = Instant::now();
        Self {
            d: Drain::new(cfg),
            t0,
            now: t0,
        }
    }

    fn actions(&mut self) -> Vec<DrainAction> {
        std::iter::from_fn(|| self.d.poll_action()).collect()
    }

    fn events(&mut self) -> Vec<DrainEvent> {
        std::iter::from_fn(|| self.d.poll_event()).collect()
    }

    fn advance_to(&mut self, at: Instant) {
        self.now = at;
        self.d.handle_timeout(at);
    }

    /// Runs the timers up to `t0 + d`, in order.
    fn run_until(&mut self, d: Duration) {
        let end = self.t0 + d;
        while let Some(t) = self.d.poll_timeout().filter(|t| *t <= end) {
            self.advance_to(t.max(self.now));
        }
        self.now = end;
    }

    fn signal(&mut self) -> Vec<DrainAction> {
        self.d.handle_signal(self.now);
        self.actions()
    }

    fn answer_list(&mut self, id: RequestId, r: LiveReport) -> Vec<DrainAction> {
        self.d.handle_live_meetings(self.now, id, r);
        self.actions()
    }

    fn answer_targets(
        &mut self,
        id: RequestId,
        r: Result<BTreeMap<String, Target>, String>,
    ) -> Vec<DrainAction> {
        self.d.handle_targets(self.now, id, r);
        self.actions()
    }

    fn answer_export(&mut self, id: RequestId, body: Option<&str>) -> Vec<DrainAction> {
        let body = body.map(|b| Bytes::copy_from_slice(b.as_bytes()));
        self.d.handle_exported(self.now, id, body);
        self.actions()
    }

    fn answer_import(&mut self, id: RequestId, r: Result<u16, &str>) -> Vec<DrainAction> {
        self.d
            .handle_import_response(self.now, id, r.map_err(str::to_string));
        self.actions()
    }

    /// SIGTERM, then the first list answered with `meetings`; returns the actions that
    /// follow (a `RequestTargets` when there is something to move).
    fn sigterm_with(&mut self, meetings: &[&str]) -> Vec<DrainAction> {
        let a = self.signal();
        assert_eq!(
            a[0],
            DrainAction::StopAdmitting {
                trigger: Trigger::Signal
            }
        );
        let list = list_id(&a).expect("ListMeetings");
        self.answer_list(list, report(meetings, meetings.len() as u64))
    }

    /// Runs one meeting through export → import → commit.
    fn move_one(&mut self, export: RequestId) -> Vec<DrainAction> {
        let a = self.answer_export(export, Some("{}"));
        let (send, _) = send_of(&a).expect("SendImport");
        self.answer_import(send, Ok(200))
    }
}

/// The last `ListMeetings` (the one the machine waits for).
fn list_id(a: &[DrainAction]) -> Option<RequestId> {
    a.iter().rev().find_map(|x| match x {
        DrainAction::ListMeetings { id } => Some(*id),
        _ => None,
    })
}

fn targets_req(a: &[DrainAction]) -> Option<(RequestId, Vec<String>)> {
    a.iter().find_map(|x| match x {
        DrainAction::RequestTargets { id, meetings } => {
            Some((*id, meetings.iter().map(|m| m.meeting_id.clone()).collect()))
        }
        _ => None,
    })
}

fn exports(a: &[DrainAction]) -> Vec<(RequestId, String)> {
    a.iter()
        .filter_map(|x| match x {
            DrainAction::ExportMeeting { id, meeting_id } => Some((*id, meeting_id.clone())),
            _ => None,
        })
        .collect()
}

fn send_of(a: &[DrainAction]) -> Option<(RequestId, u32)> {
    a.iter().find_map(|x| match x {
        DrainAction::SendImport { id, attempt, .. } => Some((*id, *attempt)),
        _ => None,
    })
}

fn aborted(a: &[DrainAction]) -> Vec<String> {
    a.iter()
        .filter_map(|x| match x {
            DrainAction::AbortHandover { meeting_id } => Some(meeting_id.clone()),
            _ => None,
        })
        .collect()
}

fn has(a: &[DrainAction], f: impl Fn(&DrainAction) -> bool) -> bool {
    a.iter().any(f)
}

#[test]
fn sigterm_with_nothing_live_deregisters_and_exits_at_once() {
    let mut t = T::new();
    assert!(!t.d.is_draining());
    let a = t.sigterm_with(&[]);
    assert!(t.d.is_draining());
    let [DrainAction::Deregister { id }] = a[..] else {
        panic!("{a:?}")
    };
    t.d.handle_deregistered(t.now, id);
    assert_eq!(t.actions(), [DrainAction::Exit]);
    assert_eq!(t.d.phase(), DrainPhase::Done);
    assert_eq!(
        t.events(),
        [
            DrainEvent::Started {
                trigger: Trigger::Signal
            },
            DrainEvent::AllEnded,
            DrainEvent::Deregistering,
            DrainEvent::Exiting
        ]
    );
    // A second signal exits at once, whatever the phase.
    assert_eq!(t.signal(), [DrainAction::ExitNow]);
}

#[test]
fn sigterm_moves_what_has_a_target_and_exits_when_the_rest_ends() {
    let mut t = T::new();
    let a = t.sigterm_with(&["m1", "m2"]);
    let (req, asked) = targets_req(&a).unwrap();
    assert_eq!(asked, ["m1", "m2"]);
    let a = t.answer_targets(req, targets(&[("m1", "mc-b")]));
    let ex = exports(&a);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].1, "m1");

    // Half a second later the export is back (the shards' poll, due at 250 ms, goes
    // out with it); the import is accepted a quarter of a second later.
    t.now += SEC / 2;
    let a = t.answer_export(ex[0].0, Some(r#"{"snapshot":1}"#));
    let [DrainAction::SendImport {
        id,
        ref meeting_id,
        ref target,
        ref body,
        attempt: 1,
        timeout,
    }, DrainAction::ListMeetings { id: list }] = a[..]
    else {
        panic!("{a:?}")
    };
    assert_eq!((meeting_id.as_str(), target.id.as_str()), ("m1", "mc-b"));
    assert_eq!(&body[..], br#"{"snapshot":1}"#);
    assert_eq!(timeout, 3 * SEC);
    t.now += SEC / 4;
    let a = t.answer_import(id, Ok(200));
    assert_eq!(
        a,
        [DrainAction::CommitHandover {
            meeting_id: "m1".into(),
            endpoint: "https://mc-b:4433".into(),
            reason: RedirectReason::Draining,
        }]
    );
    let ev = t.events();
    assert!(ev.contains(&DrainEvent::NoTarget {
        meeting_id: "m2".into()
    }));
    assert!(ev.contains(&DrainEvent::HandedOver {
        meeting_id: "m1".into(),
        target_id: "mc-b".into(),
        elapsed: SEC * 3 / 4,
    }));
    let s = t.d.stats();
    assert_eq!((s.migrated, s.no_target, s.refused, s.failed), (1, 1, 0, 0));
    assert_eq!(s.get(MigrationResult::Ok), 1);

    // The shards are polled; m2 still runs, then ends by itself: deregister long
    // before the drain timeout.
    t.run_until(SEC);
    assert!(t.answer_list(list, report(&["m2"], 4)).is_empty());
    t.run_until(2 * SEC);
    let list = list_id(&t.actions()).unwrap();
    let a = t.answer_list(list, report(&[], 0));
    assert!(matches!(a[..], [DrainAction::Deregister { .. }]));
}

#[test]
fn refusals_and_failures_leave_the_meeting_here() {
    let mut t = T::new();
    let a = t.sigterm_with(&["r409", "r503", "slow", "flaky"]);
    let (req, _) = targets_req(&a).unwrap();
    let a = t.answer_targets(
        req,
        targets(&[("r409", "b"), ("r503", "b"), ("slow", "c"), ("flaky", "c")]),
    );
    let ex: BTreeMap<String, RequestId> = exports(&a).into_iter().map(|(i, m)| (m, i)).collect();
    assert_eq!(ex.len(), 4);
    let mut sends = BTreeMap::new();
    for (m, id) in &ex {
        let a = t.answer_export(*id, Some("{}"));
        sends.insert(m.clone(), send_of(&a).unwrap().0);
    }
    // 409 and 503: refused, no retry, the meeting is unfrozen.
    assert_eq!(aborted(&t.answer_import(sends["r409"], Ok(409))), ["r409"]);
    assert_eq!(aborted(&t.answer_import(sends["r503"], Ok(503))), ["r503"]);
    // flaky: a transport error, then accepted on the second attempt, sent 250 ms later.
    assert!(t
        .answer_import(sends["flaky"], Err("connection reset"))
        .is_empty());
    t.run_until(SEC / 4);
    let (retry, attempt) = send_of(&t.actions()).expect("second attempt");
    assert_eq!(attempt, 2);
    let a = t.answer_import(retry, Ok(201));
    assert!(has(
        &a,
        |x| matches!(x, DrainAction::CommitHandover { meeting_id, .. } if meeting_id == "flaky")
    ));
    // slow: no answer within 3 s, twice.
    t.run_until(3 * SEC + SEC / 4);
    assert_eq!(send_of(&t.actions()).map(|s| s.1), Some(2));
    t.run_until(7 * SEC);
    let a = t.actions();
    assert_eq!(aborted(&a), ["slow"]);
    let s = t.d.stats();
    assert_eq!((s.migrated, s.refused, s.failed), (1, 2, 1));
    assert_eq!(s.import_attempts, 6);
    let ev = t.events();
    assert!(ev.contains(&DrainEvent::HandoverRefused {
        meeting_id: "r409".into(),
        target_id: "b".into(),
        status: 409
    }));
    assert!(ev.iter().any(
        |e| matches!(e, DrainEvent::HandoverFailed { meeting_id, cause, .. }
        if meeting_id == "slow" && cause == "timed out")
    ));
    assert!(ev.iter().any(
        |e| matches!(e, DrainEvent::ImportAttemptFailed { meeting_id, attempt: 1, .. }
        if meeting_id == "flaky")
    ));
    // A late answer to an attempt that timed out changes nothing.
    assert!(t.answer_import(sends["slow"], Ok(200)).is_empty());
    assert_eq!(t.d.stats().migrated, 1);
}

#[test]
fn the_drain_timeout_ends_the_rest_then_waits_for_sessions() {
    let mut t = T::with(DrainConfig {
        drain_timeout: 10 * SEC,
        ..DrainConfig::default()
    });
    let a = t.sigterm_with(&["m1"]);
    let (req, _) = targets_req(&a).unwrap();
    assert!(t.answer_targets(req, targets(&[])).is_empty());
    // Polled every 250 ms while it runs; a second round after 10 s would be too late.
    let mut polls = 0;
    while t.now < t.t0 + 10 * SEC {
        let next = t.d.poll_timeout().unwrap();
        t.advance_to(next);
        for a in t.actions() {
            match a {
                DrainAction::ListMeetings { id } => {
                    polls += 1;
                    t.d.handle_live_meetings(t.now, id, report(&["m1"], 2));
                }
                DrainAction::EndAllMeetings => {}
                other => panic!("{other:?} at {:?}", t.now - t.t0),
            }
        }
    }
    assert!(polls >= 30, "{polls}");
    assert_eq!(t.now, t.t0 + 10 * SEC);
    assert!(matches!(t.d.phase(), DrainPhase::Ending { .. }));
    assert!(t
        .events()
        .contains(&DrainEvent::DrainTimeout { meetings_left: 1 }));
    // Sessions take a moment to close; then deregister (its answer never comes: exit
    // after its timeout).
    let list = list_id(&t.actions()).unwrap_or_else(|| {
        t.run_until(10 * SEC + SEC / 4);
        list_id(&t.actions()).unwrap()
    });
    assert!(t.answer_list(list, report(&[], 3)).is_empty());
    t.run_until(11 * SEC);
    let list = list_id(&t.actions()).unwrap();
    let a = t.answer_list(list, report(&[], 0));
    assert!(matches!(a[..], [DrainAction::Deregister { .. }]));
    t.run_until(13 * SEC + SEC / 2);
    assert_eq!(t.actions(), [DrainAction::Exit]);
}

#[test]
fn sessions_that_never_close_do_not_hold_the_exit() {
    let mut t = T::with(DrainConfig {
        drain_timeout: 5 * SEC,
        migrate: false,
        ..DrainConfig::default()
    });
    t.signal();
    let mut seen = Vec::new();
    let mut now = t.t0;
    while let Some(next) = t.d.poll_timeout() {
        assert!(next >= now && next <= t.t0 + 20 * SEC);
        now = next;
        t.advance_to(next);
        for a in t.actions() {
            if let DrainAction::ListMeetings { id } = a {
                t.d.handle_live_meetings(t.now, id, report(&["m"], 1));
                continue;
            }
            assert!(
                !matches!(a, DrainAction::RequestTargets { .. }),
                "no migration without it"
            );
            seen.push((a, t.now - t.t0));
        }
    }
    // Drain timeout at 5 s, flush until 8 s, deregister timeout until 10 s.
    assert!(matches!(seen[0], (DrainAction::EndAllMeetings, d) if d == 5 * SEC));
    assert!(matches!(seen[1], (DrainAction::Deregister { .. }, d) if d == 8 * SEC));
    assert_eq!(seen[2], (DrainAction::Exit, 10 * SEC));
}

#[test]
fn an_import_in_flight_at_the_deadline_finishes_first() {
    let mut t = T::with(DrainConfig {
        drain_timeout: SEC * 3 / 2,
        ..DrainConfig::default()
    });
    let a = t.sigterm_with(&["m1", "m2"]);
    let (req, _) = targets_req(&a).unwrap();
    let a = t.answer_targets(req, targets(&[("m1", "b"), ("m2", "b")]));
    let ex = exports(&a);
    // m1 is being sent; m2's export is still out when the deadline passes.
    t.now = t.t0 + SEC;
    let send = send_of(&t.answer_export(ex[0].0, Some("{}"))).unwrap().0;
    t.run_until(SEC * 3 / 2);
    let a = t.actions();
    assert_eq!(aborted(&a), ["m2"], "not sent yet: unfrozen");
    assert!(!has(&a, |x| *x == DrainAction::EndAllMeetings));
    assert!(t.events().contains(&DrainEvent::HandoverCancelled {
        meeting_id: "m2".into()
    }));
    // m1's answer comes 1.5 s after it was sent, past the deadline: moved; then the
    // rest is ended.
    t.now = t.t0 + 2 * SEC + SEC / 2;
    let a = t.answer_import(send, Ok(200));
    assert!(matches!(&a[0], DrainAction::CommitHandover { meeting_id, .. } if meeting_id == "m1"));
    assert_eq!(a[1], DrainAction::EndAllMeetings);
    // A late export answer for m2 is ignored.
    assert!(t.answer_export(ex[1].0, Some("{}")).is_empty());
}

#[test]
fn a_gc_drain_migrates_stays_up_and_can_be_undone() {
    let mut t = T::new();
    t.d.handle_gc_status(t.now, true);
    let a = t.actions();
    assert_eq!(
        a[0],
        DrainAction::StopAdmitting {
            trigger: Trigger::Gc
        }
    );
    assert!(t.d.is_draining());
    let list = list_id(&a).unwrap();
    let a = t.answer_list(list, report(&["m1", "m2", "m3"], 9));
    let (req, _) = targets_req(&a).unwrap();
    let a = t.answer_targets(req, targets(&[("m1", "b"), ("m2", "b")]));
    let ex = exports(&a);
    // m1 goes out; m2's export is pending when the GC says active again.
    let send = send_of(&t.answer_export(ex[0].0, Some("{}"))).unwrap().0;
    t.d.handle_gc_status(t.now, true); // a repeat changes nothing
    assert!(t.actions().is_empty());
    t.d.handle_gc_status(t.now, false);
    let a = t.actions();
    assert_eq!(
        a,
        [
            DrainAction::AbortHandover {
                meeting_id: "m2".into()
            },
            DrainAction::ResumeAdmitting
        ]
    );
    assert!(!t.d.is_draining());
    // The import already sent finishes: the target took it, so it stays moved.
    let a = t.answer_import(send, Ok(200));
    assert!(
        matches!(&a[..], [DrainAction::CommitHandover { meeting_id, .. }] if meeting_id == "m1")
    );
    assert!(t.answer_export(ex[1].0, Some("{}")).is_empty());
    // Nothing else ever happens: no rounds, no deregister, no exit.
    t.run_until(120 * SEC);
    assert!(t.actions().is_empty());
    assert_eq!(t.d.poll_timeout(), None);
    assert!(t.events().contains(&DrainEvent::Resumed));
}

#[test]
fn a_gc_drain_offers_each_meeting_a_bounded_number_of_rounds() {
    let mut t = T::with(DrainConfig {
        rounds: 3,
        round_interval: 10 * SEC,
        ..DrainConfig::default()
    });
    t.d.handle_gc_status(t.now, true);
    let mut asked_at = Vec::new();
    t.run_until(Duration::ZERO);
    let mut pending = t.actions();
    for _ in 0..10 {
        for a in std::mem::take(&mut pending) {
            match a {
                DrainAction::ListMeetings { id } => {
                    t.d.handle_live_meetings(t.now, id, report(&["m1"], 3))
                }
                DrainAction::RequestTargets { id, .. } => {
                    asked_at.push(t.now - t.t0);
                    t.d.handle_targets(t.now, id, Err("GC down".into()));
                }
                _ => {}
            }
        }
        pending = t.actions();
        if pending.is_empty() {
            match t.d.poll_timeout() {
                Some(next) => {
                    t.advance_to(next);
                    pending = t.actions();
                }
                None => break,
            }
        }
    }
    assert_eq!(asked_at, [Duration::ZERO, 10 * SEC, 20 * SEC]);
    assert_eq!(t.d.stats().no_target, 3);
    assert_eq!(t.d.stats().rounds, 3);
    assert!(t
        .events()
        .iter()
        .any(|e| matches!(e, DrainEvent::TargetsFailed { cause } if cause == "GC down")));
    // Still up, still draining; the meeting stays (rule 21).
    assert!(matches!(t.d.phase(), DrainPhase::GcDraining { .. }));
    assert_eq!(t.d.poll_timeout(), None);

    // SIGTERM now: a fresh round at once, and the SIGTERM deadline.
    let a = t.signal();
    assert_eq!(
        a[0],
        DrainAction::StopAdmitting {
            trigger: Trigger::Signal
        }
    );
    let list = list_id(&a).unwrap();
    let a = t.answer_list(list, report(&["m1"], 3));
    assert!(targets_req(&a).is_some());
    assert!(
        matches!(t.d.phase(), DrainPhase::ShuttingDown { deadline } if deadline == t.now + 60 * SEC)
    );
}

#[test]
fn the_gc_and_shards_get_bounded_time() {
    let mut t = T::new();
    let a = t.sigterm_with(&["m1", "m2"]);
    let (req, _) = targets_req(&a).unwrap();
    // The GC does not answer within 3 s: no target this round.
    t.run_until(3 * SEC);
    t.actions();
    assert_eq!(t.d.stats().no_target, 2);
    assert!(
        t.answer_targets(req, targets(&[("m1", "b")])).is_empty(),
        "late"
    );
    // Next round at 13 s; the shard then sits on the export for 2 s: failed, unfrozen.
    t.run_until(13 * SEC);
    let list = list_id(&t.actions()).unwrap();
    let (req, asked) = targets_req(&t.answer_list(list, report(&["m1", "m2"], 2))).unwrap();
    assert_eq!(asked, ["m1", "m2"]);
    let ex = exports(&t.answer_targets(req, targets(&[("m1", "b")])));
    t.run_until(15 * SEC);
    assert_eq!(aborted(&t.actions()), ["m1"]);
    assert_eq!(t.d.stats().failed, 1);
    assert!(t.answer_export(ex[0].0, Some("{}")).is_empty(), "late");
    // A list the shards never answer is given up and asked again.
    t.run_until(15 * SEC + SEC / 4);
    assert!(list_id(&t.actions()).is_some());
    t.run_until(16 * SEC + SEC / 2);
    assert!(t.events().contains(&DrainEvent::ListTimedOut));
    assert!(list_id(&t.actions()).is_some());
}

#[test]
fn hand_overs_are_limited_in_number() {
    let mut t = T::with(DrainConfig {
        max_concurrent_handovers: 3,
        ..DrainConfig::default()
    });
    let ids = ["a", "b", "c", "d", "e"];
    let a = t.sigterm_with(&ids);
    let (req, _) = targets_req(&a).unwrap();
    let pairs: Vec<(&str, &str)> = ids.iter().map(|m| (*m, "x")).collect();
    let ex = exports(&t.answer_targets(req, targets(&pairs)));
    assert_eq!(
        ex.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(t.d.handovers_in_flight(), 3);
    // One finishes (the meeting ended by itself), the next starts.
    let a = t.answer_export(ex[0].0, None);
    assert_eq!(
        exports(&a).iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        ["d"]
    );
    assert!(t.events().contains(&DrainEvent::MeetingGone {
        meeting_id: "a".into()
    }));
    let a = t.move_one(ex[1].0);
    assert_eq!(
        exports(&a).iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        ["e"]
    );
}

#[test]
fn an_oversize_export_is_refused_locally() {
    let mut t = T::new();
    let a = t.sigterm_with(&["big"]);
    let (req, _) = targets_req(&a).unwrap();
    let ex = exports(&t.answer_targets(req, targets(&[("big", "b")])));
    let body = "x".repeat(DrainConfig::default().max_handover_bytes + 1);
    let a = t.answer_export(ex[0].0, Some(&body));
    assert_eq!(aborted(&a), ["big"]);
    assert!(send_of(&a).is_none());
    assert_eq!(t.d.stats().refused, 1);
}

/// The limit is the MC's own `--max-handover-bytes`.
#[test]
fn an_export_over_the_configured_limit_is_refused_locally() {
    let mut t = T::with(DrainConfig {
        max_handover_bytes: 65_536,
        ..DrainConfig::default()
    });
    let a = t.sigterm_with(&["big", "fits"]);
    let (req, _) = targets_req(&a).unwrap();
    let ex = exports(&t.answer_targets(req, targets(&[("big", "b"), ("fits", "b")])));
    let (big, fits) = if ex[0].1 == "big" {
        (ex[0].0, ex[1].0)
    } else {
        (ex[1].0, ex[0].0)
    };
    let a = t.answer_export(big, Some(&"x".repeat(65_537)));
    assert_eq!(aborted(&a), ["big"]);
    let a = t.answer_export(fits, Some(&"x".repeat(65_536)));
    assert!(send_of(&a).is_some(), "a body at the limit is sent");
}

#[test]
fn without_a_gc_there_is_no_migration_and_no_deregister() {
    let mut t = T::with(DrainConfig {
        gc: false,
        ..DrainConfig::default()
    });
    let a = t.sigterm_with(&["m1"]);
    assert!(a.is_empty(), "{a:?}");
    t.run_until(SEC / 4);
    let list = list_id(&t.actions()).unwrap();
    assert_eq!(t.answer_list(list, report(&[], 0)), [DrainAction::Exit]);
    // The GC's status means nothing once shutting down.
    t.d.handle_gc_status(t.now, false);
    assert!(t.actions().is_empty());
}

#[test]
fn answers_to_requests_it_did_not_make_are_ignored() {
    let mut t = T::new();
    let bogus = RequestId(999);
    t.d.handle_live_meetings(t.now, bogus, report(&[], 0));
    t.d.handle_targets(t.now, bogus, targets(&[("m", "b")]));
    t.d.handle_exported(t.now, bogus, Some(Bytes::new()));
    t.d.handle_import_response(t.now, bogus, Ok(200));
    t.d.handle_deregistered(t.now, bogus);
    assert!(t.actions().is_empty());
    assert!(!t.d.is_draining());
    assert_eq!(t.d.poll_timeout(), None);
    // The import reply classes.
    for (status, want) in [
        (200, ImportReply::Accepted),
        (204, ImportReply::Accepted),
        (400, ImportReply::Refused),
        (401, ImportReply::Refused),
        (409, ImportReply::Refused),
        (413, ImportReply::Refused),
        (503, ImportReply::Refused),
        (500, ImportReply::Retry),
        (502, ImportReply::Retry),
        (301, ImportReply::Retry),
    ] {
        assert_eq!(ImportReply::of_status(status), want, "{status}");
    }
    let labels: Vec<&str> = [
        MigrationResult::Ok,
        MigrationResult::Refused,
        MigrationResult::Failed,
        MigrationResult::NoTarget,
    ]
    .map(MigrationResult::label)
    .to_vec();
    assert_eq!(labels, ["ok", "refused", "failed", "no_target"]);
}
