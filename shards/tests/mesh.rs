//! The mesh's promises: bounded queues that hand messages back when full, a parked
//! executor woken by a peer's enqueue, and an orderly stop.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use shards::{ExecutorSpec, Lane, Mesh, ShardId};

const L0: Lane = Lane(0);
const L1: Lane = Lane(1);

fn floating(name: &str) -> ExecutorSpec {
    ExecutorSpec {
        name: name.into(),
        cpu: None,
        io_memory: shards::runtime::DEFAULT_IO_MEMORY,
        blocking_threads: 1,
    }
}

#[test]
fn a_full_queue_hands_the_message_back_and_never_blocks() {
    let (mut seeds, monitor) = Mesh::build::<u32>(2, &[3, 1]).unwrap();
    let _b = seeds.pop().unwrap();
    let a = seeds.pop().unwrap();
    let handle = floating("full")
        .spawn(move || async move {
            let a = a.into_handle();
            for i in 0..3 {
                assert!(a.try_send(ShardId(1), L0, i).is_ok());
            }
            let full = a.try_send(ShardId(1), L0, 99).unwrap_err();
            assert_eq!((full.to, full.msg), (ShardId(1), 99));
            // Lanes are separate queues with their own capacity.
            assert!(a.try_send(ShardId(1), L1, 7).is_ok());
            assert_eq!(a.try_send(ShardId(1), L1, 8).unwrap_err().msg, 8);
            // No queue to oneself, and no such lane: handed back, not lost.
            assert_eq!(a.try_send(ShardId(0), L0, 5).unwrap_err().msg, 5);
            assert_eq!(a.try_send(ShardId(1), Lane(9), 6).unwrap_err().msg, 6);
        })
        .unwrap();
    handle.join().unwrap();
    assert_eq!(monitor.inbox_depth(ShardId(1), L0), 3);
    assert_eq!(monitor.inbox_depth(ShardId(1), L1), 1);
    let d: Vec<_> = monitor.depths().filter(|d| d.len > 0).collect();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].capacity, 3);
}

/// Weighted sends share one ceiling per ordered pair, across lanes; the receiver's
/// release makes room again; a send the queue refuses takes no weight.
#[test]
fn weights_in_flight_are_bounded_per_pair_and_given_back_by_the_receiver() {
    let (mut seeds, _monitor) = Mesh::build::<u32>(2, &[4, 1]).unwrap();
    let b = seeds.pop().unwrap();
    let a = seeds.pop().unwrap();
    let handle = floating("weighted")
        .spawn(move || async move {
            let a = a.into_handle();
            let b = b.into_handle();
            let to = ShardId(1);
            assert!(a.try_send_weighted(to, L0, 1, 60, 100).is_ok());
            assert_eq!(a.try_send_weighted(to, L1, 2, 50, 100).unwrap_err().msg, 2);
            assert!(a.try_send_weighted(to, L1, 3, 40, 100).is_ok());
            assert_eq!(a.in_flight(to), 100);
            // Unweighted messages pass while the queue has room.
            assert!(a.try_send_weighted(to, L0, 4, 0, 100).is_ok());
            // A full queue hands back the message and takes no weight.
            assert_eq!(a.try_send_weighted(to, L1, 5, 0, 100).unwrap_err().msg, 5);
            assert_eq!(a.in_flight(to), 100);
            // The other direction has its own counter.
            assert_eq!(b.in_flight(ShardId(0)), 0);
            let (from, _, msg) = b.try_recv().unwrap();
            assert_eq!((from, msg), (ShardId(0), 1));
            b.release(from, 60);
            assert_eq!(a.in_flight(to), 40);
            assert!(a.try_send_weighted(to, L0, 6, 60, 100).is_ok());
            // Heavier than the ceiling: only alone.
            assert_eq!(a.try_send_weighted(to, L0, 7, 150, 100).unwrap_err().msg, 7);
            for _ in 0..3 {
                let (from, _, msg) = b.try_recv().unwrap();
                b.release(from, [0, 60, 0, 40, 0, 0, 60][msg as usize]);
            }
            assert_eq!(a.in_flight(to), 0);
            assert!(a.try_send_weighted(to, L0, 7, 150, 100).is_ok());
            assert_eq!(a.in_flight(to), 150);
        })
        .unwrap();
    handle.join().unwrap();
}

