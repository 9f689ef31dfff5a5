"""Reading `perf script -F comm,ip,sym`, for perf-phases.py and perf-crates.py.

Each sample is a line with the thread's name, then its frames, innermost first, each on a
tab-indented line (its address, then its symbol), then a blank line.
"""


def samples(lines):
    """Each sample as (thread name, frames innermost first); a frame is (address, symbol)."""
    comm, frames = None, []
    for line in lines:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif line.startswith("\t"):
            parts = line.split(None, 1)
            frames.append((parts[0], parts[1].strip() if len(parts) > 1 else ""))
        else:
            comm = line.split()[0]
    if comm is not None:
        yield comm, frames


def share_line(name, n, total, us):
    """One line of a split: `name`'s share of `total` samples, and with `us` (the CPU
    per operation of the profiled run) its microseconds per operation."""
    share = 100.0 * n / total
    tail = f"  {us * share / 100:.2f} µs/op" if us is not None else ""
    return f"{share:5.1f} %  {name}{tail}"
