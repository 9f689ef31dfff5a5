//! Meeting limits and their flags (`docs/protocol.md` rules 6, 10).

use std::num::NonZeroU32;
use std::time::Duration;

use crate::config::{
    disconnect_grace_secs, handover_bytes, nonzero_u32, participants_per_meeting, ConfigError,
    MAX_DAY_SECS, MAX_PARTICIPANTS_PER_MEETING,
};
use crate::signaling::session::SessionConfig;

/// Per-meeting flags, flattened into the top-level `Config`.
#[derive(clap::Args, Debug, Clone)]
pub struct MeetingArgs {
    /// Seconds a participant whose connection dropped stays in the roster and may
    /// recover with its binding token (docs/protocol.md rule 6); 0 to 86400.
    #[arg(long, env = "MC_DISCONNECT_GRACE_SECS", default_value_t = 30, value_parser = disconnect_grace_secs)]
    pub disconnect_grace_secs: u64,
    /// Participants per meeting (connected or within grace); beyond it joins get
    /// CAPACITY_EXCEEDED and close 0x102. Also the fresh joins one user may make into a
    /// meeting at once (then one a second; beyond: INVALID_REQUEST, close 0x105). 1 to
    /// 10000.
    #[arg(long, env = "MC_MAX_PARTICIPANTS_PER_MEETING", default_value_t = 100, value_parser = participants_per_meeting)]
    pub max_participants_per_meeting: usize,
    /// Largest meeting hand-over this MC sends or accepts (the import body,
    /// docs/gc-api.md), in bytes, 65536 to 67108864. A meeting at every limit its
    /// clients control takes about 31 KB a participant: raise it with
    /// --max-participants-per-meeting above about 130, on every MC of the cluster
    /// alike. The admin plane holds at most four such bodies at once.
    #[arg(long, env = "MC_MAX_HANDOVER_BYTES", default_value_t = crate::migration::DEFAULT_MAX_HANDOVER_BYTES, value_parser = handover_bytes)]
    pub max_handover_bytes: usize,
    /// Streams one participant may publish (docs/protocol.md rule 10).
    #[arg(long, env = "MC_MAX_STREAMS_PER_PARTICIPANT", default_value_t = 8)]
    pub max_streams_per_participant: usize,
    /// Media handler URL offered to clients in JoinResponse.media_servers and stream
    /// assignments; repeatable or comma-separated; may be empty.
    #[arg(
        long = "media-handler-url",
        env = "MC_MEDIA_HANDLER_URLS",
        value_delimiter = ','
    )]
    pub media_handler_urls: Vec<String>,
    /// Requests per second, per meeting, that notify every participant (mute changes,
    /// host mutes and their lifting, publications) or every host (unmute requests); one
    /// user (all seats of one `sub`) may spend a quarter of it, a host all of it. Beyond
    /// either they get ErrorMessage{INVALID_REQUEST} and change nothing.
    #[arg(long, env = "MC_MEETING_BROADCAST_RATE", default_value = "100", value_parser = nonzero_u32)]
    pub meeting_broadcast_rate: NonZeroU32,
    /// Burst of such requests a meeting may take above the rate (one user: a quarter of
    /// it); at most a quarter of --session-outbound-max-frames.
    #[arg(long, env = "MC_MEETING_BROADCAST_BURST", default_value = "100", value_parser = nonzero_u32)]
    pub meeting_broadcast_burst: NonZeroU32,
}

impl MeetingArgs {
    /// The typed configuration, checked against the sessions' limits: a meeting's burst
    /// of broadcasts must fit in every recipient's outbound queue with room to spare.
    /// The ranges clap checks when parsing are checked again here, for arguments built
    /// by hand.
    pub fn meeting_config(&self, session: &SessionConfig) -> Result<MeetingConfig, ConfigError> {
        if self.disconnect_grace_secs > MAX_DAY_SECS {
            return Err(ConfigError {
                flag: "--disconnect-grace-secs",
                env: "MC_DISCONNECT_GRACE_SECS",
                reason: format!("must be 0 to {MAX_DAY_SECS}"),
            });
        }
        if !(1..=MAX_PARTICIPANTS_PER_MEETING).contains(&self.max_participants_per_meeting) {
            return Err(ConfigError {
                flag: "--max-participants-per-meeting",
                env: "MC_MAX_PARTICIPANTS_PER_MEETING",
                reason: format!("must be 1 to {MAX_PARTICIPANTS_PER_MEETING}"),
            });
        }
        let burst = self.meeting_broadcast_burst.get();
        let most = session.outbound_max_frames / BURST_SHARE_OF_OUTBOUND;
        if burst as usize > most {
            return Err(ConfigError {
                flag: "--meeting-broadcast-burst",
                env: "MC_MEETING_BROADCAST_BURST",
                reason: format!(
                    "{burst} is more than a quarter of --session-outbound-max-frames / \
                     MC_SESSION_OUTBOUND_MAX_FRAMES ({}): at most {most}, or one burst \
                     could fill every participant's outbound queue",
                    session.outbound_max_frames
                ),
            });
        }
        Ok(MeetingConfig {
            max_frame: session.max_frame,
            grace: Duration::from_secs(self.disconnect_grace_secs),
            max_participants: self.max_participants_per_meeting,
            max_streams_per_participant: self.max_streams_per_participant,
            media_servers: self.media_handler_urls.clone(),
            broadcast_rate: self.meeting_broadcast_rate.get(),
            broadcast_burst: burst,
            max_handover_bytes: self.max_handover_bytes,
            ..MeetingConfig::default()
        })
    }
}

