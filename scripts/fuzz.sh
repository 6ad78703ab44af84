#!/usr/bin/env bash
# Fuzzes the control-connection parser (fuzz/fuzz_targets/parse_command.rs)
# with cargo-fuzz and libFuzzer for a while, then stops.
#
#   scripts/fuzz.sh [seconds]      (default 60)
#
# A crash stops the run, prints the panic, and leaves the input under
# fuzz/artifacts/parse_command/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run parse_command artifacts/parse_command/<file>
# from fuzz/. The corpus grows under fuzz/corpus/parse_command/ (not in git).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# libfuzzer-sys compiles libFuzzer itself, which needs a C++ compiler.
if ! command -v c++ >/dev/null 2>&1; then
  echo "== installing g++"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes nightly-only flags to rustc (-Zsanitizer=address). Only
# a stable toolchain is available, so let it accept them: the AddressSanitizer
# runtime ships with stable's rust-std for x86_64-unknown-linux-gnu.
export RUSTC_BOOTSTRAP=1

# A few seed lines so the fuzzer starts from real commands.
corpus=corpus/parse_command
mkdir -p "$corpus"
if [ -z "$(ls -A "$corpus")" ]; then
  printf 'USER ftp\r\nPASS x\r\n' >"$corpus/login"
  printf '\x05PORT 127,0,0,1,4,1\r\nEPRT |2|::1|5282|\nEPSV ALL\r\nPASV\r\n' >"$corpus/hostport"
  printf 'TYPE L 8\r\nALLO 10 R 2\r\nREST 100\r\nSITE CHMOD 755 a b\r\n' >"$corpus/args"
  printf 'MFMT 20261124151616 f\r\nHOST [::1]\r\nMLSD\r\nOPTS UTF8 ON\r\n' >"$corpus/extensions"
  printf '\xff\xf4\xff\xf2ABOR\r\n\xff\xfb\x01RETR a\xff\xffb\xff\xfa\x18\x01\xff\xf0\n' >"$corpus/telnet"
fi

echo "== fuzzing parse_command for ${seconds}s"
exec cargo fuzz run parse_command -- -max_total_time="$seconds" -print_final_stats=1
