#!/usr/bin/env bash
# User and system CPU per request of a running proxy process under wrk, from /proc/PID/stat.
#
#   benchmarks/proxy_cpu_split.sh PID URL [connections] [seconds]
#
# The proxy harness gives one CPU figure per request; this splits it, to tell whether a gap to
# nginx is Python (user) or the kernel (system). Start the proxy pinned to CPU 1 and nginx
# from shared/bench on CPU 0 first; wrk runs on CPU 0 like the harness's. For example:
#
#   taskset -c 1 ferryman start --endpoint bench=18090:http://127.0.0.1:18080 &
#   benchmarks/proxy_cpu_split.sh "$(pgrep -f 'endpoint bench=18090')" http://127.0.0.1:18090/small
#
# Measured the same way, nginx's proxy worker (shared/bench's nginx-proxy config, pid of its
# worker process) gives the floor for comparison. Tick accounting: +-10% on a 4 s run.
set -euo pipefail
pid=$1
url=$2
connections=${3:-32}
seconds=${4:-4}
ticks=$(getconf CLK_TCK)
read -r user0 system0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
requests=$(taskset -c 0 wrk -t1 -c"$connections" -d"${seconds}s" "$url" | awk '/requests in/ {print $1}')
read -r user1 system1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
awk -v n="$requests" -v s="$seconds" -v t="$ticks" -v u="$((user1 - user0))" -v k="$((system1 - system0))" \
  'BEGIN { printf "%.0f req/s; per request: user %.1f us, system %.1f us\n", n / s, u / t / n * 1e6, k / t / n * 1e6 }'