/// Each request the broadcast budget admits may hand a recipient two frames (the
/// notification and a layout change); the rest of a recipient's queue is left for roster
/// changes and its own answers.
const BURST_SHARE_OF_OUTBOUND: usize = 4;

/// Limits of one meeting.
#[derive(Debug, Clone)]
pub struct MeetingConfig {
    /// Grace period of a dropped connection (rule 6).
    pub grace: Duration,
    /// Roster size limit, disconnected-in-grace participants included.
    pub max_participants: usize,
    /// Streams per participant (rule 10).
    pub max_streams_per_participant: usize,
    /// Media handler URLs for JoinResponse and StreamAssignment.
    pub media_servers: Vec<String>,
    /// Largest frame payload the sessions send (docs/protocol.md rule 12); JoinResponse is
    /// kept under it.
    pub max_frame: usize,
    /// Longest free-text string kept from a client (names, reasons), in bytes.
    pub max_string_len: usize,
    /// `MediaStream.stream_id` limit (rule 10).
    pub max_stream_id_len: usize,
    /// `StreamMetadata.codec` limit (rule 10).
    pub max_codec_len: usize,
    /// Simulcast layers per published stream.
    pub max_simulcast_layers: usize,
    /// Layout slots per subscriber (caps `max_streams` / `rows × columns`).
    pub max_layout_slots: usize,
    /// Entries in `pinned_users`, `excluded_users` and `stream_ids`.
    pub max_layout_list: usize,
    /// Statuses in one MediaConnectionUpdate.
    pub max_media_statuses: usize,
    /// Requests per second that notify every participant (mute changes, host mutes and
    /// their lifting, publications) or every host (unmute requests), whoever sends them:
    /// the meeting's fan-out is at most this times its participants.
    pub broadcast_rate: u32,
    /// Such requests the meeting takes at once above the rate.
    pub broadcast_burst: u32,
    /// One user's share of that budget is its rate and burst divided by this
    /// ([`USER_SHARE_DIVISOR`]; 1 lets one user spend all of it).
    pub user_share_divisor: u32,
    /// Largest hand-over (import body) sent or accepted (`--max-handover-bytes`).
    pub max_handover_bytes: usize,
}

/// The part of the meeting's broadcast budget one user (one `sub`, all its seats
/// together) may spend: a quarter of the rate and of the burst, at least one of each.
/// One participant cannot then take more than a quarter of the notifications of a
/// meeting, and the others keep the rest; a user who mutes and publishes by hand never
/// comes near it (25 a second at the default budget). A host's requests are not held to
/// it: a host muting everyone sends a host mute per participant at once, and the host
/// role is the meeting owner's to give.
pub const USER_SHARE_DIVISOR: u32 = 4;

/// The `ErrorMessage` texts of the meeting's budgets (docs/protocol.md), by which a
/// client, and the load generator's counts, tell which budget refused a request.
pub const REFUSED_MEETING_RATE: &str = "meeting message rate limit exceeded";
/// A user past its share of the meeting's budget ([`USER_SHARE_DIVISOR`]).
pub const REFUSED_USER_SHARE: &str = "user's share of the meeting message rate exceeded";
/// A user past its fresh joins ([`USER_JOIN_RATE`]).
pub const REFUSED_JOIN_RATE: &str = "join rate limit exceeded";

/// A participant past its recoveries ([`RECOVERY_BURST`]).
pub const REFUSED_RECOVERY_RATE: &str = "recovery rate limit exceeded";

/// Recoveries (rule 7) one participant may make at once; then one every
/// [`RECOVERY_EVERY_SECS`]. Each sends the whole roster to the new connection, and a
/// client may recover, reconnect and recover again in a loop; a network change, or a
/// hand-over, takes one.
pub const RECOVERY_BURST: u32 = 3;
/// Seconds between two recoveries of one participant, past [`RECOVERY_BURST`].
pub const RECOVERY_EVERY_SECS: u32 = 10;

/// A participant's recovery budget, full: its first join, or its arrival from
/// another MC.
pub(super) fn recovery_budget(now: std::time::Instant) -> crate::signaling::session::TokenBucket {
    crate::signaling::session::TokenBucket::new(1, RECOVERY_BURST * RECOVERY_EVERY_SECS, now)
}

