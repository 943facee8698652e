"""``ferryman start`` as a real process: the access log on stderr by default (200 requests, 200
lines), off, in a file, as JSON with the rest of stderr, shared by ``--workers``; and each kind
of upstream failure logged in words, on both proxy paths."""

from __future__ import annotations

import http.client
import json
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import yaml  # type: ignore[import-untyped, unused-ignore]

from tests.apps.accesslog.test_formats import TEXT
from tests.cli.proxy_process import ProxyProcess
from tests.servers.edge import EdgeServer


def access_lines(lines: list[str]) -> list[re.Match[str]]:
    return [m for line in lines if (m := TEXT.match(line + "\n"))]


def get_many(base_url: str, paths: list[str], connections: int = 1) -> list[int]:
    """GET each path (spread over ``connections`` kept-alive connections); the statuses."""
    parts = urlsplit(base_url)
    statuses: list[int] = []
    lock = threading.Lock()

    def run(share: list[str]) -> None:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            for path in share:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                with lock:
                    statuses.append(response.status)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(paths[i::connections],)) for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def try_get(base_url: str, path: str) -> int | None:
    """GET on a new connection; the status, or None when the answer broke off."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def stopped(process: ProxyProcess) -> list[str]:
    """Stop the process gracefully; every line it printed."""
    process.signal()
    assert process.wait() == 0, process.output
    return process.lines


def test_200_requests_print_200_lines_on_stderr(edge: EdgeServer) -> None:
    process = ProxyProcess(["--endpoint", f"api=0:{edge.url}", "--set", "proxy.port=0"])
    try:
        process.wait_serving()
        statuses = get_many(process.url("api"), [f"/echo?n={i}" for i in range(200)])
        assert statuses == [200] * 200
        lines = stopped(process)
    finally:
        process.stop()
    matches = access_lines(lines)
    assert len(matches) == 200
    assert sorted(m["target"] for m in matches) == sorted(f"/echo?n={i}" for i in range(200))
    assert {m["status"] for m in matches} == {"200"}


def test_off_prints_no_line(edge: EdgeServer) -> None:
    process = ProxyProcess(
        ["--endpoint", f"api=0:{edge.url}", "--set", "proxy.port=0", "--access-log", "off"]
    )
    try:
        process.wait_serving()
        assert get_many(process.url("api"), ["/echo"] * 50) == [200] * 50
        lines = stopped(process)
    finally:
        process.stop()
    assert access_lines(lines) == []
    assert all(line.startswith("ferryman: ") for line in lines), lines


def test_a_file_receives_the_lines_and_stderr_none(edge: EdgeServer, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("kept\n")
    process = ProxyProcess(
        ["--endpoint", f"api=0:{edge.url}", "--set", "proxy.port=0", "--access-log", str(log)]
    )
    try:
        process.wait_serving()
        assert get_many(process.url("api"), ["/status?code=404"] * 30) == [404] * 30
        lines = stopped(process)
    finally:
        process.stop()
    assert access_lines(lines) == []
    written = log.read_text().splitlines()
    assert written[0] == "kept"  # appended to
    assert len(access_lines(written[1:])) == 30


def test_json_makes_every_stderr_line_an_object(edge: EdgeServer) -> None:
    process = ProxyProcess(
        ["--endpoint", f"api=0:{edge.url}", "--set", "proxy.port=0", "--log-format", "json"]
    )
    try:
        process.wait_for_line(r'"message": "serving \(pid')
        records = [json.loads(line) for line in process.lines]
        (address,) = [r for r in records if r.get("message", "").startswith("endpoint api on ")]
        url = re.search(r"http://\S+", address["message"])
        assert url is not None and address["level"] == "info"
        assert get_many(url[0], ["/echo?x=1"] * 20) == [200] * 20
        lines = stopped(process)
    finally:
        process.stop()
    records = [json.loads(line) for line in lines]  # every line, start-up and shutdown too
    access = [r for r in records if "endpoint" in r]
    assert len(access) == 20
    assert {(r["status"], r["target"]) for r in access} == {(200, "/echo?x=1")}


def test_workers_share_a_file_in_whole_lines(edge: EdgeServer, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    process = ProxyProcess(
        [
            "--endpoint",
            f"api=0:{edge.url}",
            "--set",
            "proxy.port=0",
            "--workers",
            "2",
            "--access-log",
            str(log),
            # flushed often: more writes from each worker to interleave
            "--set",
            "logging.flush_interval=0.01",
        ]
    )
    try:
        process.wait_serving(count=2)
        paths = [f"/echo?pad={'p' * (i % 700)}&n={i}" for i in range(600)]
        # A new connection for each few requests: the kernel spreads them over both workers.
        statuses: list[int] = []
        for start in range(0, 600, 100):
            statuses += get_many(process.url("api"), paths[start : start + 100], connections=20)
        assert statuses == [200] * 600
        stopped(process)
    finally:
        process.stop()
    written = log.read_text().splitlines()
    matches = access_lines(written)
    assert len(matches) == len(written) == 600  # not one line cut or mixed with another
    assert sorted(m["target"] for m in matches) == sorted(paths)


# -- upstream failures, in words -----------------------------------------------------------------

#: What must never be printed for an upstream's failure: exception class names, tracebacks.
CLASS_NAMES = re.compile(
    r"Traceback|Error\b|Exception\b|gaierror|ReadTimeout|ConnectTimeout|RemoteProtocol"
)


def test_each_upstream_failure_is_logged_in_words_on_both_paths(
    edge: EdgeServer, tls_edge: EdgeServer, refused_url: str, tmp_path: Path
) -> None:
    causes = {
        "refused": (refused_url, "/x", "refused: the upstream {url} refused the connection"),
        "dns": (
            "http://no-such-host.invalid",
            "/x",
            "DNS failure: the upstream {url} could not be resolved (DNS failure)",
        ),
        "tls": (tls_edge.url, "/x", "TLS failure: the upstream {url} failed the TLS handshake ("),
        "timeout": (
            edge.url,
            "/slow-head?delay=3",
            "timeout: the upstream {url} did not answer in time",
        ),
        "truncated": (
            edge.url,
            "/truncated",
            "truncated answer: the upstream {url} broke off its answer half-way",
        ),
    }
    endpoints = []
    for name, (url, _path, _line) in causes.items():
        for general in (False, True):
            endpoint = {
                "name": f"{name}-{'general' if general else 'fast'}",
                "port": 0,
                "url": url,
                "timeout": {"connect": 2, "read": 0.5},
            }
            if general:  # options only the http client understands: the general path
                endpoint["request_options"] = {"allow_redirects": False}
            endpoints.append(endpoint)
    config = tmp_path / "ferryman.yml"
    config.write_text(yaml.safe_dump({"proxy": {"port": 0, "endpoints": endpoints}}))
    process = ProxyProcess(["--config", str(config)])
    try:
        process.wait_serving()
        for endpoint in endpoints:
            name = endpoint["name"]
            _url, path, _line = causes[name.split("-")[0]]
            for _ in range(3):
                try_get(process.url(name), path)
        lines = stopped(process)
    finally:
        process.stop()
    output = "\n".join(lines)
    assert not CLASS_NAMES.search(output), output
    for name, (url, _path, line) in causes.items():
        expected = "ferryman: warning: ferryman.proxy: " + line.format(url=url)
        logged = [text for text in lines if text.startswith(expected)]
        # Once per cause and upstream: the fast and the general path share the line, and the
        # interval's count says both met it (3 requests each: the first written, 5 counted).
        assert len(logged) == 1, (name, expected, "\n" + output)
        kind = line.split(":")[0]
        count = f"ferryman: warning: ferryman.proxy: {kind}: the upstream {url}, 5 more times"
        assert any(text.startswith(count) for text in lines), (name, "\n" + output)
    # The access log says it too, for each request of the fast relay, in the same words.
    access = access_lines(lines)
    assert len(access) == 3 * len(endpoints)
    for name, (url, _path, line) in causes.items():
        words = line.format(url=url).split(": ", 1)[1]
        fast = {m["error"] for m in access if m["endpoint"] == f"{name}-fast"}
        assert len(fast) == 1 and fast.pop().startswith(words), (name, "\n" + output)