#[test]
fn a_parked_executor_is_woken_by_a_peer() {
    let (mut seeds, monitor) = Mesh::build::<Instant>(2, &[16]).unwrap();
    let sender_seed = seeds.pop().unwrap();
    let receiver_seed = seeds.pop().unwrap();
    let (parked_tx, parked_rx) = mpsc::channel();
    let (got_tx, got_rx) = mpsc::channel();
    let receiver = floating("parked")
        .spawn(move || async move {
            let me = receiver_seed.into_handle();
            for _ in 0..3 {
                parked_tx.send(()).unwrap();
                loop {
                    if let Some((from, _, sent_at)) = me.try_recv() {
                        got_tx.send((from, sent_at.elapsed())).unwrap();
                        break;
                    }
                    me.wait().await;
                }
            }
        })
        .unwrap();
    let sender = floating("waker")
        .spawn(move || async move {
            let me = sender_seed.into_handle();
            for _ in 0..3 {
                parked_rx.recv().unwrap();
                // Give the receiver time to really park in io_uring.
                glommio::timer::sleep(Duration::from_millis(50)).await;
                me.try_send(ShardId(0), L0, Instant::now()).unwrap();
            }
        })
        .unwrap();
    for _ in 0..3 {
        let (from, latency) = got_rx.recv_timeout(Duration::from_secs(5)).expect("woken");
        assert_eq!(from, ShardId(1));
        assert!(latency < Duration::from_secs(1), "woken after {latency:?}");
    }
    sender.join().unwrap();
    receiver.join().unwrap();
    let rings = monitor.rings(ShardId(0));
    assert!(
        rings >= 3,
        "each message found the receiver parked: {rings}"
    );
}

