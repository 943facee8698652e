"""HTTP/2 (one connection, many streams) against HTTP/1.1 (one connection per request in flight).

    /work/venv/bin/python benchmarks/http2_vs_http11.py [-n 5000] [-c 64] [--runs 3]
        [--server hypercorn|nginx]

Hypercorn (or nginx, one process, for a server whose HTTP/2 is cheap) serves a small response
over TLS (ALPN h2 and http/1.1) in its own process, pinned to CPU 0 with ``taskset`` when it
is available; the client runs on uvloop pinned to CPU 1. Each mode gets a warm-up pass, then
``--runs`` timed passes of ``-n`` GETs with ``-c`` in flight; the median is printed. HTTP/2
uses one connection (64 streams), HTTP/1.1 one connection per request in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

BODY = b'{"message": "hello, world"}'


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


NGINX_CONF = """
daemon off; master_process off; worker_processes 1; pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off; keepalive_requests 100000000; http2_max_requests 100000000;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {dir}/cert.pem; ssl_certificate_key {dir}/key.pem;
    location / {{ default_type application/json; return 200 '{body}'; }}
  }}
}}
"""


def start_server(kind: str, workdir: str, pinned: bool) -> tuple[subprocess.Popen[str], int]:
    """The server process (its pid is the one measured) and its port."""
    pem = os.path.join(workdir, "server.pem")
    if kind == "hypercorn":
        command = [sys.executable, os.path.abspath(__file__), "--serve", pem]
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        conf = os.path.join(workdir, "nginx.conf")
        with open(conf, "w") as file:
            file.write(NGINX_CONF.format(dir=workdir, port=port, body=BODY.decode()))
        command = ["nginx", "-c", conf, "-p", workdir]
    if pinned:
        command = ["taskset", "-c", "0", *command]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    if kind == "hypercorn":
        assert server.stdout is not None
        port = int(server.stdout.readline())
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            if time.monotonic() > deadline:
                server.terminate()
                raise
            time.sleep(0.05)


def serve(pem: str) -> None:
    """The server process: bind port 0, print the port, serve until killed."""
    import uvloop
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.certfile = config.keyfile = pem
    config.alpn_protocols = ["h2", "http/1.1"]
    # hypercorn says GOAWAY after 1000 requests on a connection by default (and then cannot
    # answer the streams it accepted): the benchmark measures steady state, not that.
    config.keep_alive_max_requests = 1 << 40
    config.accesslog = None
    config.errorlog = None
    uvloop.run(hypercorn_serve(_app, config))  # type: ignore[arg-type]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    url: str, n: int, concurrency: int, ca_path: str, http2: bool, server_pid: int
) -> tuple[float, float, float]:
    """Requests per second, and client and server CPU microseconds per request."""
    from ferryman import URL, AsyncConnectionPool, Request

    target = URL(url)
    pool = AsyncConnectionPool(
        verify=ca_path, http2=http2, max_connections_per_origin=1 if http2 else concurrency
    )
    remaining = 0
    version = b"HTTP/2" if http2 else b"HTTP/1.1"

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            response = await pool.handle_async_request(Request("GET", target))
            if await response.aread() != BODY or response.extensions["http_version"] != version:
                raise RuntimeError(f"unexpected response {response} {response.extensions}")

    async with pool:
        remaining = min(n, 1000)  # warm-up: connections opened, caches filled
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        remaining = n
        server_cpu = cpu_seconds(server_pid)
        client_cpu = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - client_cpu
        server_cpu = cpu_seconds(server_pid) - server_cpu
        connections = len(pool.connections)
    expected = 1 if http2 else concurrency
    if connections != expected:
        raise RuntimeError(f"{connections} connections, expected {expected}")
    return n / elapsed, client_cpu / n * 1e6, server_cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server", choices=["hypercorn", "nginx"], default="hypercorn")
    parser.add_argument("--serve", metavar="PEM", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    import trustme
    import uvloop

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    workdir = tempfile.mkdtemp()
    ca_path = os.path.join(workdir, "ca.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(os.path.join(workdir, "server.pem"))
    cert.private_key_pem.write_to_path(os.path.join(workdir, "key.pem"))
    cert.cert_chain_pems[0].write_to_path(os.path.join(workdir, "cert.pem"))
    ca.cert_pem.write_to_path(ca_path)

    pinned = shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    if pinned:
        os.sched_setaffinity(0, {1})
    server, port = start_server(args.server, workdir, pinned)
    url = f"https://127.0.0.1:{port}/"
    try:
        print(
            f"{args.server} (TLS) {'on CPU 0' if pinned else 'unpinned'}, client on uvloop"
            f"{' on CPU 1' if pinned else ''}: {args.n} GETs, {args.concurrency} in flight"
        )
        # Wall-clock rates suffer from whatever else runs on the machine; CPU time per request
        # (client and server) does much less, so both are printed.
        results: dict[str, float] = {}
        for name, http2 in (("HTTP/1.1", False), ("HTTP/2", True)):
            runs = [
                uvloop.run(measure(url, args.n, args.concurrency, ca_path, http2, server.pid))
                for _ in range(args.runs)
            ]
            results[name] = statistics.median(rate for rate, _, _ in runs)
            client = statistics.median(cpu for _, cpu, _ in runs)
            server_cpu = statistics.median(cpu for _, _, cpu in runs)
            rates = ", ".join(f"{rate:,.0f}" for rate, _, _ in runs)
            print(
                f"{name:9} {results[name]:>9,.0f} req/s  (median of {rates}); CPU per request:"
                f" client {client:.0f} us, server {server_cpu:.0f} us"
            )
        print(f"HTTP/2 / HTTP/1.1 = {results['HTTP/2'] / results['HTTP/1.1']:.2f}")
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
