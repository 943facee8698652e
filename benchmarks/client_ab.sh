#!/usr/bin/env bash
# Two versions of ferryman, timed in turns, for changes smaller than the machine's drift.
#
#   git worktree add /tmp/old <rev>
#   benchmarks/client_ab.sh benchmarks/client_transport.py:run /tmp/old . [rounds] [concurrency] [path]
#
# A 5% change in c=1 req/s cannot be told from one harness run to the next here: a VM's
# speed drifts by more than that within minutes. Alternating A and B (ABBA), each turn three
# timed runs of client_rusage.py, exposes both to the same drift; the medians of the two
# sorted series are the comparison. Run it with the same tree on both sides first to see the
# noise left: A/A runs here (4-6 rounds) gave medians 1.5-6% apart on a busy afternoon.
# Each side imports ferryman from its own tree (PYTHONPATH comes before the editable
# install); the first line per side shows which. The candidate file is the current tree's.
# nginx from shared/bench must serve on 127.0.0.1:18080, pinned to CPU 0.
set -euo pipefail
spec=$1
tree_a=$(cd "$2" && pwd)
tree_b=$(cd "$3" && pwd)
rounds=${4:-8}
concurrency=${5:-1}
path=${6:-/small}
python=${PYTHON:-/tmp/ferryman-bench-venv/bin/python}
here=$(cd "$(dirname "$0")" && pwd)

for side in A B; do
  tree=$tree_a
  [ "$side" = B ] && tree=$tree_b
  (cd / && PYTHONPATH=$tree "$python" -c "import ferryman; print('$side imports', ferryman.__file__)")
done
for round in $(seq "$rounds"); do
  order="A B"
  [ $((round % 2)) = 0 ] && order="B A" # ABBA: neither side always runs first
  for side in $order; do
    tree=$tree_a
    [ "$side" = B ] && tree=$tree_b
    PYTHONPATH=$tree taskset -c 1 "$python" "$here/client_rusage.py" "$spec" 5000 "$concurrency" "$path" 3 |
      sed "s/^/$side /"
  done
done | awk '{gsub(",", "", $3); print $1, $3}' | sort -k1,1 -k2n | awk '
  { rates[$1] = rates[$1] " " $2; values[$1, ++count[$1]] = $2 }
  END {
    for (side in count) {
      n = count[side]
      median = (n % 2) ? values[side, (n + 1) / 2] : (values[side, n / 2] + values[side, n / 2 + 1]) / 2
      printf "%s median %.0f req/s of %d runs:%s\n", side, median, n, rates[side]
    }
  }' | sort
