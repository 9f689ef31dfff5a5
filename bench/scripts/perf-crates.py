#!/usr/bin/env python3
"""Whose code a server's time goes to, by crate, from DWARF call chains.

Reads `perf script -F comm,ip,sym` (each sample: a line with the thread's name, then its
frames, innermost first, each on a tab-indented line, then a blank line) on standard
input and gives every sample, of any thread, to exactly one owner:

- the kernel, when the innermost frame is a kernel address (system calls, the wait,
  interrupts taken while the server ran);
- otherwise the crate of the innermost frame that belongs to a crate with code of its
  own. Generic code compiled into its caller (core, alloc, std, hashbrown, bytes, ...),
  libc (memcpy, malloc, the system call wrappers), the allocator and the vDSO count for
  the crate that called them, so a `BTreeMap` quinn-proto keeps or a `memcpy` it makes
  is quinn-proto's time.

    perf record --call-graph dwarf,16384 -F 999 -p <server pid> -o perf.data
    perf script -i perf.data -F comm,ip,sym | python3 bench/scripts/perf-crates.py [US_PER_OP]

With US_PER_OP (the server's CPU per operation over the profiled run) each owner is also
given in microseconds per operation. Owners add up to 100 % of the samples.
"""
import sys

from perf_script import samples, share_line

# Crates whose code is instantiated in, or only called by, another crate's: their time is
# the caller's.
PASS_THROUGH = {
    "core", "alloc", "std", "hashbrown", "bytes", "slab", "smallvec", "tinyvec",
    "indexmap", "rustc_hash", "fxhash", "rand", "rand_core", "rand_chacha", "tracing",
    "tracing_core", "log", "mimalloc", "libmimalloc_sys", "chacha20", "compiler_builtins",
    "socket2",
}

# (owner, crates). Owners are printed in this order; a crate in none of them is printed
# under its own name.
OWNERS = [
    ("QUIC: quinn-proto (packets, frames, ACKs, loss detection, streams)", {"quinn_proto"}),
    ("crypto: ring, rustls (AES-GCM, header protection)", {"ring", "rustls"}),
    ("mc-service: shard loop, UDP batches, HTTP/3, WebTransport, echo (mc_service, shards, glommio, crossbeam-channel)",
     {"mc_service", "shards", "glommio", "scoped_tls", "io_uring", "crossbeam_channel",
      "prometheus", "procfs", "procfs_core", "hdrhistogram"}),
    ("peer: tokio, quinn, wtransport, the echo server",
     {"tokio", "quinn", "quinn_udp", "wtransport", "wtransport_proto", "wt_echo_server",
      "futures_util", "futures_core", "h3", "parking_lot", "parking_lot_core", "mio"}),
]
KERNEL = "kernel: system calls, the wait, interrupts"
UNATTRIBUTED = "unattributed: libc or generic code with no caller perf unwound"


def crate_of(symbol):
    """The crate a frame's code belongs to, or None for code that is the caller's."""
    s = symbol.replace(" (inlined)", "").strip()
    if s.startswith("ring_core_"):
        return "ring"  # ring's C and assembly (AES, GHASH), prefixed with its version
    if s.startswith("<"):
        # `<Type as Trait>::method`: the type's crate, or the trait's when the type is a
        # primitive, a generic parameter or a standard library type.
        self_ty, trait = split_as(s[1:])
        return crate_of_path(self_ty) or (crate_of_path(trait) if trait else None)
    return crate_of_path(s)


def top_level(s):
    """Where `s` has its first `>` or ` as ` outside angle brackets, and which."""
    depth = 0
    for i, ch in enumerate(s):
        if ch == "<":
            depth += 1
        elif ch == ">":
            if depth == 0:
                return i, ">"
            depth -= 1
        elif depth == 0 and s.startswith(" as ", i):
            return i, "as"
    return len(s), None


def split_as(s):
    """`A<B> as C>::f` → (`A<B>`, `C`): the type and trait of a qualified path."""
    i, found = top_level(s)
    if found != "as":
        return s[:i], None
    rest = s[i + 4:]
    return s[:i], rest[:top_level(rest)[0]]


def crate_of_path(p):
    p = p.lstrip("<&*[( ")
    for word in ("impl ", "dyn ", "mut ", "const "):
        if p.startswith(word):
            p = p[len(word):].lstrip("<&*[( ")
    if "::" not in p:
        return None  # a C symbol (libc, the vDSO, [unknown]) or a primitive type
    crate = p.split("::", 1)[0]
    if crate in PASS_THROUGH or crate.startswith("__"):
        return None  # generic code, or the compiler's allocation shims (`__rustc`)
    return crate


def is_kernel(address):
    try:
        a = int(address, 16)
    except ValueError:
        return False
    # perf ends a stack it could not unwind further with ffffffffffffffff.
    return a >= 0xFFFF800000000000 and a != 0xFFFFFFFFFFFFFFFF


def owner_of(frames):
    if frames and is_kernel(frames[0][0]):
        return KERNEL
    for _, symbol in frames:
        crate = crate_of(symbol)
        if crate is None:
            continue
        for name, crates in OWNERS:
            if crate in crates:
                return name
        return f"other: {crate}"
    return UNATTRIBUTED


def main():
    us = float(sys.argv[1]) if len(sys.argv) > 1 else None
    counts = {KERNEL: 0}
    counts.update({name: 0 for name, _ in OWNERS})
    total = 0
    for _, frames in samples(sys.stdin):
        total += 1
        owner = owner_of(frames)
        counts[owner] = counts.get(owner, 0) + 1
    counts.setdefault(UNATTRIBUTED, 0)
    print(f"# the server's {total} samples by whose code ran (perf-crates.py: generic code, "
          f"libc and the allocator count for the crate that called them)")
    if total == 0:
        print("no samples (were DWARF call chains recorded?)")
        return
    for name, n in counts.items():
        if n == 0 and name not in (KERNEL, UNATTRIBUTED, OWNERS[0][0], OWNERS[1][0]):
            continue
        print(share_line(name, n, total, us))


if __name__ == "__main__":
    main()
