#!/usr/bin/env bash
# Build every fuzz target and run each one, one after the other, for SECONDS (default
# 60) on a copy of its committed seed corpus (fuzz/corpus/<target>/). Prints the
# executions of each target; exits non-zero if any target crashed (the input is kept
# in fuzz/artifacts/<target>/). Usage: fuzz/run.sh [SECONDS] [TARGET...]
# Extra libFuzzer flags may be given in FUZZ_ARGS (e.g. FUZZ_ARGS="-max_len=65536").
#
# Stable Rust: cargo-fuzz asks for nightly-only flags, so RUSTC_BOOTSTRAP=1 lets the
# stable compiler accept them; --sanitizer none because stable has no sanitizer runtime
# (panics, overflow checks (-a) and debug assertions are what we catch).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(signaling_session meeting_script admin_http jwt_verify jwks_parse gc_response capsule_codec h3_connection qpack_section)
fi
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    # A debug build of the tool installs in a fraction of the time; its speed does not matter.
    cargo install --locked --debug cargo-fuzz
fi
cargo fuzz build --sanitizer none -a
bin_dir="target/x86_64-unknown-linux-gnu/release"

failed=0
summary=()
for t in "${targets[@]}"; do
    work="target/corpus-work/$t"
    mkdir -p "$work" "artifacts/$t"
    log="target/$t.log"
    echo "== $t: ${secs}s"
    set +e
    # One process, one job: the machine is shared. The first corpus dir receives new
    # inputs; the committed seeds stay as they are.
    "$bin_dir/$t" "$work" "corpus/$t" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" ${FUZZ_ARGS:-} >"$log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    if [ $rc -ne 0 ]; then
        failed=1
        tail -40 "$log"
        summary+=("$t: CRASH (exit $rc) after ${runs:-?} runs; see fuzz/$log and fuzz/artifacts/$t/")
    else
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        summary+=("$t: ${runs:-?} executions in ${secs}s, $cov, corpus $(ls "$work" | wc -l) new inputs")
    fi
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit $failed
