#!/usr/bin/env bash
# Writes cli/hush.order: the functions a running node executes, hottest
# first, which the release build of `hush` places at the start of its code
# (cli/build.rs passes it to the linker, lld's --symbol-ordering-file).
#
# Why: the kernel maps an executable's code into a process 64 KiB at a time
# around each page it first runs. In the default layout the ~2 MB of code a
# node runs is spread over the whole 30 MB of text, so an idle node had
# ~17 MB of code resident; packed together, it needs a third of that (see
# docs/benchmarks.md, "Hot code first").
#
# The functions are recorded with valgrind's callgrind (every function that
# ran, not a sample) from the release binary, in three tiers:
#   1. a lone node starting and idling (`hush node run`, 40 s);
#   2. the nodes of `hush demo` (contacts, 1:1, groups, files, a second
#      device, offline delivery through a relay);
#   3. the demo's relay (`hush relay run`).
# Each tier lists only what the ones before it did not. Natively, with
# perf, the same runs add the functions whose pages they faulted in first:
# the CPU-specific kernels valgrind's CPU never selects (see below).
#
# Symbol names carry hashes of the toolchain and of each crate's
# dependencies and features: run this again after a toolchain change, a
# Cargo.lock change, or a dependency added to one of our crates (cli/build.rs
# skips the file, with a warning, when its rustc line is not the one
# building, and warns, still using it, when the lock file or a manifest
# changed since the file was written). One dependency added to hush-protocol (`subtle`) renamed
# half the list, and the idle node went from 14 to 21 MiB. Count what
# still matches with
#   nm target/release/hush | awk '{print $3}' | sort -u |
#     comm -12 - <(grep -v '^#' cli/hush.order | sort -u) | wc -l
# An edit renames only the functions it changed (our crates build in one
# codegen unit each, see Cargo.toml), which lose their place until the next
# run; run it before a release.
#
# Usage: dist/symbol-order.sh   (needs valgrind, and perf for the native
# pass; ~6 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || {
  echo "valgrind is needed: apt-get install valgrind" >&2
  exit 1
}

cargo build --release --locked -p hush-cli --bin hush
bin=$PWD/target/release/hush
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
callgrind=(valgrind --tool=callgrind --demangle=no --dump-line=no)

node=(node run --listen /ip4/127.0.0.1/tcp/0 --no-mdns --desktop-notify off)
home=(--home "$work/home")
# A lone node for SECS seconds under callgrind (with HUSH_LOG=LEVEL if
# given), asked for its status and conversations once it answers, as the
# CLI and the TUI ask.
idle() { # OUT SECS [LEVEL]
  env ${3:+HUSH_LOG=$3} timeout -s INT "$2" "${callgrind[@]}" --callgrind-out-file="$1" \
    "$bin" "${home[@]}" "${node[@]}" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq "$2"); do
    "$bin" "${home[@]}" status >/dev/null 2>&1 && break
    sleep 1
  done
  "$bin" "${home[@]}" conversations >/dev/null 2>&1 || true
  wait "$pid" || true
}
echo "tier 1: a lone node, its first start (40 s) and a restart (20 s)" >&2
"$bin" "${home[@]}" init --name order </dev/null >/dev/null
idle "$work/idle.out" 40
idle "$work/restart.out" 20 error

echo "tier 2 and 3: the nodes and the relay of hush demo" >&2
mkdir "$work/demo"
"${callgrind[@]}" --trace-children=yes --callgrind-out-file="$work/demo/%p.out" \
  "$bin" demo >/dev/null 2>"$work/demo.log" || {
  echo "hush demo failed under valgrind; its log:" >&2
  grep -v '^==' "$work/demo.log" >&2
  exit 1
}

# Under valgrind's CPU, code that picks its path by CPU feature (SHA-NI,
# AES, AVX2 and AVX-512 kernels of the hashes and ciphers) takes another
# path than natively: the functions a native run first touches in each
# 64 KiB (its page faults, with perf) add those.
native=0
if command -v perf >/dev/null && perf stat -e page-faults true >/dev/null 2>&1; then
  native=1
  echo "natively, with perf: the node again, and the demo" >&2
  timeout -s INT 10 perf record -q -e page-faults -c 1 -d -o "$work/idle.perf" -- \
    "$bin" "${home[@]}" "${node[@]}" >/dev/null 2>&1 || true
  perf record -q -e page-faults -c 1 -d -o "$work/demo.perf" -- "$bin" demo >/dev/null 2>&1
else
  echo "perf is not usable here: CPU-specific kernels are left out of the order" >&2
fi
# The functions of this binary whose first page a run faulted in.
faults() {
  perf script -i "$1" -F ip,sym,addr,dso --no-demangle 2>/dev/null |
    awk -v dso="($bin)" '$1 == $4 && $3 == dso { print $2 }'
}

# The functions named in callgrind files, in order of first appearance.
names() {
  awk 'match($0, /^c?fn=\([0-9]+\) /) {
         n = substr($0, RLENGTH + 1)
         if (!(n in seen)) { seen[n] = 1; print n }
       }' "$@"
}
# The demo's output files by the command each process ran.
by_command() {
  grep -l -E "^cmd: .* $1" "$work"/demo/*.out || true
}

names "$work/idle.out" "$work/restart.out" >"$work/tier1"
mapfile -t nodes < <(by_command 'node run')
mapfile -t relays < <(by_command 'relay run')
names "${nodes[@]}" >"$work/tier2"
names "${relays[@]}" >"$work/tier3"
if [ "$native" = 1 ]; then
  faults "$work/idle.perf" >>"$work/tier1"
  faults "$work/demo.perf" >>"$work/tier2"
fi

# Only functions the binary defines in its code, each listed once.
nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ { print $3 }' >"$work/defined"

inputs=(Cargo.lock .cargo/config.toml Cargo.toml vendor/vodozemac/Cargo.toml vendor/libp2p-swarm/Cargo.toml
  vendor/libp2p-gossipsub/Cargo.toml vendor/libp2p-relay/Cargo.toml)
for m in */Cargo.toml; do [ "$m" = fuzz/Cargo.toml ] || inputs+=("$m"); done
{
  echo "# rustc $(rustc -V | sed 's/^rustc //')"
  echo "# Written by dist/symbol-order.sh from $(git rev-parse --short HEAD); do not edit."
  # What the symbol hashes depend on: cli/build.rs warns when these change.
  echo "# inputs $(cat "${inputs[@]}" | cksum): ${inputs[*]}"
  cat "$work/tier1" "$work/tier2" "$work/tier3" |
    awk 'NR == FNR { defined[$0] = 1; next }
         ($0 in defined) && !($0 in seen) { seen[$0] = 1; print }' "$work/defined" -
} >cli/hush.order

echo "cli/hush.order: $(grep -vc '^#' cli/hush.order) functions" \
  "($(wc -l <"$work/tier1") in tier 1 before filtering)" >&2
