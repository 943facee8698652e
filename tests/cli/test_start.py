"""``ferryman start`` as a user runs it: a real process, real clients, real upstreams.

Every proxy here listens on port 0 (``--set proxy.port=0``, ``--endpoint api=0:URL``) and the
tests read the real ports from the lines it prints at start-up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import ferryman
from ferryman import _compiled
from tests.cli.proxy_process import ProxyProcess
from tests.servers.edge import EdgeServer
from tests.servers.httpbin_server import HttpbinServer

StartProxy = Callable[..., ProxyProcess]
KERNEL_ON_PORT_0 = ("--set", "proxy.port=0")


@pytest.fixture
def start_proxy() -> Iterator[StartProxy]:
    """Start ``ferryman start ARGS...`` (or another command); every one is stopped at the end."""
    started: list[ProxyProcess] = []

    def start(*args: str, **kwargs: object) -> ProxyProcess:
        process = ProxyProcess(args, **kwargs)  # type: ignore[arg-type]
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def fetch(url: str, timeout: float = 30.0) -> ferryman.Response:
    with ferryman.Client(timeout=timeout, trust_env=False) as client:
        response = client.get(url)
        response.read()
        return response


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still running"
        time.sleep(0.05)


# -- clients ---------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_through_the_proxy_to_httpbin(start_proxy: StartProxy, httpbin: HttpbinServer) -> None:
    proxy = start_proxy(*KERNEL_ON_PORT_0, "--endpoint", f"api=0:{httpbin.url}").wait_serving()
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "30",
            "-H",
            "X-Team: core",
            proxy.url("api") + "/get?a=1&b=%2F&show_env=1",
        ],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["args"] == {"a": "1", "b": "/", "show_env": "1"}
    assert answer["headers"]["X-Team"] == "core"
    assert answer["headers"]["Host"] == f"127.0.0.1:{httpbin.port}"
    assert answer["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert "Via" in answer["headers"]


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_ferryman_client_through_the_proxy(
    start_proxy: StartProxy, edge: EdgeServer, loop: str
) -> None:
    proxy = start_proxy(*KERNEL_ON_PORT_0, "--loop", loop, "-e", f"api=0:{edge.url}")
    proxy.wait_serving()
    response = fetch(proxy.url("api") + "/echo?path=a%2Fb&x=%7E")
    assert response.status_code == 200
    answer = response.json()
    assert answer["target"] == "/echo?path=a%2Fb&x=%7E"  # byte for byte
    names = {name.lower() for name, _ in answer["headers"]}
    assert {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via"} <= names


def test_httpx_through_the_proxy(start_proxy: StartProxy, httpbin: HttpbinServer) -> None:
    httpx = pytest.importorskip("httpx")
    proxy = start_proxy(*KERNEL_ON_PORT_0, "-e", f"api=0:{httpbin.url}").wait_serving()
    with httpx.Client(trust_env=False, timeout=30) as client:
        posted = client.post(proxy.url("api") + "/post", content=b"x" * 200_000)
        streamed = client.get(proxy.url("api") + "/stream/20")
    assert posted.status_code == 200
    assert posted.json()["data"] == "x" * 200_000
    assert streamed.status_code == 200
    assert len(streamed.text.splitlines()) == 20


def test_refused_upstream_is_a_502(start_proxy: StartProxy) -> None:
    with socket.socket() as bound:  # bound, not listening: connecting is refused
        bound.bind(("127.0.0.1", 0))
        upstream = f"http://127.0.0.1:{bound.getsockname()[1]}"
        proxy = start_proxy(*KERNEL_ON_PORT_0, "-e", f"api=0:{upstream}").wait_serving()
        response = fetch(proxy.url("api") + "/x")
    assert response.status_code == 502
    assert response.json()["status"] == 502


def test_python_m_ferryman_proxy(start_proxy: StartProxy, edge: EdgeServer) -> None:
    proxy = start_proxy(
        "--port",
        "0",
        "--upstream",
        edge.url,
        *KERNEL_ON_PORT_0,
        command=[sys.executable, "-m", "ferryman.proxy"],
    ).wait_serving()
    assert fetch(proxy.url("bench") + "/status?code=201").status_code == 201


def test_startup_lines_name_each_endpoint_and_hide_credentials(
    start_proxy: StartProxy, tmp_path: Path
) -> None:
    config = tmp_path / "ferryman.yml"
    config.write_text(
        "proxy:\n"
        "  port: 0\n"
        "  endpoints:\n"
        "    - {name: api, port: 0, url: ['http://user:secret@127.0.0.1:9/v1', 'http://127.0.0.1:8']}\n"
        "    - {name: maps, path: /maps, url: http://127.0.0.1:7}\n"
    )
    proxy = start_proxy("--config", str(config)).wait_serving()
    kernel = proxy.url("kernel")
    assert (
        f"ferryman: endpoint api on {proxy.url('api')} -> http://127.0.0.1:9/v1, http://127.0.0.1:8"
        in proxy.output
    )
    assert f"ferryman: endpoint maps on {kernel}/maps -> http://127.0.0.1:7" in proxy.output
    assert "secret" not in proxy.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("port", ["0", "free"])
def test_applications_listening_to_events_see_the_traffic(
    start_proxy: StartProxy, edge: EdgeServer, tmp_path: Path, port: str
) -> None:
    """With listeners, requests take the kernel's general path: on a port chosen at bind time
    (0) as on one given in advance."""
    config = tmp_path / "ferryman.toml"
    config.write_text(
        'applications = ["proxy", "tests.cli.example_app"]\n[recorder]\ntag = "cli-test"\n'
    )
    proxy = start_proxy(
        *KERNEL_ON_PORT_0,
        "-c",
        str(config),
        "-e",
        f"api={_free_port() if port == 'free' else 0}:{edge.url}",
    ).wait_serving()
    response = fetch(proxy.url("api") + "/echo?x=%2F")
    assert response.status_code == 200
    assert response.headers["X-Seen-By"] == "cli-test"
    answer = response.json()
    assert answer["target"] == "/echo?x=%2F"
    assert ["X-Filtered", "cli-test"] in answer["headers"]


# -- failures ---------------------------------------------------------------------------------


def test_port_in_use_exits_1_naming_the_setting_that_chose_it(start_proxy: StartProxy) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoint = start_proxy(*KERNEL_ON_PORT_0, "-e", f"api={port}:http://127.0.0.1:9")
        kernel = start_proxy(env={"FERRYMAN_PROXY__PORT": str(port)})
        assert endpoint.wait() == 1
        assert kernel.wait() == 1
    assert endpoint.output == (
        f"ferryman: error: cannot listen on 127.0.0.1:{port}: address already in use; the port "
        f"is proxy.endpoints.0.port (endpoint 'api', from --endpoint api={port}:http://127.0.0.1:9)"
    )
    assert kernel.output == (
        f"ferryman: error: cannot listen on 127.0.0.1:{port}: address already in use; the port "
        "is proxy.port (the kernel's port, from FERRYMAN_PROXY__PORT)"
    )


def test_a_host_that_does_not_resolve_is_named(start_proxy: StartProxy) -> None:
    proxy = start_proxy(
        *KERNEL_ON_PORT_0,
        "--host",
        "nowhere.invalid",
        *("--set", "dashboard.auth.username=a", "--set", "dashboard.auth.password=b"),
    )
    assert proxy.wait() == 1
    assert proxy.output == (
        "ferryman: error: cannot listen on nowhere.invalid:0: cannot resolve nowhere.invalid; "
        "the host is proxy.host (from --host nowhere.invalid)"
    )


def test_bad_configuration_exits_2_before_listening(start_proxy: StartProxy) -> None:
    proxy = start_proxy("--set", "proxy.grace_period=-1")
    assert proxy.wait() == 2
    assert proxy.output == (
        "error: proxy.grace_period: must be at least 0 (got -1 from --set proxy.grace_period=-1)"
    )


# -- signals ---------------------------------------------------------------------------------


def _slow_request_in_flight(
    proxy: ProxyProcess, edge: EdgeServer, delay: float
) -> tuple[threading.Thread, list[object]]:
    """A GET to the slow upstream from a thread, returned once the upstream has received it."""
    outcome: list[object] = []
    target = f"/slow-head?delay={delay}&id={time.monotonic_ns()}"

    def request() -> None:
        try:
            outcome.append(fetch(proxy.url("api") + target))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=request)
    thread.start()
    deadline = time.monotonic() + 20
    while not any(t == target for _, t in edge.requests):
        assert time.monotonic() < deadline, "the request did not reach the upstream"
        time.sleep(0.02)
    return thread, outcome


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_lets_the_request_in_flight_finish_then_exits_0(
    start_proxy: StartProxy, edge: EdgeServer, signum: int
) -> None:
    proxy = start_proxy(*KERNEL_ON_PORT_0, "-e", f"api=0:{edge.url}").wait_serving()
    thread, outcome = _slow_request_in_flight(proxy, edge, delay=1.5)
    proxy.signal(signum)
    proxy.wait_for_line("shutting down")
    thread.join(30)
    [response] = outcome
    assert isinstance(response, ferryman.Response), response
    assert (response.status_code, response.content) == (200, b"late")
    assert proxy.wait() == 0
    assert "ferryman: stopped" in proxy.output


def test_new_connections_are_refused_during_the_grace_period(
    start_proxy: StartProxy, edge: EdgeServer
) -> None:
    proxy = start_proxy(*KERNEL_ON_PORT_0, "-e", f"api=0:{edge.url}").wait_serving()
    address = proxy.url("api").removeprefix("http://").rpartition(":")
    thread, outcome = _slow_request_in_flight(proxy, edge, delay=2)
    proxy.signal(signal.SIGTERM)
    proxy.wait_for_line("shutting down")
    # The line is printed just before the sockets close: allow the server a moment.
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((address[0], int(address[2])), timeout=5).close()
        except ConnectionRefusedError:
            break
        except ConnectionResetError:
            pass  # (taken into the backlog as the socket closed: try again)
        assert time.monotonic() < deadline, "still accepting connections"
        time.sleep(0.05)
    thread.join(30)
    [response] = outcome
    assert isinstance(response, ferryman.Response), response
    assert response.status_code == 200
    assert proxy.wait() == 0


def test_second_signal_exits_at_once(start_proxy: StartProxy, edge: EdgeServer) -> None:
    proxy = start_proxy(
        *KERNEL_ON_PORT_0, "--set", "proxy.grace_period=60", "-e", f"api=0:{edge.url}"
    ).wait_serving()
    thread, outcome = _slow_request_in_flight(proxy, edge, delay=30)
    proxy.signal(signal.SIGINT)
    proxy.wait_for_line("shutting down")
    proxy.signal(signal.SIGINT)
    assert proxy.wait(timeout=10) == 128 + signal.SIGINT
    thread.join(30)
    assert isinstance(outcome[0], ferryman.exceptions.TransportError), outcome


def test_grace_period_bounds_the_shutdown(start_proxy: StartProxy, edge: EdgeServer) -> None:
    proxy = start_proxy(
        *KERNEL_ON_PORT_0, "--set", "proxy.grace_period=0.5", "-e", f"api=0:{edge.url}"
    ).wait_serving()
    thread, _ = _slow_request_in_flight(proxy, edge, delay=30)
    proxy.signal(signal.SIGTERM)
    assert proxy.wait(timeout=15) == 0
    thread.join(30)


# -- workers ---------------------------------------------------------------------------------


def test_workers_share_the_ports_and_stop_together(
    start_proxy: StartProxy, edge: EdgeServer
) -> None:
    proxy = start_proxy(*KERNEL_ON_PORT_0, "--workers", "2", "-e", f"api=0:{edge.url}")
    serving = proxy.wait_for_line(r"^ferryman: serving \(pid (?P<pid>\d+)\)", count=2)
    pids = {int(match["pid"]) for match in serving}
    assert len(pids) == 2 and proxy.process.pid not in pids
    addresses = {line for line in proxy.lines if line.startswith("ferryman: endpoint api on ")}
    assert len(addresses) == 1  # both workers listen on the one port the supervisor picked
    for _ in range(10):  # a new connection each time: the kernel spreads them over the workers
        assert fetch(proxy.url("api") + "/status?code=204").status_code == 204
    proxy.signal(signal.SIGTERM)
    assert proxy.wait() == 0
    for pid in pids:
        _wait_gone(pid)


def test_a_crashed_worker_is_reported_and_replaced(
    start_proxy: StartProxy, edge: EdgeServer
) -> None:
    proxy = start_proxy(*KERNEL_ON_PORT_0, "-w", "2", "-e", f"api=0:{edge.url}")
    serving = proxy.wait_for_line(r"^ferryman: serving \(pid (?P<pid>\d+)\)", count=2)
    victim = int(serving[0]["pid"])
    os.kill(victim, signal.SIGKILL)
    proxy.wait_for_line(
        rf"^ferryman: warning: worker \d \(pid {victim}\) exited with signal SIGKILL"
    )
    proxy.wait_for_line(r"^ferryman: serving \(pid", count=3)
    assert fetch(proxy.url("api") + "/status?code=204").status_code == 204
    proxy.signal(signal.SIGTERM)
    assert proxy.wait() == 0


def test_workers_that_cannot_start_stop_the_supervisor(start_proxy: StartProxy) -> None:
    with socket.socket() as taken:  # listening without SO_REUSEPORT: nobody can share it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proxy = start_proxy(*KERNEL_ON_PORT_0, "-w", "2", "-e", f"api={port}:http://127.0.0.1:9")
        assert proxy.wait() == 1
    assert "could not start: stopping" in proxy.output


def test_killed_supervisor_takes_its_workers_along(
    start_proxy: StartProxy, edge: EdgeServer
) -> None:
    proxy = start_proxy(*KERNEL_ON_PORT_0, "-w", "2", "-e", f"api=0:{edge.url}")
    serving = proxy.wait_for_line(r"^ferryman: serving \(pid (?P<pid>\d+)\)", count=2)
    proxy.process.kill()
    proxy.wait()
    for match in serving:
        _wait_gone(int(match["pid"]))


# -- reload ----------------------------------------------------------------------------------


def _touch(path: Path, text: str) -> None:
    path.write_text(text)
    later = time.time() + 2  # a different mtime even on coarse-grained file systems
    os.utime(path, (later, later))


def test_reload_restarts_on_a_config_or_python_change(
    start_proxy: StartProxy, edge: EdgeServer, httpbin: HttpbinServer, tmp_path: Path
) -> None:
    config = tmp_path / "ferryman.yml"
    config.write_text(
        f"proxy:\n  port: 0\n  endpoints: [{{name: api, port: 0, url: '{edge.url}'}}]\n"
    )
    proxy = start_proxy("--reload", "--config", str(config), cwd=tmp_path).wait_serving()
    [first] = proxy.pids()
    assert fetch(proxy.url("api") + "/status?code=204").status_code == 204

    _touch(
        config, f"proxy:\n  port: 0\n  endpoints: [{{name: api, port: 0, url: '{httpbin.url}'}}]\n"
    )
    proxy.wait_for_line(r"ferryman: .*ferryman\.yml changed: restarting")
    proxy.wait_serving(count=2)
    _wait_gone(first)
    assert fetch(proxy.url("api") + "/status/418").status_code == 418  # httpbin now

    _touch(tmp_path / "app.py", "VALUE = 1\n")
    proxy.wait_for_line(r"app\.py changed: restarting")
    proxy.wait_serving(count=3)

    proxy.signal(signal.SIGTERM)
    assert proxy.wait() == 0


def test_reload_waits_for_a_fix_after_a_bad_change(
    start_proxy: StartProxy, edge: EdgeServer, tmp_path: Path
) -> None:
    config = tmp_path / "ferryman.yml"
    good = f"proxy:\n  port: 0\n  endpoints: [{{name: api, port: 0, url: '{edge.url}'}}]\n"
    config.write_text(good)
    proxy = start_proxy("--reload", "-c", str(config), cwd=tmp_path).wait_serving()
    _touch(config, "proxy:\n  port: nope\n")
    proxy.wait_for_line(r"waiting for a file to change before starting again")
    assert f"error: proxy.port: must be a whole number (got 'nope' from {config}:2)" in proxy.output
    _touch(config, good)
    proxy.wait_serving(count=2)
    assert fetch(proxy.url("api") + "/status?code=204").status_code == 204
    proxy.signal(signal.SIGINT)
    assert proxy.wait() == 0


def test_reload_passes_the_app_dir_to_its_child(
    start_proxy: StartProxy, edge: EdgeServer, tmp_path: Path
) -> None:
    apps, elsewhere = tmp_path / "apps", tmp_path / "elsewhere"
    apps.mkdir()
    elsewhere.mkdir()
    (apps / "tagging.py").write_text(
        "from ferryman.events import EventDispatcher\n"
        "from ferryman.server import EVENT_CORE_RESPONSE\n"
        "from ferryman.system import Application\n\n\n"
        "class Tagging(Application):\n"
        "    name = 'tagging'\n\n"
        "    def on_bound(self, event):\n"
        "        def tag(e):\n"
        "            e.response.headers['X-Tagged'] = 'yes'\n\n"
        "        event.provider.resolve(EventDispatcher).add_listener(EVENT_CORE_RESPONSE, tag)\n"
    )
    proxy = start_proxy(
        "--reload",
        "--app-dir",
        str(apps),
        "--set",
        "applications=[proxy, 'tagging:Tagging']",
        "--endpoint",
        f"api=0:{edge.url}",
        *KERNEL_ON_PORT_0,
        cwd=elsewhere,
    ).wait_serving()
    assert fetch(proxy.url("api") + "/status?code=204").headers["X-Tagged"] == "yes"
    proxy.signal(signal.SIGTERM)
    assert proxy.wait() == 0


def test_start_says_when_the_relay_runs_from_source(
    start_proxy: StartProxy, httpbin: HttpbinServer
) -> None:
    pure = start_proxy(
        "--endpoint", f"api=0:{httpbin.url}", *KERNEL_ON_PORT_0, env={"FERRYMAN_PURE_PYTHON": "1"}
    ).wait_serving()
    assert "ferryman: the relay runs as pure Python (FERRYMAN_PURE_PYTHON)" in pure.output
    assert fetch(pure.url("api") + "/get").status_code == 200  # and it relays all the same

    default = start_proxy("--endpoint", f"api=0:{httpbin.url}", *KERNEL_ON_PORT_0).wait_serving()
    said = "the relay runs as" in default.output
    assert said == (_compiled.mode != "compiled"), default.output
