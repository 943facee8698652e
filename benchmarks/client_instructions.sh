#!/usr/bin/env bash
# User-space instructions per request of a client benchmark candidate, counted by callgrind.
#
#   benchmarks/client_instructions.sh benchmarks/client_session.py:run 64 [/small]
#
# Instruction counts do not move with the machine's noise (other VMs, CPU frequency), so a
# change of a few percent shows where timed runs cannot. The process runs twice, with n and
# 3n requests; the difference divided by 2n leaves out start-up and imports. nginx from
# shared/bench must serve on 127.0.0.1:18080. Needs valgrind.
set -euo pipefail
spec=$1
concurrency=${2:-64}
path=${3:-/small}
python=${PYTHON:-/tmp/ferryman-bench-venv/bin/python}
if [ "$path" = /small ]; then n=1000; else n=50; fi
here=$(cd "$(dirname "$0")" && pwd)

count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$python" "$here/run_candidate.py" "$spec" "$1" "$concurrency" "$path" 2>&1 |
    awk '/Collected/ {print $4}'
}

once=$(count "$n")
thrice=$(count $((3 * n)))
echo "$spec c=$concurrency $path: $(((thrice - once) / (2 * n))) instructions per request"
