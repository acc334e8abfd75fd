#!/bin/sh
# Runs every fuzz target once, one after another, one job each; logs to fuzz/logs/.
# Usage (from fuzz/): ./run_all.sh "wire_decode:600 proof_verify:600 ..."
# BIN selects the build: the default is `cargo fuzz build -O` (AddressSanitizer); for the
# faster build without a sanitizer (`cargo fuzz build -O -s none --target-dir target-nosan`)
# use BIN=target-nosan/x86_64-unknown-linux-gnu/release.
#
# SLOW=1 hunts slow inputs instead of crashes (issue 28): inputs up to the upload limit
# (MAX_LEN, default 6 MiB = limits.upload_bytes_max), every input slower than
# REPORT_SLOW seconds reported (-report_slow_units) and one slower than TIMEOUT seconds
# saved as a crash (-timeout): a check that is not linear in its input shows up here.
set -u
BIN=${BIN:-target/x86_64-unknown-linux-gnu/release}
if [ "${SLOW:-0}" = 1 ]; then
  MAX_LEN=${MAX_LEN:-6291456}
  LIMITS="-timeout=${TIMEOUT:-2} -report_slow_units=${REPORT_SLOW:-1} -max_len=$MAX_LEN -len_control=0 -rss_limit_mb=4096"
else
  LIMITS="-timeout=10 -max_len=16384"
fi
mkdir -p logs
for spec in $1; do
  t=${spec%%:*}; secs=${spec#*:}
  mkdir -p corpus/$t artifacts/$t
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$BIN/$t" -runs=10000000 \
    -max_total_time=$secs $LIMITS -print_final_stats=1 \
    -artifact_prefix=artifacts/$t/ corpus/$t seeds/$t > logs/$t.log 2>&1
  echo "$t rc=$? wall=$(( $(date +%s) - start ))s slow=${SLOW:-0}" >> logs/summary.txt
done
