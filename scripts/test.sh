#!/usr/bin/env bash
# Runs every test of ferroftp: unit and integration tests (Rust), then the
# real-client suite (curl, lftp, tnftp, Python ftplib) against the built
# binary. Installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: the real FTP clients the tests drive, gcc for
# bench/floor.c and filefrag for the upload allocation test.
missing=()
for pair in curl:curl lftp:lftp tnftp:tnftp nc:netcat-openbsd gcc:gcc filefrag:e2fsprogs; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Python packages.
for module in pytest pyftpdlib; do
  python3 -c "import $module" 2>/dev/null || python3 -m pip install -q "$module"
done

echo "== cargo build"
cargo build --workspace --all-targets

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

echo "== real clients: curl, lftp, tnftp, Python ftplib; probe/get/put against ferroftp and pyftpdlib"
FERROFTP_BIN="$PWD/target/debug/ferroftp" python3 -m pytest -q -p no:cacheprovider tests/clients
