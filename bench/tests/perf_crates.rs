//! bench/scripts/perf-crates.py, the split of a server's profile by whose code ran that
//! `compare.sh --perf` writes into each report, on a hand-made `perf script` output: a
//! kernel sample is the kernel's, generic code, libc and the allocator count for the
//! crate that called them, and a stack with no crate of its own is unattributed.

mod scripts;

use scripts::line;

/// Six samples in the layout of `perf script -F comm,ip,sym` (frames innermost first,
/// tab-indented).
const SCRIPT: &str = "\
shard-0-2 
\t  ffffffff81000000 udp_sendmsg
\t  ffffffff81000001 __x64_sys_sendmmsg
\t  55e956 mc_service::quic::udp::UdpIo::send_batch
\t  ffffffffffffffff [unknown]

shard-0-2 
\t  97c44 __memmove_avx512_unaligned_erms
\t  4464dd alloc::collections::btree::map::BTreeMap<K,V,A>::range (inlined)
\t  4464dd quinn_proto::range_set::btree_range_set::RangeSet::insert
\t  4464dd mc_service::shard::Shard::pass
\t  ffffffffffffffff [unknown]

shard-0-2 
\t  550aae <quinn_proto::varint::VarInt as quinn_proto::coding::Codec>::decode
\t  4464dd mc_service::shard::Shard::pass

shard-0-2 
\t  550aae ring_core_0_17_14__gcm_ghash_vpclmulqdq_avx2_1
\t  550aae quinn_proto::connection::Connection::poll_transmit

shard-0-2 
\t  550aae <core::iter::adapters::flatten::FlattenCompat<I,U> as core::iter::traits::iterator::Iterator>::fold
\t  4464dd <usize as core::iter::traits::accum::Sum>::sum (inlined)
\t  4464dd shards::mesh::MeshHandle<M>::pending (inlined)
\t  4464dd mc_service::shard::Shard::pass

control-1 
\t  97c44 _int_malloc
\t  ffffffffffffffff [unknown]

";

fn split(args: &[&str]) -> String {
    scripts::run("perf-crates.py", args, SCRIPT)
}

#[test]
fn each_sample_counts_once_for_the_first_crate_with_code_of_its_own() {
    let out = split(&[]);
    assert!(out.contains("the server's 6 samples"), "{out}");
    assert!(line(&out, "kernel:").starts_with(" 16.7 %"), "{out}");
    // The memmove inside a BTreeMap inside quinn-proto is quinn-proto's, as is a
    // trait method of one of its types.
    assert!(
        line(&out, "QUIC: quinn-proto").starts_with(" 33.3 %"),
        "{out}"
    );
    assert!(line(&out, "crypto:").starts_with(" 16.7 %"), "{out}");
    // Standard library iterators and a primitive's trait method count for their caller.
    assert!(line(&out, "mc-service:").starts_with(" 16.7 %"), "{out}");
    assert!(line(&out, "unattributed:").starts_with(" 16.7 %"), "{out}");
    assert!(
        !out.contains("peer:"),
        "an owner with no samples is left out:\n{out}"
    );
}

#[test]
fn with_the_cpu_per_operation_each_owner_is_also_given_in_microseconds() {
    let out = split(&["12"]);
    assert!(
        line(&out, "QUIC: quinn-proto").ends_with("4.00 µs/op"),
        "{out}"
    );
    assert!(line(&out, "kernel:").ends_with("2.00 µs/op"), "{out}");
}
