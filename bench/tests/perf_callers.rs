//! bench/scripts/perf-callers.py, which `compare.sh --perf` runs on each profile: the
//! share of samples under a frame, and who called it where it is the innermost frame.

mod scripts;

use scripts::line;

/// Four samples in the layout of `perf script -F comm,ip,sym` (frames innermost first).
const SCRIPT: &str = "\
shard-0-2 
\t  ffffffff81000000 _raw_spin_unlock_irqrestore
\t  ffffffff81000001 sock_wfree
\t  ffffffff81000002 loopback_xmit
\t  ffffffff81000003 __x64_sys_sendmmsg

shard-0-2 
\t  ffffffff81000000 _raw_spin_unlock_irqrestore
\t  ffffffff81000001 sock_wfree
\t  ffffffff81000002 loopback_xmit

shard-0-2 
\t  ffffffff81000000 _raw_spin_unlock_irqrestore
\t  ffffffff81000004 sock_def_readable

shard-0-2 
\t  ffffffff81000005 do_epoll_wait
\t  ffffffff81000006 __x64_sys_epoll_pwait2

";

#[test]
fn shares_under_each_frame_and_the_callers_of_the_innermost_ones() {
    let out = scripts::run(
        "perf-callers.py",
        &[
            "_raw_spin_unlock_irqrestore",
            "__x64_sys_epoll_pwait2",
            "__x64_sys_epoll_ctl",
        ],
        SCRIPT,
    );
    assert!(out.contains("# 4 samples"), "{out}");
    assert!(
        line(&out, "under _raw_spin_unlock_irqrestore").starts_with("75.00 %"),
        "{out}"
    );
    assert!(
        line(&out, "from sock_wfree < loopback_xmit").contains("50.00 %"),
        "{out}"
    );
    assert!(
        line(&out, "from sock_def_readable").contains("25.00 %"),
        "{out}"
    );
    // On the stack but never innermost: no callers listed.
    assert!(
        line(&out, "under __x64_sys_epoll_pwait2").contains("innermost in 0.00 %"),
        "{out}"
    );
    assert!(
        line(&out, "under __x64_sys_epoll_ctl").starts_with(" 0.00 %"),
        "{out}"
    );
}
