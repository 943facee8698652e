"""The ``ferryman`` command: argument handling in process (CliRunner) and the real console
script run as a subprocess, both against the edge test server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import CliRunner, Result

from ferryman._version import __version__
from ferryman.cli.main import main
from tests.servers.edge import EdgeServer, pattern

MODULE = [sys.executable, "-m", "ferryman.cli.main"]


def invoke(*args: str, input: bytes | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=input)
    # Anything but a deliberate exit is a crash the user would see as a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def run(*args: str, command: list[str] = MODULE) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*command, *args], capture_output=True, timeout=60)


def split_output(stdout: bytes) -> tuple[list[bytes], bytes]:
    head, blank, body = stdout.partition(b"\n\n")
    assert blank, stdout[:200]
    return head.split(b"\n"), body


def echoed_headers(body: bytes) -> list[list[str]]:
    headers: list[list[str]] = json.loads(body)["headers"]
    return headers


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port that is bound (so nobody else takes it) but not listening: connect is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


# -- in process ------------------------------------------------------------------------------


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"ferryman, version {__version__}\n"


def test_get_is_a_subcommand_of_the_group() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "get" in result.stdout.split("Commands:")[1]


def test_status_line_headers_then_body(edge: EdgeServer) -> None:
    result = invoke("get", edge.url + "/status?code=404")
    assert result.exit_code == 0  # any HTTP status is a success without --fail, as in curl
    assert result.stdout_bytes == b"HTTP/1.1 404 Custom Reason\nContent-Length: 4\n\nbody"
    assert result.stderr == ""


def test_default_headers(edge: EdgeServer) -> None:
    result = invoke("get", edge.url + "/echo")
    assert result.exit_code == 0
    _, body = split_output(result.stdout_bytes)
    assert echoed_headers(body) == [
        ["Host", f"127.0.0.1:{edge.port}"],
        ["User-Agent", f"ferryman/{__version__}"],
        ["Accept", "*/*"],
    ]


def test_header_option_is_sent_and_replaces_a_default(edge: EdgeServer) -> None:
    result = invoke(
        "get", edge.url + "/echo", "-H", "X-Test:  two words ", "--header", "user-agent: mine/1"
    )
    assert result.exit_code == 0
    _, body = split_output(result.stdout_bytes)
    headers = echoed_headers(body)
    assert ["X-Test", "two words"] in headers
    assert [value for name, value in headers if name.lower() == "user-agent"] == ["mine/1"]
    assert ["Accept", "*/*"] in headers


@pytest.mark.parametrize("value", ["no-colon", ": no name"])
def test_malformed_header_is_a_usage_error(edge: EdgeServer, value: str) -> None:
    result = invoke("get", edge.url + "/echo", "-H", value)
    assert result.exit_code == 2
    assert "'Name: value'" in result.stderr


def test_invalid_header_name_is_reported_without_traceback(edge: EdgeServer) -> None:
    result = invoke("get", edge.url + "/echo", "-H", "Bad Name: x")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Invalid header name 'Bad Name'")


def test_url_without_scheme_is_http(edge: EdgeServer) -> None:
    result = invoke("get", f"127.0.0.1:{edge.port}/echo?q=1")  # as curl reads it
    assert result.exit_code == 0, result.stderr
    _, body = split_output(result.stdout_bytes)
    assert json.loads(body)["target"] == "/echo?q=1"


@pytest.mark.parametrize("url", ["http://", "https:///path"])
def test_url_without_host(url: str) -> None:
    result = invoke("get", url)
    assert result.exit_code == 1
    assert result.stderr == f"error: {url!r} is not an absolute http(s) URL\n"


def test_unsupported_scheme() -> None:
    result = invoke("get", "ftp://example.com/file")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the URL scheme 'ftp'")


@pytest.mark.parametrize("code", [400, 503])
def test_fail_exits_22_without_output(edge: EdgeServer, code: int) -> None:
    result = invoke("get", "--fail", f"{edge.url}/status?code={code}")
    assert result.exit_code == 22
    assert result.stdout_bytes == b""
    assert result.stderr == f"error: HTTP {code} Custom Reason\n"


def test_fail_on_a_success_prints_the_response(edge: EdgeServer) -> None:
    result = invoke("get", "--fail", edge.url + "/status?code=399")
    assert result.exit_code == 0
    assert result.stdout_bytes.endswith(b"\n\nbody")


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_timeout_must_be_a_positive_number(edge: EdgeServer, value: str) -> None:
    result = invoke("get", edge.url, "--timeout", value)
    assert result.exit_code == 2
    assert "--timeout" in result.stderr


def test_verbose_prints_each_trace_event_on_one_short_line(edge: EdgeServer) -> None:
    long_path = "/echo?q=" + "x" * 300
    result = invoke("get", "-v", edge.url + long_path)
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [
        f"{phase}.{step}"
        for phase in [
            "connection.connect_tcp",
            "http11.send_request_headers",
            "http11.send_request_body",
            "http11.receive_response_headers",
            "http11.receive_response_body",
            "http11.response_closed",
        ]
        for step in ("started", "complete")
    ]
    assert lines[0] == (
        f"connection.connect_tcp.started host='127.0.0.1' port={edge.port} "
        "local_address=None timeout=10.0"
    )
    assert "http11.receive_response_headers.complete status=200 reason='OK'" in lines
    request_line = lines[2]
    assert request_line.startswith("http11.send_request_headers.started request=<Request ['GET'")
    value = request_line.split("=", 1)[1]
    assert len(value) == 80
    assert value.endswith("...")
    # The trace goes to stderr only: stdout is the response, unchanged.
    assert result.stdout_bytes.startswith(b"HTTP/1.1 200 OK\n")
    assert b"connect_tcp" not in result.stdout_bytes


def test_timeout_option_reaches_the_transport(edge: EdgeServer) -> None:
    result = invoke("get", "-v", "--timeout", "3.5", edge.url + "/echo")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0].endswith(" timeout=3.5")


def test_tls_is_verified_by_default(tls_edge: EdgeServer) -> None:
    result = invoke("get", tls_edge.url + "/echo")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: TLS handshake failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr


def test_cacert_trusts_the_server(tls_edge: EdgeServer, ca: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    result = invoke("get", "--cacert", str(bundle), tls_edge.url + "/echo")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes.startswith(b"HTTP/1.1 200 OK\n")


def test_insecure_skips_verification(tls_edge: EdgeServer) -> None:
    result = invoke("get", "--insecure", tls_edge.url + "/echo")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes.startswith(b"HTTP/1.1 200 OK\n")


def test_cacert_that_is_no_bundle_is_a_usage_error(edge: EdgeServer, tmp_path: Path) -> None:
    bundle = tmp_path / "not-a-ca.pem"
    bundle.write_text("hello\n")
    result = invoke("get", "--cacert", str(bundle), edge.url)
    assert result.exit_code == 2
    assert "Invalid value for '--cacert'" in result.stderr


def test_insecure_and_cacert_exclude_each_other(edge: EdgeServer, tmp_path: Path) -> None:
    result = invoke("get", "--insecure", "--cacert", str(tmp_path), edge.url)
    assert result.exit_code == 2
    assert "--insecure and --cacert" in result.stderr


# -- the real command, as a subprocess --------------------------------------------------------


def test_subprocess_prints_the_response(edge: EdgeServer) -> None:
    proc = run("get", edge.url + "/echo", "-H", "X-Test: from the command line")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    head, body = split_output(proc.stdout)
    assert head == [
        b"HTTP/1.1 200 OK",
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
    ]
    assert ["X-Test", "from the command line"] in echoed_headers(body)


def test_subprocess_verbose(edge: EdgeServer) -> None:
    proc = run("get", "-v", edge.url + "/echo")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.decode().splitlines()
    assert lines[0].startswith("connection.connect_tcp.started host='127.0.0.1'")
    assert lines[-1] == "http11.response_closed.complete return_value=None"
    assert proc.stdout.startswith(b"HTTP/1.1 200 OK\n")


def test_subprocess_connection_refused(refused_url: str) -> None:
    proc = run("get", refused_url)
    assert proc.returncode == 1
    assert proc.stdout == b""
    where = refused_url.removeprefix("http://").rstrip("/")
    assert proc.stderr == f"error: cannot connect to {where}: connection refused\n".encode()
    assert b"Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_subprocess_dns_failure_is_said_in_words() -> None:
    # .invalid never resolves (RFC 6761), with or without a network.
    proc = run("get", "http://api.example.invalid/x")
    assert proc.returncode == 1
    assert proc.stderr.startswith(b"error: cannot resolve api.example.invalid: ")
    assert b"gaierror" not in proc.stderr and b"Error" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_subprocess_read_timeout(edge: EdgeServer) -> None:
    # The server answers after 2 s; a ReadTimeout proves the client gave up first (no wall-clock
    # assertion: a loaded CI machine may take seconds just to start the interpreter).
    proc = run("get", "--timeout", "0.2", edge.url + "/slow-head?delay=2")
    assert proc.returncode == 1
    assert proc.stderr.startswith(b"error: no data received from the server for 0.2 s")
    assert b"Traceback" not in proc.stderr


def test_subprocess_fail_on_404(edge: EdgeServer) -> None:
    proc = run("get", "--fail", edge.url + "/status?code=404")
    assert proc.returncode == 22
    assert proc.stdout == b""
    assert proc.stderr == b"error: HTTP 404 Custom Reason\n"


def test_subprocess_url_without_host() -> None:
    proc = run("get", "http://")
    assert proc.returncode == 1
    assert proc.stderr.startswith(b"error: 'http://' is not an absolute")
    assert b"Traceback" not in proc.stderr


# Runs the command and then reports its peak memory. VmHWM, unlike ru_maxrss, starts afresh at
# exec: it does not inherit the peak of the (large) pytest process that started the child.
PEAK_MEMORY = """
import atexit, re, sys
from ferryman.cli.main import main
status = lambda: open("/proc/self/status").read()
atexit.register(lambda: sys.stderr.write(re.search(r"VmHWM:\\s*(\\d+) kB", status())[1]))
main(sys.argv[1:])
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_subprocess_streams_a_big_body(edge: EdgeServer, tmp_path: Path) -> None:
    size = 96 * 1024 * 1024
    out = tmp_path / "out"
    with out.open("wb") as stdout:
        proc = subprocess.run(
            [sys.executable, "-c", PEAK_MEMORY, "get", f"{edge.url}/big?size={size}"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    _, body = split_output(out.read_bytes())
    assert body == pattern(size)
    peak = int(proc.stderr) * 1024
    assert peak < size / 2  # the body went through the process, not into it


def test_subprocess_reader_going_away_is_no_traceback(edge: EdgeServer) -> None:
    proc = subprocess.Popen(
        [*MODULE, "get", f"{edge.url}/big?size={64 * 1024 * 1024}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(100).startswith(b"HTTP/1.1 200 OK\n")
    proc.stdout.close()  # like `ferryman get URL | head -c 100`
    assert proc.wait(timeout=30) == 23  # curl's exit code for a failed write
    assert proc.stderr.read() == b""
    proc.stderr.close()


def _console_script() -> str | None:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("ferryman", path=path)


@pytest.mark.skipif(_console_script() is None, reason="the ferryman script is not installed")
def test_console_script(edge: EdgeServer) -> None:
    script: Any = _console_script()
    proc = run("--version", command=[script])
    assert proc.returncode == 0
    assert proc.stdout == f"ferryman, version {__version__}\n".encode()
    proc = run("get", "-H", "X-Script: yes", edge.url + "/echo", command=[script])
    assert proc.returncode == 0, proc.stderr
    _, body = split_output(proc.stdout)
    assert ["X-Script", "yes"] in echoed_headers(body)
    proc = run("get", "http://", command=[script])
    assert proc.returncode == 1
    assert proc.stderr.startswith(b"error: 'http://' is not an absolute http(s) URL")
