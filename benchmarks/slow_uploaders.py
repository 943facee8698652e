"""Normal requests' latency through ``ferryman start`` with and without slow uploaders beside them.

    python benchmarks/slow_uploaders.py [--uploaders 520] [--seconds 5] [--request-buffer 65536]

Issue 20, item 4: 520 clients each sending a POST body a byte every few seconds took all 512
upstream connections of an endpoint, and normal GETs got nothing for 30 s. This starts nginx as
the upstream (its own config, on a free port) and ferryman in front of it, measures ``wrk -c32``
on ``GET /`` quiet, then again with the uploaders connected (each has sent its head and part of
its body and goes on a byte every 2 s), and prints both latency lines and the p99 ratio (the
goal: within 2x). ``--request-buffer 0`` streams request bodies at once, the old behaviour, for
comparison. Bounded: two wrk runs of ``--seconds`` each, the uploaders closed at the end. Needs
nginx and wrk (``shared/bench/setup.sh`` installs both).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nginx_upstream

#: An upload is answered once its body has all come (nginx reads it whole to pass it on), as an
#: application that reads its request would: until then it holds its connection from the proxy.
LOCATIONS = """
        location / { return 200 "ok"; }
        location /upload { proxy_pass http://127.0.0.1:%d/done; }
        location /done { return 200 "done"; }
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {seconds} s")


def wrk(url: str, seconds: int) -> dict[str, float]:
    """``wrk -t1 -c32 --latency``: requests/s, p50 and p99 in ms, errors."""
    output = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "--timeout", "10s", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    result = {"req/s": float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])}  # type: ignore[index]
    for percent in ("50", "99"):
        value, unit = re.search(rf"\s{percent}%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        result[f"p{percent} ms"] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    timeouts = re.search(r"timeout (\d+)", output)
    result["errors"] = float(errors[1] if errors else 0) + float(timeouts[1] if timeouts else 0)
    return result


async def uploader(port: int, stop: asyncio.Event, opened: list[int]) -> None:
    """A POST whose body comes a byte every 2 s (more than it will ever finish)."""
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    opened.append(1)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: 100000\r\n\r\nabc")
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 2)
            except TimeoutError:
                writer.write(b"x")
                await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def measure(proxy_port: int, uploaders: int, seconds: int) -> None:
    url = f"http://127.0.0.1:{proxy_port}/"
    quiet = await asyncio.to_thread(wrk, url, seconds)
    stop = asyncio.Event()
    opened: list[int] = []
    tasks = [asyncio.create_task(uploader(proxy_port, stop, opened)) for _ in range(uploaders)]
    await asyncio.sleep(2)  # every uploader connected and sending
    busy = await asyncio.to_thread(wrk, url, seconds)
    stop.set()
    await asyncio.gather(*tasks)
    print(f"{'':>28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, row in (("quiet", quiet), (f"with {len(opened)} slow uploaders", busy)):
        print(
            f"{name:>28} {row['req/s']:9.0f} {row['p50 ms']:8.2f} {row['p99 ms']:8.2f}"
            f" {row['errors']:7.0f}"
        )
    if busy["req/s"] == 0:
        print("p99 ratio: none answered (starved)")
    else:
        print(f"p99 ratio: {busy['p99 ms'] / quiet['p99 ms']:.2f} (goal: <= 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploaders", type=int, default=520)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--request-buffer", type=int, default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ferryman-slow-uploaders-"))
    upstream_port, proxy_port = free_port(), free_port()
    conf = nginx_upstream.prepare(workdir, upstream_port, LOCATIONS % upstream_port)
    nginx = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(workdir)],
        start_new_session=True,
    )
    command = [
        sys.executable,
        "-m",
        "ferryman.cli.main",
        "start",
        "--endpoint",
        f"bench={proxy_port}:http://127.0.0.1:{upstream_port}",
        "--set",
        "proxy.endpoints.0.client_timeout.body_min_rate=0",  # (the uploaders stay connected)
        "--set",
        "applications=[proxy]",  # (the relay alone, as issue 20 measured it: no access log)
    ]
    if args.request_buffer is not None:
        command += ["--set", f"proxy.endpoints.0.request_buffer={args.request_buffer}"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("FERRYMAN_")}
    proxy = subprocess.Popen(command, start_new_session=True, env=env)
    try:
        wait_listening(upstream_port)
        wait_listening(proxy_port)
        asyncio.run(measure(proxy_port, args.uploaders, args.seconds))
    finally:
        for process in (proxy, nginx):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
