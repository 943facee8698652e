"""``ferryman get``'s options against real servers: httpbin, the edge server, hypercorn (HTTP/2)
and TLS servers signed by a trustme CA; the terminal checks run the command on a pseudo-terminal.

The basics (head and body, -H, --fail, --timeout, -v, --cacert) are tested in test_main.py.
"""

from __future__ import annotations

import gzip
import json
import os
import pty
import shutil
import subprocess
import tty
from pathlib import Path
from typing import Any

import pytest
import trustme

from ferryman.http.decoders import ACCEPT_ENCODING
from tests.cli.test_main import MODULE, echoed_headers, invoke, run, split_output
from tests.servers.edge import EdgeServer, pattern
from tests.servers.forward_proxy import ForwardProxy
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.hypercorn_server import HypercornServer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def body_json(stdout: bytes) -> Any:
    return json.loads(split_output(stdout)[1])


def heads(stdout: bytes) -> list[bytes]:
    """The status lines of every head in the output (a head ends with a blank line)."""
    return [part.split(b"\n", 1)[0] for part in stdout.split(b"\n\n") if part.startswith(b"HTTP/")]


def run_on_terminal(*args: str) -> tuple[int, bytes, bytes]:
    """The command with its stdout on a pseudo-terminal, in raw mode so bytes arrive as written."""
    controller, terminal = pty.openpty()
    tty.setraw(terminal)
    try:
        proc = subprocess.Popen([*MODULE, *args], stdout=terminal, stderr=subprocess.PIPE)
    finally:
        os.close(terminal)
    output = bytearray()
    try:
        while data := os.read(controller, 65536):
            output += data
    except OSError:  # EIO: the command exited and closed the terminal
        pass
    finally:
        os.close(controller)
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    proc.stderr.close()
    return proc.wait(timeout=60), bytes(output), stderr


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


# -- trust from the environment (SSL_CERT_FILE, SSL_CERT_DIR) -----------------------------------


def test_ssl_cert_file_is_trusted(
    tls_edge: EdgeServer, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    result = invoke("get", tls_edge.url + "/echo")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes.startswith(b"HTTP/1.1 200 OK\n")


def test_ssl_cert_file_in_a_real_process(tls_edge: EdgeServer, ca_file: str) -> None:
    env = {**os.environ, "SSL_CERT_FILE": ca_file}
    proc = subprocess.run(
        [*MODULE, "get", tls_edge.url + "/echo"], capture_output=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"HTTP/1.1 200 OK\n")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="hashing a CA directory needs openssl")
def test_ssl_cert_dir_is_trusted(
    tls_edge: EdgeServer, ca_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "certs"
    directory.mkdir()
    shutil.copy(ca_file, directory / "test-ca.pem")
    subprocess.run(["openssl", "rehash", str(directory)], check=True, capture_output=True)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(directory))
    result = invoke("get", tls_edge.url + "/echo")
    assert result.exit_code == 0, result.stderr