/// Fresh joins (not recoveries, rule 7) one user may make into one meeting per second,
/// once it has made as many as the meeting has seats. Each join and each leave is
/// delivered to every participant; one join token may be used again and again.
pub const USER_JOIN_RATE: u32 = 1;

impl MeetingConfig {
    /// One user's share of the broadcast budget: (rate per second, burst).
    pub fn user_broadcast_share(&self) -> (u32, u32) {
        let share = |x: u32| (x / self.user_share_divisor.max(1)).max(1);
        (share(self.broadcast_rate), share(self.broadcast_burst))
    }

    /// A user's fresh joins at once: as many as the meeting has seats.
    pub fn join_burst(&self) -> u32 {
        u32::try_from(self.max_participants).unwrap_or(u32::MAX)
    }
}

impl Default for MeetingConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            max_participants: 100,
            max_streams_per_participant: 8,
            media_servers: Vec::new(),
            max_frame: crate::signaling::codec::DEFAULT_MAX_FRAME,
            max_string_len: 256,
            max_stream_id_len: 64,
            max_codec_len: 32,
            max_simulcast_layers: 8,
            max_layout_slots: 64,
            max_layout_list: 256,
            max_media_statuses: 32,
            broadcast_rate: 100,
            broadcast_burst: 100,
            user_share_divisor: USER_SHARE_DIVISOR,
            max_handover_bytes: crate::migration::DEFAULT_MAX_HANDOVER_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> MeetingArgs {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            m: MeetingArgs,
        }
        <P as clap::Parser>::try_parse_from(std::iter::once("mc").chain(flags.iter().copied()))
            .expect("parses")
            .m
    }

    #[test]
    fn the_broadcast_burst_must_leave_room_in_a_recipients_queue() {
        let session = SessionConfig::default();
        let c = args(&[]).meeting_config(&session).unwrap();
        assert_eq!((c.broadcast_rate, c.broadcast_burst), (100, 100));
        let c = args(&[
            "--meeting-broadcast-burst",
            "256",
            "--meeting-broadcast-rate",
            "7",
        ])
        .meeting_config(&session)
        .unwrap();
        assert_eq!((c.broadcast_rate, c.broadcast_burst), (7, 256));
        let e = args(&["--meeting-broadcast-burst", "257"])
            .meeting_config(&session)
            .unwrap_err();
        assert_eq!(
            (e.flag, e.env),
            ("--meeting-broadcast-burst", "MC_MEETING_BROADCAST_BURST")
        );
        assert!(e.to_string().contains("at most 256"), "{e}");
        // The default burst does not fit a queue of 200 frames.
        let small = SessionConfig {
            outbound_max_frames: 200,
            ..SessionConfig::default()
        };
        assert!(args(&[]).meeting_config(&small).is_err());
    }

    #[test]
    fn participants_and_grace_are_bounded_not_adjusted() {
        let session = SessionConfig::default();
        let c = args(&[
            "--max-participants-per-meeting",
            "10000",
            "--disconnect-grace-secs",
            "86400",
        ])
        .meeting_config(&session)
        .unwrap();
        assert_eq!(c.max_participants, MAX_PARTICIPANTS_PER_MEETING);
        assert_eq!(c.grace, Duration::from_secs(86_400));
        let c = args(&["--disconnect-grace-secs", "0"])
            .meeting_config(&session)
            .unwrap();
        assert_eq!(c.grace, Duration::ZERO);
        // 0 participants is refused when parsed, not turned into 1.
        #[derive(clap::Parser, Debug)]
        struct P {
            #[command(flatten)]
            m: MeetingArgs,
        }
        for bad in [
            ["--max-participants-per-meeting", "0"],
            ["--max-participants-per-meeting", "10001"],
            ["--disconnect-grace-secs", "18446744073709551615"],
        ] {
            let e = <P as clap::Parser>::try_parse_from(std::iter::once("mc").chain(bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains(bad[0]) && e.contains("must be"), "{bad:?}: {e}");
        }
        // And by meeting_config, for arguments built by hand.
        let mut a = args(&[]);
        a.max_participants_per_meeting = 0;
        let e = a.meeting_config(&session).unwrap_err();
        assert_eq!(
            (e.flag, e.env),
            (
                "--max-participants-per-meeting",
                "MC_MAX_PARTICIPANTS_PER_MEETING"
            )
        );
        assert!(e.to_string().contains("must be 1 to 10000"), "{e}");
        let mut a = args(&[]);
        a.disconnect_grace_secs = u64::MAX;
        let e = a.meeting_config(&session).unwrap_err();
        assert_eq!(
            (e.flag, e.env),
            ("--disconnect-grace-secs", "MC_DISCONNECT_GRACE_SECS")
        );
    }
}
