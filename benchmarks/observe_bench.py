"""The cost of the access log and the metrics, with ``../shared/bench/proxy_bench.sh``.

    python benchmarks/observe_bench.py [--repeat 3] [--duration 5] [--variants defaults,off,...]

Runs the shared proxy benchmark (small body, c=32, ferryman pinned to one core) once per
variant of ``ferryman start``, each run measuring the aiohttp proxy too, and prints every run's
table as the harness printed it, then one summary: req/s, proxy CPU µs per request, and the
ratios to the aiohttp proxy of the same run and to the ``off`` variant. The harness takes one
candidate per run, hence one run per variant, back to back.

Variants (``--set applications=...``; the default applications are proxy, accesslog, metrics,
plus storage once it is merged):

* ``defaults``: ``ferryman start`` as shipped (access log on stderr, here the harness's log
  file; metrics);
* ``off``: ``applications=[proxy]``: nothing listens, the fast relay alone;
* ``noop``: one no-op ``proxy.transaction.finished`` listener (the events' own cost);
* ``accesslog``, ``metrics``: each alone;
* ``accesslog-json``: the access log as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path("/work/shared/bench/proxy_bench.sh")
HERE = Path(__file__).resolve().parent
#: The harness's work directory (configs, logs) and ports: apart from other runs on the machine.
WORKDIR = Path("/tmp/ferryman-bench-observe")

VARIANTS = {
    "defaults": "",
    "off": "--set 'applications=[proxy]'",
    "noop": f"--app-dir {HERE} --set 'applications=[proxy, \"noop_listener:NoopListener\"]'",
    "accesslog": "--set 'applications=[proxy, accesslog]'",
    "metrics": "--set 'applications=[proxy, metrics]'",
    "accesslog-json": "--set 'applications=[proxy, accesslog, metrics]' --log-format json",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="off,noop,defaults,accesslog,metrics")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--base-port", type=int, default=18180)
    args = parser.parse_args()
    WORKDIR.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, float]] = {}
    for variant in args.variants.split(","):
        command = (
            # (FERRYMAN_BENCH_WORKDIR is the harness's, and ferryman would take it as a setting)
            f"env -u FERRYMAN_BENCH_WORKDIR {args.python} -m ferryman.proxy "
            f"--port {{port}} --upstream {{upstream}} {VARIANTS[variant]}"
        )
        out = WORKDIR / f"{variant}.json"
        run = subprocess.run(
            [
                str(BENCH),
                "--targets",
                "aiohttp",
                "--bodies",
                "small",
                "--latency-duration",
                "0",
                "--duration",
                str(args.duration),
                "--repeat",
                str(args.repeat),
                "--candidate",
                command,
                "--candidate-name",
                f"ferryman-{variant}",
                "--json",
                str(out),
                "--base-port",
                str(args.base_port),
                "--candidate-port",
                str(args.base_port + 10),
            ],
            env={**os.environ, "FERRYMAN_BENCH_WORKDIR": str(WORKDIR)},
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"## {variant}: {command}\n{run.stdout}", flush=True)
        if run.returncode != 0:
            print(run.stderr[-3000:], file=sys.stderr)
            continue
        rows = json.loads(out.read_text())["results"]
        by_target = {row["target"]: row for row in rows if row["connections"] == 32}
        mine = by_target.get(f"ferryman-{variant}")
        if mine is None:
            continue
        results[variant] = {
            "rps": mine["rps"],
            "us": mine.get("proxy_cpu_us_per_req") or 0.0,
            "aiohttp": by_target["aiohttp"]["rps"],
        }
    print("| variant | req/s | us/req | x aiohttp (same run) | x off |")
    print("|---|---:|---:|---:|---:|")
    off = results.get("off", {}).get("rps")
    for variant, r in results.items():
        ratio_off = f"{r['rps'] / off:.2f}" if off else "-"
        print(
            f"| {variant} | {r['rps']:,.0f} | {r['us']:.1f} | {r['rps'] / r['aiohttp']:.2f} "
            f"| {ratio_off} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
