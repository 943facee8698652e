"""``ferryman get URL``: a small curl on ferryman's transport.

``get`` is a small curl: it prints the status line, the response headers, a blank line and
then streams the body to stdout as bytes. Errors ferryman raises become one ``error: ...`` line
on stderr and exit code 1; HTTP error statuses exit 0 unless ``--fail`` is given (exit 22, as
curl does).
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO

import click

from ferryman._version import __version__
from ferryman.client.transport import ConnectionPool, create_ssl_context
from ferryman.exceptions import FerrymanError, InvalidURL
from ferryman.http.headers import Headers
from ferryman.http.models import Request, Response
from ferryman.http.url import URL

__all__ = ["get"]

EXIT_ERROR = 1
EXIT_HTTP_ERROR = 22  # curl's CURLE_HTTP_RETURNED_ERROR, for --fail
EXIT_WRITE_ERROR = 23  # curl's CURLE_WRITE_ERROR: stdout was closed (``| head``)
TRACE_VALUE_LIMIT = 80


@click.command()
@click.argument("url")
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    callback=lambda ctx, param, values: [_parse_header(value) for value in values],
    help="Add a request header (repeatable); replaces a default header of the same name.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds allowed for each of connect, read, write and waiting for the pool.",
)
@click.option("--insecure", is_flag=True, help="Do not verify the server's TLS certificate.")
@click.option(
    "--cacert",
    type=click.Path(exists=True),
    help="Verify the server with this CA bundle (a PEM file or a hashed directory).",
)
@click.option("--fail", is_flag=True, help="Print nothing and exit 22 on a status >= 400.")
@click.option("-v", "--verbose", is_flag=True, help="Print transport trace events to stderr.")
def get(
    url: str,
    headers: list[tuple[str, str]],
    timeout: float,
    insecure: bool,
    cacert: str | None,
    fail: bool,
    verbose: bool,
) -> None:
    """Send a GET request to URL and print the response head and body."""
    if insecure and cacert:
        raise click.UsageError("--insecure and --cacert cannot be used together")
    context = _ssl_context(False if insecure else cacert or True)
    stdout = sys.stdout.buffer  # click.get_binary_stream is deprecated since click 8.5
    try:
        request = _build_request(url, headers, timeout, verbose)
        with (
            ConnectionPool(ssl_context=context) as pool,
            pool.handle_request(request) as response,
        ):
            if fail and response.status_code >= 400:
                _error(f"HTTP {_status_line(response)}", EXIT_HTTP_ERROR)
            _write_response(response, stdout)
    except FerrymanError as exc:
        _error(f"{type(exc).__name__}: {exc}", EXIT_ERROR)
    except BrokenPipeError:
        # Whoever read stdout has gone; point stdout at /dev/null so the interpreter's final
        # flush does not fail again, and exit as curl does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        sys.exit(EXIT_WRITE_ERROR)


def _parse_header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name:
        raise click.BadParameter(f"{text!r} is not of the form 'Name: value'")
    return name, value.strip()


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    try:
        return create_ssl_context(verify)
    except OSError as exc:  # ssl.SSLError included: a CA bundle that cannot be loaded
        raise click.BadParameter(str(exc), param_hint="'--cacert'") from None


def _build_request(
    text: str, headers: Sequence[tuple[str, str]], timeout: float, verbose: bool
) -> Request:
    url = URL(text)
    if not url.scheme or not url.host:  # 'example.com' is a path, 'host:80' has scheme 'host'
        hint = "" if "://" in text else f"; did you mean 'http://{text}'?"
        raise InvalidURL(f"{text!r} is not an absolute http(s) URL{hint}")
    given = {name.lower() for name, _ in headers}
    defaults = [
        ("Host", url.host_header.decode("ascii")),
        ("User-Agent", f"ferryman/{__version__}"),
        ("Accept", "*/*"),
    ]
    extensions: dict[str, Any] = {
        "timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)
    }
    if verbose:
        extensions["trace"] = _print_trace_event
    return Request(
        "GET",
        url,
        headers=Headers([item for item in defaults if item[0].lower() not in given] + [*headers]),
        extensions=extensions,
    )


def _print_trace_event(name: str, info: dict[str, Any]) -> None:
    """The ``trace`` callback of ``-v``: one line per event, values kept short."""
    if name == "http11.receive_response_headers.complete":
        _, status, reason, _ = info["return_value"]
        info = {"status": status, "reason": reason.decode("latin-1")}
    fields = (f"{key}={_shorten(repr(value))}" for key, value in info.items())
    click.echo(" ".join((name, *fields)), err=True)


def _shorten(text: str) -> str:
    return text if len(text) <= TRACE_VALUE_LIMIT else text[: TRACE_VALUE_LIMIT - 3] + "..."


def _status_line(response: Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".rstrip()


def _write_response(response: Response, out: BinaryIO) -> None:
    head = [f"{response.http_version} {_status_line(response)}".encode("latin-1")]
    head += [name + b": " + value for name, value in response.headers.raw]
    out.write(b"\n".join(head) + b"\n\n")
    for chunk in response.iter_bytes():
        out.write(chunk)
    out.flush()


def _error(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