#[test]
fn a_busy_receiver_costs_its_peers_no_wakeups() {
    let (mut seeds, monitor) = Mesh::build::<u64>(2, &[1024]).unwrap();
    let b = seeds.pop().unwrap();
    let a = seeds.pop().unwrap();
    floating("busy")
        .spawn(move || async move {
            let a = a.into_handle();
            let _b = b; // never parks: never asks to be woken
            for i in 0..1000 {
                a.try_send(ShardId(1), L0, i).unwrap();
            }
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(monitor.rings(ShardId(1)), 0);
}

#[test]
fn stop_wakes_every_parked_executor_and_they_exit() {
    let (seeds, monitor) = Mesh::build::<()>(3, &[4]).unwrap();
    let handles: Vec<_> = seeds
        .into_iter()
        .map(|seed| {
            floating("stop")
                .spawn(move || async move {
                    let me = seed.into_handle();
                    while !me.is_stopping() {
                        me.wait().await;
                    }
                    me.id()
                })
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    monitor.stop();
    let mut ids: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec![ShardId(0), ShardId(1), ShardId(2)]);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn messages_keep_their_order_per_sender_under_load() {
    const N: u64 = 200_000;
    let (mut seeds, _monitor) = Mesh::build::<u64>(2, &[64]).unwrap();
    let rx_seed = seeds.pop().unwrap();
    let tx_seed = seeds.pop().unwrap();
    let consumer = floating("consumer")
        .spawn(move || async move {
            let me = rx_seed.into_handle();
            let mut expect = 0;
            while expect < N {
                match me.try_recv() {
                    Some((_, _, v)) => {
                        assert_eq!(v, expect);
                        expect += 1;
                    }
                    None => me.wait().await,
                }
            }
        })
        .unwrap();
    let producer = floating("producer")
        .spawn(move || async move {
            let me = tx_seed.into_handle();
            let mut full = 0u64;
            for mut v in 0..N {
                // Back-pressure on purpose: retry after yielding when the queue is full.
                loop {
                    match me.try_send(ShardId(1), L0, v) {
                        Ok(()) => break,
                        Err(back) => {
                            full += 1;
                            v = back.msg;
                            glommio::yield_if_needed().await;
                            glommio::timer::sleep(Duration::from_micros(10)).await;
                        }
                    }
                }
            }
            full
        })
        .unwrap();
    let full = producer.join().unwrap();
    consumer.join().unwrap();
    assert!(full > 0, "the small queue filled at least once");
}

#[test]
fn io_uring_probe_and_cpu_affinity() {
    shards::probe_io_uring().expect("io_uring available on the test machine");
    let cpus = shards::allowed_cpus().unwrap();
    assert!(!cpus.is_empty());
    let err = ExecutorSpec::pinned_shards(cpus.len() + 1, 1 << 16).unwrap_err();
    assert!(err.to_string().contains("may use only"), "{err}");
}

#[test]
fn a_parked_loop_wakes_for_its_socket_only_when_it_watches_it() {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    let (mut seeds, _monitor) = Mesh::build::<()>(1, &[4]).unwrap();
    let seed = seeds.pop().unwrap();
    floating("parker")
        .spawn(move || async move {
            let me = seed.into_handle();
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let parker = me.parker(&[socket.as_raw_fd()]).unwrap();
            // Nothing to read: a watching park ends at its timeout, which may be finer
            // than a millisecond.
            let t = Instant::now();
            me.park_on(&parker, true, Duration::from_micros(300));
            let waited = t.elapsed();
            assert!(waited < Duration::from_millis(200), "{waited:?}");
            // A readable socket ends a watching park at once...
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            client.send_to(b"x", socket.local_addr().unwrap()).unwrap();
            let t = Instant::now();
            me.park_on(&parker, true, Duration::from_secs(5));
            assert!(t.elapsed() < Duration::from_secs(1));
            // ...and every one after it while the datagram stays unread (level-triggered).
            let t = Instant::now();
            me.park_on(&parker, true, Duration::from_secs(5));
            assert!(t.elapsed() < Duration::from_secs(1));
            // A park that does not watch it sleeps through it until its timeout (a
            // signal may interrupt a wait: count the parks instead of timing one).
            let until = Instant::now() + Duration::from_millis(50);
            let mut parks = 0;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                me.park_on(&parker, false, left);
                parks += 1;
            }
            assert!(parks < 10, "{parks} parks in 50 ms");
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_parked_loop_is_woken_by_a_peer_and_by_stop() {
    let (mut seeds, monitor) = Mesh::build::<Instant>(2, &[16]).unwrap();
    let sender_seed = seeds.pop().unwrap();
    let receiver_seed = seeds.pop().unwrap();
    let (parked_tx, parked_rx) = mpsc::channel();
    let (got_tx, got_rx) = mpsc::channel();
    let receiver = floating("loop-parked")
        .spawn(move || async move {
            let me = receiver_seed.into_handle();
            let parker = me.parker(&[]).unwrap();
            for _ in 0..3 {
                parked_tx.send(()).unwrap();
                loop {
                    if let Some((_, _, sent_at)) = me.try_recv() {
                        got_tx.send(sent_at.elapsed()).unwrap();
                        break;
                    }
                    me.park_on(&parker, true, Duration::from_secs(30));
                }
            }
            // Parked with nothing queued, until the mesh stops.
            let t = Instant::now();
            while !me.is_stopping() {
                me.park_on(&parker, true, Duration::from_secs(30));
            }
            t.elapsed()
        })
        .unwrap();
    let sender = floating("loop-waker")
        .spawn(move || async move {
            let me = sender_seed.into_handle();
            for _ in 0..3 {
                parked_rx.recv().unwrap();
                glommio::timer::sleep(Duration::from_millis(50)).await;
                me.try_send(ShardId(0), L0, Instant::now()).unwrap();
            }
        })
        .unwrap();
    for _ in 0..3 {
        let latency = got_rx.recv_timeout(Duration::from_secs(5)).expect("woken");
        assert!(latency < Duration::from_secs(1), "woken after {latency:?}");
    }
    sender.join().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    monitor.stop();
    let parked = receiver.join().unwrap();
    assert!(parked < Duration::from_secs(5), "stop woke it: {parked:?}");
    assert!(monitor.rings(ShardId(0)) >= 3);
}
