#!/usr/bin/env bash
# A proxy's p50/p99 under wrk -c32, quiet and with a duty-cycle CPU hog on the proxy's core.
#
#   benchmarks/tail_under_interference.sh URL [seconds]
#
# The harness's p99 moves with the machine: a neighbour that takes the proxy's core for a few
# milliseconds shows in the tail before it shows in requests/s. This puts the same neighbour
# next to each proxy on purpose, so two proxies' sensitivity can be compared (run it against
# ferryman, then against shared/bench's nginx-proxy config, both pinned to CPU 1, the upstream
# nginx and wrk on CPU 0, as for benchmarks/proxy_cpu_split.sh). Each hog is "busy ms, idle
# ms": 1/9 takes a tenth of the core in 1 ms slices, 3/27 the same share in 3 ms slices,
# 0.2/2 a tenth in 0.2 ms slices.
set -euo pipefail
url=$1
seconds=${2:-5}
hog='
import sys, time
busy, idle = float(sys.argv[1]) / 1e3, float(sys.argv[2]) / 1e3
while True:
    end = time.perf_counter() + busy
    while time.perf_counter() < end:
        pass
    time.sleep(idle)
'
for profile in "" "1 9" "3 27" "0.2 2"; do
  hog_pid=
  if [ -n "$profile" ]; then
    # shellcheck disable=SC2086  # the profile is two words on purpose
    taskset -c 1 python3 -c "$hog" $profile &
    hog_pid=$!
    sleep 0.5
  fi
  result=$(taskset -c 0 wrk -t1 -c32 -d"${seconds}s" --latency "$url" |
    awk '/Requests\/sec/ {rps = $2} / 50%/ {p50 = $2} / 99%/ {p99 = $2}
         END {printf "%8.0f req/s  p50 %8s  p99 %8s", rps, p50, p99}')
  if [ -n "$hog_pid" ]; then kill "$hog_pid"; wait "$hog_pid" 2>/dev/null || true; fi
  printf "hog %-7s %s\n" "${profile:-none}" "$result"
  sleep 1
done
