"""Storage's cost, side by side in one run: wrk -> ``ferryman start`` -> nginx, with storage
off, recording into SQLite, and recording into PostgreSQL (issue 22, section 6: storage on
keeps >= 0.8x of storage off, and records every request wrk completed).

    python benchmarks/storage_bench.py [--duration 10] [--repeat 3] [--pg postgresql://...]

Each run is bounded (wrk ``-d``, every subprocess killed by process group at the end). wrk is
pinned to CPU 0 and ferryman to CPU 1 when ``taskset`` exists, as the proxy benchmark does.
Storage's writer process (a child of ferryman) is let run on any CPU, as the operating system
would place it without ``taskset`` (``--writer-cpu pinned`` keeps it on ferryman's CPU,
``other`` puts it beside wrk and nginx).

"proxy CPU/req" is the proxy process's own user + system CPU (``/proc/PID/stat``) over the
warm-up and the measured run, divided by the requests wrk completed: the robust column on a
shared machine. "writer CPU/req" is what the rest of the process tree used until it exited
(``wait4``'s figure, which includes the children ferryman waited for, less the proxy's own):
the writer process, and the proxy's shutdown.
"Completed" is the sum of wrk's "N requests in" over the warm-up and the measured run;
"recorded" is counted in the database after ferryman exited (its shutdown writes what was
queued). Requests still in flight when wrk stops are answered and recorded but not counted by
wrk: recorded may exceed completed by up to the number of connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import IO

from ferryman.apps.storage.writer import DISCARD_ENV

NGINX_CONF = """
daemon off;
worker_processes 1;
error_log {dir}/nginx-error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir};
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "hello, world\\n"; }}
    }}
}}
"""
ENDPOINT_LINE = re.compile(r"ferryman: endpoint api on (http://\S+?)(/\S*)? -> ")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pinned(cpu: int, command: Sequence[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") else list(command)


def start_nginx(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as file:
        file.write(NGINX_CONF.format(dir=workdir, port=port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen(
        [nginx, "-c", conf, "-p", workdir], start_new_session=True, stderr=subprocess.DEVNULL
    )
    wait_port(port)
    return process, port


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def start_ferryman(
    upstream: int, settings: Sequence[str], env: dict[str, str], log: IO[bytes]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "ferryman.cli.main",
        "start",
        "--endpoint",
        f"api={port}:http://127.0.0.1:{upstream}",
        "--set",
        "proxy.port=0",
        *(arg for setting in settings for arg in ("--set", setting)),
    ]
    process = subprocess.Popen(
        # Its stderr (the access log, on by default) goes to a file, as a service manager
        # would keep it: a pipe nobody reads fills, and its writes then block.
        pinned(1, command),
        start_new_session=True,
        stderr=log,
        env=env,
    )
    wait_port(port, 60)
    return process, f"http://127.0.0.1:{port}/"


def wrk(url: str, duration: float, connections: int) -> tuple[float, int]:
    """req/s and completed requests of one wrk run."""
    out = subprocess.run(
        pinned(0, ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", url]),
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    completed = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  (wrk saw {errors.group(1)} non-2xx answers)", file=sys.stderr)
    return rate, completed


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The pids of a process's children (every thread's), from /proc."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found += [int(child) for child in file.read().split()]
    except OSError:
        pass
    return found


def place_children(pid: int, cpus: Sequence[int], wait: float) -> int:
    """Let ferryman's children (the storage writer) run on ``cpus``; how many there were."""
    deadline = time.monotonic() + wait
    while True:
        found = children(pid)
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for child in found:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(child, cpus)
    return len(found)


