//! `POST /internal/v1/meetings/import`: a meeting another MC of the cluster hands over
//! (docs/gc-api.md "Hand over a meeting", docs/protocol.md rules 17–19).
//!
//! 1. The admin plane bounds the body (`--max-handover-bytes`, 413), then
//!    [`check_request`] checks the signature (401), the body and the snapshot (400).
//!    Nothing reaches a shard before that.
//! 2. The [`ImportHost`] forwards the request to the meeting's owner shard and waits,
//!    bounded, for its decision ([`crate::migration::decide`]: 200, 409, 503); no answer
//!    in time is 503 with the `timeout` result, and the shard then refuses the late
//!    request, so the meeting never appears behind the answer's back.
//!
//! Every answer is counted in `mc_meetings_migrated_total{direction="in",result}` and
//! logged; a refused signature is logged with its precise reason, never sent. Besides
//! the labels of [`ImportAnswer::label`], `timeout` (the shard did not answer in time)
//! and `busy` (the admin plane holds as many bodies as it may) are both answered 503.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use super::http::{Method, Request, Response};
use crate::meeting::MeetingConfig;
use crate::migration::{check_request, ImportAnswer, ImportRequest, MigrationKey};

/// The `result` label of an import the meeting's shard did not answer in time.
pub const TIMEOUT_LABEL: &str = "timeout";
/// The `result` label of an import refused because the admin plane holds as many
/// request bodies as it may (`admin::BODIES_IN_FLIGHT`).
pub const BUSY_LABEL: &str = "busy";

/// A shard's answer on its way, or `None` when it did not come in time.
pub type Forwarded<'a> = Pin<Box<dyn Future<Output = Option<ImportAnswer>> + 'a>>;

