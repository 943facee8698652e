#!/usr/bin/env bash
# Instructions per relayed request of the fast relay (benchmarks/relay_cpu.py's loop), counted
# by cachegrind, and the same for benchmarks/floor_proxy.py's protocols as the floor.
#
#   benchmarks/relay_instructions.sh [api]
#
# Counts do not move with the VM's noise, so a change of a few percent shows where timed runs
# cannot. Each side runs twice, with 1000 and 6000 requests; the difference over 5000 leaves
# out start-up and imports. No sockets, no upstream needed. Needs valgrind.
set -euo pipefail
head=${1:-}
python=${PYTHON:-python}
here=$(cd "$(dirname "$0")" && pwd)

count() {  # $1: python code that relays N requests, N substituted
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$python" -c "import sys; sys.path.insert(0, '$here'); N = $2; $1" 2>&1 |
    awk '/I *refs/ {gsub(",", "", $NF); print $NF}'
}

per_request() {
  local once six
  once=$(count "$1" 1000)
  six=$(count "$1" 6000)
  echo $(((six - once) / 5000))
}

relay="import relay_cpu; relay_cpu.run(N, relay_cpu.API_RESPONSE if '$head' == 'api' else relay_cpu.RESPONSE)"
floor="
from collections import deque
import floor_proxy, relay_cpu
pool = deque(); upstream = floor_proxy.Upstream(pool)
upstream.connection_made(relay_cpu.NullTransport(('127.0.0.1', 18080))); pool.append(upstream)
client = floor_proxy.Client(('127.0.0.1', 18080), pool)
client.connection_made(relay_cpu.NullTransport(('127.0.0.1', 50000)))
response = relay_cpu.API_RESPONSE if '$head' == 'api' else relay_cpu.RESPONSE
for _ in range(N):
    client.data_received(relay_cpu.REQUEST); upstream.data_received(response)
"
echo "ferryman's relay: $(per_request "$relay") instructions per request"
echo "floor_proxy.py:   $(per_request "$floor") instructions per request"