def stop(process: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """Stop the process group; the CPU seconds the process and the children it waited for
    used in all (0 if unknown)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return float(usage.ru_utime + usage.ru_stime)
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return 0.0


async def count(url: str) -> int:
    from sqlalchemy import func, select

    from ferryman.apps.storage.migrate import create_engine
    from ferryman.apps.storage.schema import transactions

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            query = select(func.count()).select_from(transactions)
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def pg_admin(admin_url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin_url, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="where a scratch database is created (and dropped)",
    )
    parser.add_argument("--only", default="off,sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the cases")
    parser.add_argument(
        "--writer-cpu",
        choices=("float", "pinned", "other"),
        default="float",
        help="the writer on any CPU, on ferryman's (1), or on wrk's and nginx's (0)",
    )
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="ferryman-storage-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")}
    env["FERRYMAN_DATA_DIR"] = workdir  # never the user's data directory
    pg_name = f"ferryman_bench_{uuid.uuid4().hex[:8]}"
    base, _, _ = args.pg.rpartition("/")
    cases = {
        "off": (["storage.enabled=false"], None),
        "sqlite": ([f"storage.url=sqlite:///{workdir}/bench.db"], f"sqlite:///{workdir}/bench.db"),
        "postgresql": ([f"storage.url={base}/{pg_name}"], f"{base}/{pg_name}"),
        # Diagnostics: the listeners alone (nothing queued), heads without bodies, and
        # everything the proxy does to record, with a writer that discards (no database, no
        # CPU taken from the others): the proxy process's own cost of recording.
        "discard": ([f"storage.url=sqlite:///{workdir}/d.db"], None),
        "discard-heads": (
            [f"storage.url=sqlite:///{workdir}/dh.db", "storage.endpoints.api.record=headers"],
            None,
        ),
        "listeners": (
            [f"storage.url=sqlite:///{workdir}/l.db", "storage.endpoints.api.record=none"],
            None,
        ),
        # The writer writing as records come, even while the proxy is saturated.
        "sqlite-nohold": (
            [f"storage.url=sqlite:///{workdir}/nh.db", "storage.hold_under_load=0"],
            f"sqlite:///{workdir}/nh.db",
        ),
        "postgresql-nohold": (
            [f"storage.url={base}/{pg_name}", "storage.hold_under_load=0"],
            f"{base}/{pg_name}",
        ),
        "headers": (
            [f"storage.url=sqlite:///{workdir}/h.db", "storage.endpoints.api.record=headers"],
            f"sqlite:///{workdir}/h.db",
        ),
    }
    wanted = args.only.split(",")
    nginx, upstream = start_nginx(workdir)
    runs: dict[str, list[tuple[float, int, int | None, float, float]]] = {n: [] for n in wanted}
    try:
        if any(name.startswith("postgresql") for name in wanted):
            asyncio.run(pg_admin(args.pg, f'CREATE DATABASE "{pg_name}"'))
        for _ in range(args.repeat):  # rounds: the machine's drift falls on every case alike
            for name in wanted:
                runs[name].append(run_case(name, cases[name], upstream, env, args))
    finally:
        stop(nginx)
        if any(name.startswith("postgresql") for name in wanted):
            asyncio.run(pg_admin(args.pg, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        shutil.rmtree(workdir, ignore_errors=True)
    report(runs, args)


def run_case(
    name: str,
    case: tuple[list[str], str | None],
    upstream: int,
    env: dict[str, str],
    args: argparse.Namespace,
) -> tuple[float, int, int | None, float, float]:
    """One case once: req/s, completed, recorded (None: not counted), the proxy's own CPU
    per request, and the rest of its process tree's."""
    settings, url = case
    before = 0
    if url:
        with contextlib.suppress(Exception):  # no table before the first run
            before = asyncio.run(count(url))
    case_env = {**env, DISCARD_ENV: "1"} if name.startswith("discard") else env
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below, once read)
    process, target = start_ferryman(upstream, settings, case_env, log)
    if name != "off" and args.writer_cpu != "pinned":
        cpus = [0] if args.writer_cpu == "other" else range(os.cpu_count() or 1)
        place_children(process.pid, cpus, 10)
    started_cpu = cpu_seconds(process.pid)
    try:
        _, warm = wrk(target, args.warmup, args.connections)
        rate, completed = wrk(target, args.duration, args.connections)
        own = cpu_seconds(process.pid) - started_cpu
    finally:
        # Includes the shutdown's final writes: all the recording's CPU is counted.
        used = stop(process) - started_cpu
    log.seek(0)
    stderr = "\n".join(
        line
        for line in log.read().decode(errors="replace").splitlines()
        if not line.startswith("20")  # (the access log's lines start with their time)
    )
    log.close()
    if "dropped" in stderr or "full" in stderr or "writer" in stderr:
        print(f"  [{name}] {stderr.strip()[-400:]}", file=sys.stderr)
    recorded = asyncio.run(count(url)) - before if url else None
    done = warm + completed
    return rate, done, recorded, own / done, max(used - own, 0.0) / done


def report(
    runs: dict[str, list[tuple[float, int, int | None, float, float]]], args: argparse.Namespace
) -> None:
    """Medians over the rounds (req/s, CPU); completed and recorded summed over them."""
    rows = {}
    for name, results in runs.items():
        recorded = [r[2] for r in results]
        rows[name] = (
            statistics.median(r[0] for r in results),
            sum(r[1] for r in results),
            None if None in recorded else sum(r for r in recorded if r is not None),
            statistics.median(r[3] for r in results),
            statistics.median(r[4] for r in results),
        )
    off = rows["off"][0] if "off" in rows else None
    off_cpu = rows["off"][3] if "off" in rows else None
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration:g}s, small body (nginx upstream); "
        f"{args.repeat} round(s): medians, completed and recorded summed; writer {args.writer_cpu}"
    )
    print(
        f"{'storage':<14}{'req/s':>8}{'vs off':>9}{'completed':>11}{'recorded':>10}{'diff':>7}"
        f"{'proxy CPU/req':>15}{'vs off':>9}{'writer CPU/req':>16}"
    )
    for name, (rate, completed, recorded, cpu, rest) in rows.items():
        ratio = f"{rate / off:.2f}x" if off else "-"
        rec = "-" if recorded is None else str(recorded)
        diff = "-" if recorded is None else f"{recorded - completed:+d}"
        cpu_ratio = f"{off_cpu / cpu:.2f}x" if off_cpu and cpu else "-"
        print(
            f"{name:<14}{rate:>8.0f}{ratio:>9}{completed:>11}{rec:>10}{diff:>7}"
            f"{cpu * 1e6:>12.1f} us{cpu_ratio:>9}{rest * 1e6:>13.1f} us"
        )


if __name__ == "__main__":
    main()
