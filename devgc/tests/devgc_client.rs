//! mc-service's `GcClient` + `gc::driver` on a glommio executor against the real
//! `mc-devgc`: register, heartbeat with load, GC killed → heartbeat errors counted while
//! the registration (readiness) holds, GC restarted empty → 404 → registered again,
//! operator draining both ways, deregister on shutdown.

#[path = "devgc_util.rs"]
mod util;

use std::time::{Duration, Instant};

use glommio::timer::sleep;
use mc_service::gc::client::{BACKOFF_MAX, BACKOFF_MIN};
use mc_service::gc::{run, GcClient, GcClientConfig, GcHooks, GcUrls, Load};
use mc_service::metrics::Metrics;
use util::DevGc;

const ID: &str = "mc-driver-test";

async fn wait_until(what: &str, limit: Duration, ok: impl Fn() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn driver_against_devgc_survives_gc_restart() {
    // The GC hands out a 1 s heartbeat interval (adopted over our own 10 s).
    let gc = DevGc::start("127.0.0.1:0", &["--heartbeat-interval-secs", "1"]);
    let addr = gc.addr;
    let metrics = Metrics::new();
    let m = metrics.clone();
    let ex = glommio::LocalExecutorBuilder::default()
        .io_memory(256 * 1024)
        .make()
        .expect("glommio executor");
    ex.run(async move {
        let cfg = GcClientConfig {
            id: ID.into(),
            region: "us-west-2".into(),
            capacity: 100,
            webtransport_endpoint: "https://127.0.0.1:4433".into(),
            http_endpoint: "http://127.0.0.1:8080".into(),
            shards: 2,
            version: env!("CARGO_PKG_VERSION").into(),
            urls: GcUrls::derive(&gc.url("/api/v1/mc/register"), None).unwrap(),
            heartbeat_interval: Duration::from_secs(10),
            backoff_min: BACKOFF_MIN,
            backoff_max: BACKOFF_MAX,
        };
        let mut hooks = GcHooks::new(|| Load {
            meetings: 2,
            sessions: 5,
            participants: 5,
        });
        hooks.metrics = Some(m.clone());
        hooks.request_timeout = Duration::from_secs(2);
        let status = hooks.status.clone();
        let control = hooks.control.clone();
        let task = glommio::spawn_local(run(GcClient::new(cfg, Instant::now(), 1), hooks));
        let counter = |name: &str, label: &str| match name {
            "hb" => m.gc_heartbeat_total.with_label_values(&[label]).get(),
            _ => m.gc_registrations_total.with_label_values(&[label]).get(),
        };

        wait_until("registered", Duration::from_secs(5), || status.registered()).await;
        assert_eq!(m.gc_registered.get(), 1);
        wait_until("2 heartbeats", Duration::from_secs(5), || {
            counter("hb", "success") >= 2
        })
        .await;
        let row = gc.row(ID).expect("row at the GC");
        assert_eq!(
            (row["status"].as_str(), row["current_sessions"].as_i64()),
            (Some("active"), Some(5))
        );

        // GC down: heartbeats fail and are counted; the registration stands.
        gc.kill();
        wait_until("2 heartbeat errors", Duration::from_secs(6), || {
            counter("hb", "error") >= 2
        })
        .await;
        assert!(
            status.registered(),
            "readiness reflects the last successful registration"
        );

        // GC back, empty: heartbeat 404 → register again at once.
        let gc = DevGc::start(&addr.to_string(), &["--heartbeat-interval-secs", "1"]);
        wait_until("re-registered", Duration::from_secs(6), || {
            counter("reg", "success") >= 2
        })
        .await;
        assert!(status.registered());
        assert_eq!(gc.row(ID).expect("row at the new GC")["status"], "active");

        // Operator drains the MC at the GC, then re-enables it.
        gc.call("PUT", &format!("/admin/mc/{ID}/status"), "draining");
        wait_until("gc says draining", Duration::from_secs(4), || {
            status.gc_says_draining()
        })
        .await;
        gc.call("PUT", &format!("/admin/mc/{ID}/status"), "active");
        wait_until("gc says active", Duration::from_secs(4), || {
            !status.gc_says_draining()
        })
        .await;

        // Shutdown: one deregister, then the driver ends.
        control.shutdown();
        let stats = task.await;
        assert_eq!(stats.unknown_to_gc, 1);
        assert_eq!(stats.registrations_ok, 2);
        assert!(status.stopped() && !status.registered());
        assert_eq!(gc.row(ID).unwrap()["status"], "deregistered");
        assert_eq!(m.gc_registered.get(), 0);
    });
    let text = String::from_utf8(metrics.encode()).unwrap();
    assert!(
        text.contains("mc_gc_registrations_total{status=\"success\"} 2"),
        "{text}"
    );
    assert!(text.contains("mc_gc_heartbeat_duration_seconds_count"));
}
