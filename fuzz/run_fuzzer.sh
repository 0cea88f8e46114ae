#!/bin/sh
# run_fuzzer.sh FUZZER SEEDS WORKDIR SECONDS: a bounded libFuzzer run. New
# inputs go to WORKDIR (in the build tree), never into the seed corpus.
set -eu
mkdir -p "$3"
exec "$1" -max_total_time="$4" -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 "$3" "$2"