/// What the import route needs from the rest of the process.
pub trait ImportHost {
    /// The key derived from the cluster's binding secret.
    fn key(&self) -> &MigrationKey;
    /// This MC's meeting limits, which a snapshot must fit.
    fn meeting_config(&self) -> &MeetingConfig;
    /// Hand `req` to the meeting's owner shard and wait (bounded) for its decision.
    fn forward(&self, req: ImportRequest) -> Forwarded<'_>;
    /// Count one answer by its `result` label.
    fn count(&self, result: &'static str);
}

/// Serve one import request whose body has been read in full; `forwarding` is called
/// when a signed, well-formed request is handed to the meeting's shard.
pub async fn handle(
    host: &dyn ImportHost,
    req: &Request,
    body: &[u8],
    forwarding: impl FnOnce(),
) -> Response {
    if req.method != Method::Post {
        let mut r = Response::text(405, "method not allowed\n");
        r.allow = Some("POST");
        return r;
    }
    let now_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let checked = check_request(
        host.key(),
        req.signature.as_deref(),
        body,
        now_unix,
        host.meeting_config(),
    );
    let (meeting_id, source, answer) = match checked {
        Err(answer) => (None, None, Some(answer)),
        Ok(request) => {
            let meeting_id = request.snapshot.meeting_id.clone();
            let source = request.source.id.clone();
            forwarding();
            (Some(meeting_id), Some(source), host.forward(request).await)
        }
    };
    let meeting_id = meeting_id.as_deref().unwrap_or("");
    let source = source.as_deref().unwrap_or("");
    let Some(answer) = answer else {
        host.count(TIMEOUT_LABEL);
        tracing::warn!(
            meeting_id,
            source,
            status = 503,
            result = TIMEOUT_LABEL,
            "Import refused: the meeting's shard did not answer in time"
        );
        let body = r#"{"accepted":false,"reason":"this MC is busy"}"#;
        return Response::new(503, "application/json", body.as_bytes());
    };
    host.count(answer.label());
    match &answer {
        ImportAnswer::Accepted => {
            tracing::info!(
                meeting_id,
                source,
                "Import accepted: meeting handed over to this MC"
            )
        }
        ImportAnswer::Repeat => {
            tracing::info!(
                meeting_id,
                source,
                "Import repeated: this MC already holds it"
            )
        }
        ImportAnswer::Unauthorized(why) => {
            tracing::warn!(error = %why, status = 401, result = answer.label(), "Import refused: bad signature")
        }
        other => tracing::warn!(
            meeting_id,
            source,
            status = other.status(),
            result = other.label(),
            "Import refused"
        ),
    }
    answer_response(&answer)
}

/// The answer to an import whose `Content-Length` is over the limit (counted).
pub fn too_large(host: &dyn ImportHost) -> Response {
    let answer = ImportAnswer::TooLarge;
    host.count(answer.label());
    tracing::warn!(
        status = 413,
        result = answer.label(),
        "Import refused: body too large"
    );
    answer_response(&answer)
}

/// The answer to an import whose body does not fit in the admin plane's budget now
/// (counted; the source keeps the meeting and may offer it again).
pub fn busy(host: &dyn ImportHost) -> Response {
    host.count(BUSY_LABEL);
    tracing::warn!(
        status = 503,
        result = BUSY_LABEL,
        "Import refused: too many import bodies in flight"
    );
    let body = r#"{"accepted":false,"reason":"this MC is busy"}"#;
    Response::new(503, "application/json", body.as_bytes())
}

fn answer_response(answer: &ImportAnswer) -> Response {
    Response::new(
        answer.status(),
        "application/json",
        answer.body().into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::auth::BindingSecret;
    use crate::migration::SIGNATURE_HEADER;

    struct Host {
        key: MigrationKey,
        cfg: MeetingConfig,
        answer: Option<ImportAnswer>,
        forwarded: RefCell<Vec<String>>,
        counted: RefCell<Vec<&'static str>>,
    }

    impl ImportHost for Host {
        fn key(&self) -> &MigrationKey {
            &self.key
        }
        fn meeting_config(&self) -> &MeetingConfig {
            &self.cfg
        }
        fn forward(&self, req: ImportRequest) -> Forwarded<'_> {
            self.forwarded.borrow_mut().push(req.snapshot.meeting_id);
            let answer = self.answer.clone();
            Box::pin(async move { answer })
        }
        fn count(&self, result: &'static str) {
            self.counted.borrow_mut().push(result);
        }
    }

    fn host(answer: Option<ImportAnswer>) -> Host {
        let secret = BindingSecret::from_bytes(vec![7u8; 32]).unwrap();
        Host {
            key: MigrationKey::derive(&secret),
            cfg: MeetingConfig::default(),
            answer,
            forwarded: RefCell::default(),
            counted: RefCell::default(),
        }
    }

    fn post(signature: Option<String>) -> Request {
        Request {
            method: Method::Post,
            path: crate::migration::IMPORT_PATH.into(),
            query: String::new(),
            keep_alive: true,
            body_len: 0,
            expect_continue: false,
            signature,
        }
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        futures_lite::future::block_on(f)
    }

    /// The `forwarding` of a request that must not reach a shard.
    fn not_forwarded() {
        panic!("a refused import was forwarded");
    }

    #[test]
    fn a_bad_signature_never_reaches_a_shard() {
        let h = host(Some(ImportAnswer::Accepted));
        let r = run(handle(
            &h,
            &post(Some("t=1,v1=00".into())),
            b"{}",
            not_forwarded,
        ));
        assert_eq!(r.status, 401);
        assert!(h.forwarded.borrow().is_empty());
        assert_eq!(*h.counted.borrow(), ["unauthorized"]);
        let r = run(handle(&h, &post(None), b"{}", not_forwarded));
        assert_eq!(r.status, 401, "{SIGNATURE_HEADER} is required");
    }

    #[test]
    fn a_signed_but_invalid_body_is_400_and_other_methods_405() {
        let h = host(Some(ImportAnswer::Accepted));
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let sig = h.key.sign(now, b"{}");
        let r = run(handle(&h, &post(Some(sig)), b"{}", not_forwarded));
        assert_eq!(r.status, 400);
        assert_eq!(*h.counted.borrow(), ["bad_request"]);
        let mut get = post(None);
        get.method = Method::Get;
        assert_eq!(run(handle(&h, &get, b"", not_forwarded)).status, 405);
        assert_eq!(too_large(&h).status, 413);
        assert_eq!(h.counted.borrow().last(), Some(&"too_large"));
    }
}
