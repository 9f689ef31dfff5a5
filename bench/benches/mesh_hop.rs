//! Cross-shard hop: latency and throughput of the `shards` mesh between two pinned
//! executors, including the doorbell wake-up of a parked receiver.
//!
//! Run: `cargo bench -p mc-bench --bench mesh_hop` (add `-- --quick` for a short run).
//! Prints, over RUNS runs, the median and the spread (min–max) of each figure.

use std::time::Instant;

use hdrhistogram::Histogram;
use shards::{ExecutorSpec, Lane, Mesh, ShardId};

const LANE: Lane = Lane(0);

fn specs() -> (ExecutorSpec, ExecutorSpec) {
    let cpus = shards::allowed_cpus().unwrap_or_default();
    let spec = |i: usize| ExecutorSpec {
        name: format!("bench-{i}"),
        cpu: cpus.get(i).copied(),
        io_memory: shards::runtime::DEFAULT_IO_MEMORY,
        blocking_threads: 1,
    };
    (spec(0), spec(1))
}

/// Round trips a → b → a, one message in flight: each hop usually finds the peer
/// parked, so this measures the wake-up path. Returns the RTT histogram (ns).
fn ping_pong(round_trips: u64) -> Histogram<u64> {
    let (mut seeds, _m) = Mesh::build::<Instant>(2, &[1024]).unwrap();
    let b = seeds.pop().unwrap();
    let a = seeds.pop().unwrap();
    let (sa, sb) = specs();
    let echo = sb
        .spawn(move || async move {
            let me = b.into_handle();
            let mut n = 0;
            while n < round_trips {
                match me.try_recv() {
                    Some((from, _, t)) => {
                        let _ = me.try_send(from, LANE, t);
                        n += 1;
                    }
                    None => me.wait().await,
                }
            }
        })
        .unwrap();
    let pinger = sa
        .spawn(move || async move {
            let me = a.into_handle();
            let mut h = Histogram::<u64>::new(3).unwrap();
            for _ in 0..round_trips {
                let _ = me.try_send(ShardId(1), LANE, Instant::now());
                loop {
                    if let Some((_, _, t)) = me.try_recv() {
                        let _ = h.record(t.elapsed().as_nanos() as u64);
                        break;
                    }
                    me.wait().await;
                }
            }
            h
        })
        .unwrap();
    echo.join().unwrap();
    pinger.join().unwrap()
}

/// Messages/s from a to b with a full pipeline (back-pressure on a full queue).
fn throughput(messages: u64, capacity: usize) -> f64 {
    let (mut seeds, _m) = Mesh::build::<u64>(2, &[capacity]).unwrap();
    let b = seeds.pop().unwrap();
    let a = seeds.pop().unwrap();
    let (sa, sb) = specs();
    let start = Instant::now();
    let consumer = sb
        .spawn(move || async move {
            let me = b.into_handle();
            let mut n = 0;
            while n < messages {
                match me.try_recv() {
                    Some(_) => n += 1,
                    None => me.wait().await,
                }
            }
            Instant::now()
        })
        .unwrap();
    sa.spawn(move || async move {
        let me = a.into_handle();
        for mut v in 0..messages {
            while let Err(full) = me.try_send(ShardId(1), LANE, v) {
                v = full.msg;
                glommio::yield_if_needed().await;
            }
        }
    })
    .unwrap()
    .join()
    .unwrap();
    let end = consumer.join().unwrap();
    messages as f64 / (end - start).as_secs_f64()
}

fn median_spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 7 };
    let rtts = if quick { 2_000 } else { 20_000 };
    let msgs = if quick { 200_000 } else { 2_000_000 };
    let cpus = shards::allowed_cpus().unwrap_or_default();
    println!(
        "mesh_hop: {runs} runs, {rtts} round trips and {msgs} messages per run, CPUs {cpus:?}"
    );

    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for _ in 0..runs {
        let h = ping_pong(rtts);
        p50.push(h.value_at_quantile(0.5) as f64 / 1000.0);
        p99.push(h.value_at_quantile(0.99) as f64 / 1000.0);
    }
    let (m, lo, hi) = median_spread(p50);
    println!("round trip (2 hops, parked peer) p50: median {m:.1} µs  spread {lo:.1}–{hi:.1} µs");
    let (m, lo, hi) = median_spread(p99);
    println!("round trip (2 hops, parked peer) p99: median {m:.1} µs  spread {lo:.1}–{hi:.1} µs");

    let mut tput = Vec::new();
    for _ in 0..runs {
        tput.push(throughput(msgs, 1000) / 1e6);
    }
    let (m, lo, hi) = median_spread(tput);
    println!("one-way throughput (queue 1000): median {m:.2} M msg/s  spread {lo:.2}–{hi:.2}");
}
