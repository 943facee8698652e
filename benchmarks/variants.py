"""Several ``ferryman start`` configurations side by side, in one run, against one nginx.

    python benchmarks/variants.py [--seconds 5] [--repeat 3] [VARIANT ...]

A variant is ``name`` or ``name=ARGS``: ARGS are extra ``ferryman start`` arguments (shell
words), e.g. ``observer='--set applications=[proxy,noop:TransactionObserver]'``; modules named
in them are imported from ``benchmarks/apps/`` (``--app-dir``). Without variants: ``relay``
(``applications=[proxy]``, nothing listens) and ``observer`` (one no-op transaction listener).

Every variant runs at once, each ferryman pinned to CPU 1 (``taskset``) with nginx and wrk on
CPU 0, and they take turns: round after round, ``wrk -t1 -c32 -d<seconds>`` on each variant's
``/small`` (a 13-byte answer), so that drift on the machine falls on all of them alike. It
prints each variant's median req/s, its ratio to the first variant, its p99, and the proxy's
CPU per request (user + system, from ``/proc/<pid>/stat``). Bounded: rounds x variants wrk
runs, the processes stopped at the end. Needs nginx and wrk (``shared/bench/setup.sh``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nginx_upstream
from slow_uploaders import free_port, wait_listening

HERE = Path(__file__).resolve().parent
LOCATIONS = """
        location /small { default_type text/plain; return 200 "hello, world\\n"; }
"""
DEFAULT_VARIANTS = (
    "relay=--set applications=[proxy]",
    "observer=--set applications=[proxy,noop:TransactionObserver]",
)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wrk(url: str, seconds: int) -> tuple[float, float, int]:
    """``wrk -t1 -c32 --latency`` on CPU 0: req/s, p99 in ms, requests completed."""
    output = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", output)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        print(f"  ({url}: {errors[1]} answers were not 2xx/3xx)", file=sys.stderr)
    return rate, float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("variants", nargs="*", default=list(DEFAULT_VARIANTS))
    args = parser.parse_args()
    variants = [spec.partition("=")[::2] for spec in args.variants]
    workdir = Path(tempfile.mkdtemp(prefix="ferryman-variants-"))
    upstream_port = free_port()
    conf = nginx_upstream.prepare(workdir, upstream_port, LOCATIONS)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        nginx = subprocess.Popen(
            ["taskset", "-c", "0", "nginx", "-c", str(conf), "-p", str(workdir)],
            start_new_session=True,
        )
        processes.append(nginx)
        wait_listening(upstream_port)
        ports: list[int] = []
        pids: list[int] = []
        env = {**os.environ, "XDG_DATA_HOME": str(workdir / "data")}  # (storage, when on)
        for name, extra in variants:
            port = free_port()
            command = [
                "taskset",
                "-c",
                "1",
                str(Path(sys.executable).with_name("ferryman")),
                "start",
                "--app-dir",
                str(HERE / "apps"),
                "--endpoint",
                f"bench={port}:http://127.0.0.1:{upstream_port}",
                "--set",
                "proxy.port=0",
                *shlex.split(extra),
            ]
            log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
            process = subprocess.Popen(
                command, stdout=log, stderr=log, start_new_session=True, env=env
            )
            processes.append(process)
            ports.append(port)
            pids.append(process.pid)
        for port in ports:
            wait_listening(port)
            if args.warmup:
                wrk(f"http://127.0.0.1:{port}/small", args.warmup)
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in variants}
        for _ in range(args.repeat):
            for (name, _), port, pid in zip(variants, ports, pids, strict=True):
                before = cpu_seconds(pid)
                rate, p99, done = wrk(f"http://127.0.0.1:{port}/small", args.seconds)
                cpu = (cpu_seconds(pid) - before) / max(done, 1) * 1e6
                results[name].append((rate, p99, cpu))
        base = statistics.median(rate for rate, _, _ in results[variants[0][0]])
        print(f"{'variant':<22} {'req/s':>9} {'ratio':>6} {'p99 ms':>7} {'CPU µs/req':>10}")
        for name, _ in variants:
            runs = sorted(results[name])
            rate, p99, cpu = runs[len(runs) // 2]
            print(f"{name:<22} {rate:9.0f} {rate / base:6.2f} {p99:7.2f} {cpu:10.1f}")
        print(f"({args.repeat} rounds of {args.seconds} s each, medians; logs in {workdir})")
    finally:
        for process in reversed(processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        time.sleep(0.1)


if __name__ == "__main__":
    main()
