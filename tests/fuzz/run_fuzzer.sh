#!/bin/sh
# run_fuzzer.sh TARGET CORPUS SECONDS ARTIFACTS
# Fuzz TARGET for SECONDS starting from the seeds in CORPUS. New inputs go
# to a scratch directory (the seed corpus in git stays as it is); a crash is
# saved under ARTIFACTS and fails the run. Longer runs: raise SECONDS, or call
# the target by hand (see README).
set -eu
target=$1 corpus=$2 seconds=$3 artifacts=$4
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$artifacts"
# libFuzzer's default exit code for a crash, 77, is meson's "skipped"
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-error_exitcode=1 \
	-artifact_prefix="$artifacts/" "$scratch" "$corpus"
