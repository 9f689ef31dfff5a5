//! bench/scripts/perf-phases.py, the step-by-step split of a shard's profile that
//! `compare.sh --perf` writes into the fan-out's report, on a hand-made `perf script`
//! output: each sample counts once, in the first step on its stack, and only a shard
//! thread's samples count.

mod scripts;

use scripts::line;

/// Three samples of a shard thread and one of the control thread, in the layout of
/// `perf script -F comm,ip,sym` (frames innermost first, tab-indented).
const SCRIPT: &str = "\
shard-0-2 
\t  ffffffff81000000 udp_sendmsg
\t  ffffffff81000001 __x64_sys_sendmmsg
\t  55e956 mc_service::quic::udp::UdpIo::send_batch
\t  4464dd mc_service::shard::conns::<impl mc_service::shard::Shard>::transmit (inlined)
\t  4464dd mc_service::shard::Shard::pass
\t  ffffffffffffffff [unknown]

shard-0-2 
\t  550aae quinn_proto::connection::streams::SendStream::write_chunks
\t  36b5f8 mc_service::h3::conn::H3Conn::write_chunks
\t  4464dd mc_service::shard::meetings::<impl mc_service::shard::Shard>::run_meetings (inlined)
\t  4464dd mc_service::shard::Shard::pass
\t  ffffffffffffffff [unknown]

shard-0-2 
\t  97c44 _int_malloc
\t  ffffffffffffffff [unknown]

control-1 
\t  55e956 mc_service::control::run
\t  ffffffffffffffff [unknown]

";

fn split(args: &[&str]) -> String {
    scripts::run("perf-phases.py", args, SCRIPT)
}

#[test]
fn each_shard_sample_counts_once_in_the_first_step_on_its_stack() {
    let out = split(&[]);
    assert!(out.contains("the shard threads' 3 samples"), "{out}");
    // The sendmmsg inside transmit counts as the system call, not as the rest of
    // transmit, and a sample with no loop step on its stack counts as outside.
    assert!(
        line(&out, "transmit: sendmmsg").starts_with(" 33.3 %"),
        "{out}"
    );
    assert!(
        line(&out, "transmit: the rest").starts_with("  0.0 %"),
        "{out}"
    );
    assert!(line(&out, "meetings:").starts_with(" 33.3 %"), "{out}");
    assert!(
        line(&out, "outside the pass").starts_with(" 33.3 %"),
        "{out}"
    );
}

#[test]
fn with_the_cpu_per_operation_each_step_is_also_given_in_microseconds() {
    let out = split(&["12"]);
    assert!(line(&out, "meetings:").ends_with("4.00 µs/op"), "{out}");
    assert!(line(&out, "timers").ends_with("0.00 µs/op"), "{out}");
}
