#!/bin/sh
# Runs every fuzz target once, one after another, one job each; logs to fuzz/logs/.
# Usage (from fuzz/): ./run_all.sh "wire_decode:600 proof_verify:600 ..."
# BIN selects the build: the default is `cargo fuzz build -O` (AddressSanitizer); for the
# faster build without a sanitizer (`cargo fuzz build -O -s none --target-dir target-nosan`)
# use BIN=target-nosan/x86_64-unknown-linux-gnu/release.
set -u
BIN=${BIN:-target/x86_64-unknown-linux-gnu/release}
for spec in $1; do
  t=${spec%%:*}; secs=${spec#*:}
  mkdir -p corpus/$t artifacts/$t
  start=$(date +%s)
  "$BIN/$t" -runs=10000000 \
    -max_total_time=$secs -timeout=10 -max_len=16384 -print_final_stats=1 \
    -artifact_prefix=artifacts/$t/ corpus/$t seeds/$t > logs/$t.log 2>&1
  echo "$t rc=$? wall=$(( $(date +%s) - start ))s" >> logs/summary.txt
done
