"""What one proxied request costs a running ``ferryman start``, counted, not timed.

    python benchmarks/live_cost.py [--requests 2000,6000] [--tool cachegrind|strace] [VARIANT ...]

A variant is ``name=ARGS`` as in ``variants.py`` (extra ``ferryman start`` arguments). Each one
is started twice under ``valgrind --tool=cachegrind`` (instructions, every process and thread
of the proxy: the storage writer has its own count) or ``strace -f -c`` (system calls), and
served a fixed number of requests by a fixed client (8 keep-alive connections, one request
at a time on each, nginx behind); the difference between the two runs divided by the
difference in requests is the cost of one request, without the start-up. Counts, unlike
seconds, do not move with what else the machine is doing: this is how a change to the
defaults' listeners is judged while other work runs (the peer benchmark says what the
counts are worth in req/s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nginx_upstream
from slow_uploaders import free_port, wait_listening

HERE = Path(__file__).resolve().parent
LOCATIONS = """
        location /small { default_type application/json; return 200 '{"id":4711}'; }
"""
REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: live-cost\r\n\r\n"
CONNECTIONS = 8


async def drive(port: int, total: int) -> None:
    """``total`` requests over ``CONNECTIONS`` keep-alive connections, answers read whole."""

    async def one_connection(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(count):
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])  # type: ignore[index]
            await reader.readexactly(length)
        writer.close()

    share, rest = divmod(total, CONNECTIONS)
    await asyncio.gather(*(one_connection(share + (index < rest)) for index in range(CONNECTIONS)))


def measure(tool: str, extra: str, requests: int, upstream: int, workdir: Path) -> dict[str, int]:
    """Run one ferryman under ``tool`` for ``requests`` requests; counts by process role."""
    out = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("ferryman")),
        "start",
        "--app-dir",
        str(HERE / "apps"),
        "--endpoint",
        f"bench={port}:http://127.0.0.1:{upstream}",
        "--set",
        "proxy.port=0",
        *shlex.split(extra),
    ]
    if tool == "cachegrind":
        wrapper = [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--trace-children=yes",
            f"--cachegrind-out-file={out}/cg.%p",
        ]
    else:
        wrapper = ["strace", "-f", "-c", "-o", f"{out}/strace"]
    env = {**os.environ, "XDG_DATA_HOME": str(out / "data")}
    log = open(out / "log", "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [*wrapper, *command], stdout=log, stderr=log, env=env, start_new_session=True
    )
    try:
        wait_listening(port, 300.0)
        asyncio.run(drive(port, requests))
        time.sleep(2)  # (the storage writer's last batch)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
    counts: dict[str, int] = {}
    if tool == "cachegrind":
        for path in out.glob("cg.*"):
            text = path.read_text(errors="replace")
            cmd = re.search(r"^cmd: (.*)$", text, re.M)
            summary = re.search(r"^summary: (\d+)", text, re.M)
            if not summary or not cmd:
                continue
            role = "writer" if "storage" in cmd[1] and "start" not in cmd[1] else "proxy"
            if "ferryman" not in cmd[1] and "python" not in cmd[1]:
                role = "other"
            counts[role] = counts.get(role, 0) + int(summary[1])
    else:
        for line in (out / "strace").read_text().splitlines():
            match = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
            if match and match[2] != "total":
                counts[match[2]] = int(match[1])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", default="2000,6000")
    parser.add_argument("--tool", choices=("cachegrind", "strace"), default="cachegrind")
    parser.add_argument("variants", nargs="+")
    args = parser.parse_args()
    low, high = (int(n) for n in args.requests.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="ferryman-live-cost-"))
    upstream = free_port()
    conf = nginx_upstream.prepare(workdir, upstream, LOCATIONS)
    nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(workdir)], start_new_session=True)
    try:
        wait_listening(upstream)
        for spec in args.variants:
            name, _, extra = spec.partition("=")
            first = measure(args.tool, extra, low, upstream, workdir)
            second = measure(args.tool, extra, high, upstream, workdir)
            per = {key: (second.get(key, 0) - first.get(key, 0)) / (high - low) for key in second}
            if args.tool == "cachegrind":
                parts = "  ".join(f"{key} {value:,.0f}" for key, value in sorted(per.items()))
                print(f"{name:<16} instructions/request: {parts}", flush=True)
            else:
                shown = sorted(per.items(), key=lambda item: -item[1])
                total = sum(value for _, value in shown)
                parts = "  ".join(f"{key} {value:.2f}" for key, value in shown if value >= 0.05)
                print(f"{name:<16} syscalls/request {total:.2f}: {parts}", flush=True)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(nginx.pid, signal.SIGTERM)
        nginx.wait(10)


if __name__ == "__main__":
    main()
