#!/usr/bin/env bash
# What a no-op proxy filter listener and a no-op middleware cost, next to the plain relay, in one
# invocation: proxy_bench.sh's ferryman candidate (small body, c=32) three times in a row:
#   plain       ferryman start, nothing attached
#   filters     + one `lambda e: None` on proxy.filter.request and one on proxy.filter.response
#   middleware  + one generator middleware that only yields
# (benchmarks/events_relay_app.py adds them), then each one's req/s as a ratio of the plain one.
#   benchmarks/events_relay.sh [--duration 5]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python}"
FERRYMAN="${FERRYMAN:-$(dirname "$(command -v "$PY")")/ferryman}"
OUT="${OUT:-/tmp/ferryman-bench/events-relay}"
mkdir -p "$OUT"
EXTRA=("$@")
run() {  # name, extra applications
    local name="$1" apps="$2"
    /work/shared/bench/proxy_bench.sh --targets direct --bodies small --latency-duration 0 \
        --candidate "$FERRYMAN start --endpoint bench={port}:{upstream} --app-dir $HERE --set proxy.port=0 --set 'applications=[\"proxy\"$apps]'" \
        --candidate-port "${CANDIDATE_PORT:-18090}" --candidate-name "ferryman-$name" --json "$OUT/$name.json" "${EXTRA[@]}" \
        > "$OUT/$name.txt"
    grep -E "ferryman-$name|direct" "$OUT/$name.txt" || cat "$OUT/$name.txt"
}
EXTRA=("$@")
run plain ""
run filters ',"events_relay_app:NoOpFilters"'
run middleware ',"events_relay_app:NoOpMiddleware"'
"$PY" - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def rps(name):
    data = json.loads((out / f"{name}.json").read_text())
    text = json.dumps(data)
    for row in data.get("results", data.get("rows", [])):
        if str(row.get("target", row.get("name", ""))).startswith("ferryman-"):
            return float(row.get("rps", row.get("req_s", row.get("requests_per_sec"))))
    raise SystemExit(f"no candidate row in {name}.json: {text[:400]}")
plain = rps("plain")
print(f"{'way':<12}{'req/s':>10}{'x plain':>10}")
for name in ("plain", "filters", "middleware"):
    value = rps(name)
    print(f"{name:<12}{value:>10.0f}{value / plain:>10.2f}")
PY