def test_cacert_wins_over_the_environment(
    tls_edge: EdgeServer, ca_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    assert "CERTIFICATE_VERIFY_FAILED" in invoke("get", tls_edge.url + "/echo").stderr
    result = invoke("get", "--cacert", ca_file, tls_edge.url + "/echo")
    assert result.exit_code == 0, result.stderr


def test_an_unreadable_ssl_cert_file_is_named(
    edge: EdgeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "empty.pem"
    bundle.write_text("no certificate here\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    result = invoke("get", edge.url + "/echo")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: cannot load the CA certificates of SSL_CERT_FILE={bundle}"
    )
    assert len(result.stderr.splitlines()) == 1


def test_proxies_from_the_environment(edge: EdgeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """As curl (and ``Client``) read them: http_proxy, and no_proxy to go direct."""
    proxy = ForwardProxy().start()
    try:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        assert invoke("get", edge.url + "/echo?via=proxy").exit_code == 0
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        assert invoke("get", edge.url + "/echo?direct").exit_code == 0
        assert [seen.target for seen in proxy.requests] == [f"{edge.url}/echo?via=proxy"]
    finally:
        proxy.stop()


# -- the request: -X, -d, --json ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH"])
def test_request_method(httpbin: HttpbinServer, method: str) -> None:
    result = invoke("get", "-X", method, f"{httpbin.url}/{method.lower()}")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes.startswith(b"HTTP/1.1 200 OK\n")


def test_head_request_does_not_wait_for_a_body(httpbin: HttpbinServer) -> None:
    result = invoke("get", "--request", "HEAD", "--timeout", "5", f"{httpbin.url}/get")
    assert result.exit_code == 0, result.stderr
    head, body = split_output(result.stdout_bytes)
    assert head[0] == b"HTTP/1.1 200 OK" and body == b""
    assert any(line.startswith(b"Content-Length: ") for line in head)


def test_data_is_a_form_post(httpbin: HttpbinServer, tmp_path: Path) -> None:
    result = invoke("get", "-d", "a=1", "--data", "b=two%20words", f"{httpbin.url}/post")
    assert result.exit_code == 0, result.stderr
    answer = body_json(result.stdout_bytes)
    assert answer["form"] == {"a": "1", "b": "two words"}
    assert answer["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    # @FILE is sent as it is (newlines kept), @- is standard input.
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"line one\nline two\n\x00\xff")
    result = invoke("get", "-d", f"@{upload}", "-H", "Content-Type: x/y", f"{httpbin.url}/post")
    answer = body_json(result.stdout_bytes)
    assert answer["data"].startswith("data:application/octet-stream;base64,")
    assert answer["headers"]["Content-Type"] == "x/y"
    assert answer["headers"]["Content-Length"] == str(len(upload.read_bytes()))
    result = invoke("get", "-X", "PUT", "-d", "@-", f"{httpbin.url}/put", input=b"from=stdin")
    answer = body_json(result.stdout_bytes)
    assert answer["form"] == {"from": "stdin"}


def test_data_sent_to_the_edge_server_as_written(edge: EdgeServer) -> None:
    result = invoke("get", "-d", "x=1", "-d", "y=2", edge.url + "/echo")
    answer = body_json(result.stdout_bytes)
    assert (answer["method"], answer["body"]) == ("POST", "x=1&y=2")
    assert ["Content-Length", "7"] in answer["headers"]


def test_data_from_a_missing_file_is_a_usage_error(edge: EdgeServer, tmp_path: Path) -> None:
    result = invoke("get", "-d", f"@{tmp_path}/missing", edge.url)
    assert result.exit_code == 2
    assert "Invalid value for '-d': cannot read" in result.stderr


def test_json_body(httpbin: HttpbinServer, tmp_path: Path) -> None:
    result = invoke("get", "--json", '{"name": "ferryman", "tags": [1, 2]}', f"{httpbin.url}/post")
    assert result.exit_code == 0, result.stderr
    answer = body_json(result.stdout_bytes)
    assert answer["json"] == {"name": "ferryman", "tags": [1, 2]}
    assert answer["headers"]["Content-Type"] == "application/json"
    assert answer["headers"]["Accept"] == "application/json"
    document = tmp_path / "doc.json"
    document.write_text('["from a file"]')
    result = invoke("get", "-X", "PATCH", "--json", f"@{document}", f"{httpbin.url}/patch")
    assert body_json(result.stdout_bytes)["json"] == ["from a file"]


def test_json_headers_are_sent_once_and_yield_to_header_options(edge: EdgeServer) -> None:
    result = invoke("get", "--json", "1", "-H", "Accept: text/plain", edge.url + "/echo")
    headers = echoed_headers(split_output(result.stdout_bytes)[1])
    assert [name for name, _ in headers].count("Accept") == 1
    assert ["Accept", "text/plain"] in headers
    assert ["Content-Type", "application/json"] in headers


def test_invalid_json_is_a_usage_error(edge: EdgeServer) -> None:
    result = invoke("get", "--json", "{'single': 'quotes'}", edge.url)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: Invalid value for '--json': not valid JSON: ")


def test_data_and_json_exclude_each_other(edge: EdgeServer) -> None:
    result = invoke("get", "-d", "a=1", "--json", "{}", edge.url)
    assert result.exit_code == 2
    assert "-d/--data and --json cannot be used together" in result.stderr


# -- the answer: -L, --compressed, --http2 ------------------------------------------------------


def test_redirects_are_printed_not_followed_by_default(httpbin: HttpbinServer) -> None:
    result = invoke("get", f"{httpbin.url}/redirect/2")
    assert result.exit_code == 0
    assert heads(result.stdout_bytes) == [b"HTTP/1.1 302 FOUND"]


def test_location_follows_redirects_and_prints_each_head(httpbin: HttpbinServer) -> None:
    result = invoke("get", "-L", f"{httpbin.url}/redirect/3")
    assert result.exit_code == 0, result.stderr
    assert heads(result.stdout_bytes) == [b"HTTP/1.1 302 FOUND"] * 3 + [b"HTTP/1.1 200 OK"]
    body = result.stdout_bytes.rsplit(b"\n\n", 1)[1]
    assert json.loads(body)["url"] == f"{httpbin.url}/get"
    result = invoke("get", "--location", "--fail", f"{httpbin.url}/redirect-to?url=/status/418")
    assert result.exit_code == 22
    assert result.stderr == "error: HTTP 418 I'M A TEAPOT\n"


def test_no_accept_encoding_unless_compressed(edge: EdgeServer) -> None:
    plain = echoed_headers(split_output(invoke("get", edge.url + "/echo").stdout_bytes)[1])
    assert "accept-encoding" not in {name.lower() for name, _ in plain}
    asked = invoke("get", "--compressed", edge.url + "/echo").stdout_bytes
    assert ["Accept-Encoding", ACCEPT_ENCODING.decode()] in echoed_headers(split_output(asked)[1])


@pytest.mark.parametrize("coding", ["gzip", "deflate", "brotli"])
def test_compressed_answers_are_decoded(httpbin: HttpbinServer, coding: str) -> None:
    result = invoke("get", "--compressed", f"{httpbin.url}/{coding}")
    assert result.exit_code == 0, result.stderr
    head, body = split_output(result.stdout_bytes)
    assert any(line.startswith(b"Content-Encoding: ") for line in head)  # the head as received
    flag = {"gzip": "gzipped", "deflate": "deflated", "brotli": "brotli"}[coding]
    assert json.loads(body)[flag] is True


def test_without_compressed_the_bytes_are_as_received(httpbin: HttpbinServer) -> None:
    result = invoke("get", f"{httpbin.url}/gzip")  # httpbin compresses even unasked
    _, body = split_output(result.stdout_bytes)
    assert json.loads(gzip.decompress(body))["gzipped"] is True


def test_http2(hypercorn: HypercornServer, ca_file: str) -> None:
    result = invoke("get", "--http2", "--cacert", ca_file, hypercorn.url + "/echo")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes.startswith(b"HTTP/2 200\n")
    assert body_json(result.stdout_bytes)["http_version"] == "2"
    result = invoke("get", "--cacert", ca_file, hypercorn.url + "/echo")
    assert body_json(result.stdout_bytes)["http_version"] == "1.1"


def test_http2_verbose_names_the_status(hypercorn: HypercornServer, ca_file: str) -> None:
    result = invoke("get", "-v", "--http2", "--cacert", ca_file, hypercorn.url + "/echo")
    assert result.exit_code == 0, result.stderr
    assert "http2.receive_response_headers.complete status=200" in result.stderr.splitlines()


# -- the body: -o, and what a terminal is spared ------------------------------------------------


def test_output_file_gets_the_body_and_stdout_the_head(
    httpbin: HttpbinServer, tmp_path: Path
) -> None:
    target = tmp_path / "image.png"
    result = invoke("get", "-o", str(target), f"{httpbin.url}/image/png")
    assert result.exit_code == 0, result.stderr
    head, body = split_output(result.stdout_bytes)
    assert head[0] == b"HTTP/1.1 200 OK" and body == b""
    assert target.read_bytes().startswith(PNG_SIGNATURE)
    assert b"Content-Length: %d" % target.stat().st_size in head


def test_output_file_with_redirects_and_decoding(httpbin: HttpbinServer, tmp_path: Path) -> None:
    target = tmp_path / "answer.json"
    args = ["--compressed", "-L", "--output", str(target), f"{httpbin.url}/redirect-to?url=/gzip"]
    result = invoke("get", *args)
    assert result.exit_code == 0, result.stderr
    assert heads(result.stdout_bytes) == [b"HTTP/1.1 302 FOUND", b"HTTP/1.1 200 OK"]
    assert json.loads(target.read_bytes())["gzipped"] is True


def test_output_file_that_cannot_be_written(edge: EdgeServer, tmp_path: Path) -> None:
    target = tmp_path / "no-such-directory" / "out"
    result = invoke("get", "-o", str(target), edge.url + "/echo")
    assert result.exit_code == 23
    assert result.stderr == f"error: cannot write {str(target)!r}: No such file or directory\n"


def test_fail_writes_no_output_file(edge: EdgeServer, tmp_path: Path) -> None:
    target = tmp_path / "out"
    result = invoke("get", "--fail", "-o", str(target), edge.url + "/status?code=500")
    assert result.exit_code == 22
    assert not target.exists()


def test_binary_body_is_kept_off_a_terminal(httpbin: HttpbinServer) -> None:
    code, stdout, stderr = run_on_terminal("get", f"{httpbin.url}/image/png")
    assert code == 0, stderr
    assert stdout.startswith(b"HTTP/1.1 200 OK\n") and stdout.endswith(b"\n\n")
    assert PNG_SIGNATURE not in stdout
    assert stderr == (
        b"note: binary body not shown (image/png, 8,090 bytes): binary output can mess up your "
        b"terminal. Use -o FILE to save it, or -o - to print it anyway.\n"
    )


def test_binary_body_of_unknown_length_is_measured(httpbin: HttpbinServer) -> None:
    code, stdout, stderr = run_on_terminal("get", f"{httpbin.url}/stream-bytes/50000?seed=1")
    assert code == 0, stderr
    assert b"Transfer-Encoding: chunked" in stdout
    assert b"(application/octet-stream, 50,000 bytes)" in stderr


def test_compressed_body_is_kept_off_a_terminal(httpbin: HttpbinServer) -> None:
    code, stdout, stderr = run_on_terminal("get", f"{httpbin.url}/gzip")
    assert code == 0, stderr
    _, body = split_output(stdout)
    assert body == b""
    assert stderr.startswith(b"note: gzip-compressed body not shown (application/json, ")
    assert b"Use --compressed to decode it, -o FILE to save it, or -o - to print" in stderr
    code, stdout, stderr = run_on_terminal("get", "--compressed", f"{httpbin.url}/gzip")
    assert (code, stderr) == (0, b"")
    assert json.loads(split_output(stdout)[1])["gzipped"] is True


def test_text_and_dash_output_reach_a_terminal(edge: EdgeServer, httpbin: HttpbinServer) -> None:
    code, stdout, stderr = run_on_terminal("get", edge.url + "/echo")
    assert (code, stderr) == (0, b"")
    assert json.loads(split_output(stdout)[1])["method"] == "GET"
    code, stdout, stderr = run_on_terminal("get", "-o", "-", f"{httpbin.url}/image/png")
    assert (code, stderr) == (0, b"")
    assert split_output(stdout)[1].startswith(PNG_SIGNATURE)


def test_binary_body_is_written_raw_to_a_pipe(edge: EdgeServer) -> None:
    proc = run("get", f"{edge.url}/big?size=100000")
    assert proc.returncode == 0 and proc.stderr == b""
    assert split_output(proc.stdout)[1] == pattern(100_000)
