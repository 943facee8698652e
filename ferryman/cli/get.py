"""``ferryman get URL``: a small curl on ferryman's client.

``get`` prints the status line, the response headers, a blank line and then streams the body
to stdout as bytes (curl's ``-i``). The request is built here, exactly as ``-v`` shows it, and
sent with the session's ``send()``, which adds nothing of its own: the options ask for the
rest (``-L`` redirects, ``--compressed`` decoding, ``--http2``). Cookies are not kept between
redirects and no ``Accept-Encoding`` is sent unless asked, as in curl. TLS is verified against
``--cacert``, else ``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi's bundle: what ``Client``
trusts. A URL without a scheme is ``http://``, as curl reads it.

A body that would garble a terminal (still compressed, or holding NUL bytes, curl's test) is
not written to one: a note on stderr says what it is, its size and how to save it.

Errors ferryman raises become one ``error: ...`` line on stderr and exit code 1; HTTP error
statuses exit 0 unless ``--fail`` is given (exit 22, as curl does); a body that cannot be
written exits 23 (curl's write error).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any, BinaryIO, NoReturn

import click

from ferryman._version import __version__
from ferryman.cli.errors import EXIT_USAGE
from ferryman.client.session import AsyncClient
from ferryman.client.transport import create_ssl_context
from ferryman.exceptions import FerrymanError, InvalidURL
from ferryman.http.decoders import ACCEPT_ENCODING, get_content_decoder
from ferryman.http.headers import Headers
from ferryman.http.models import Request, Response
from ferryman.http.url import URL

__all__ = ["get"]

EXIT_ERROR = 1
EXIT_HTTP_ERROR = 22  # curl's CURLE_HTTP_RETURNED_ERROR, for --fail
EXIT_WRITE_ERROR = 23  # curl's CURLE_WRITE_ERROR: stdout closed (``| head``), a file not written
TRACE_VALUE_LIMIT = 80
# How far a body kept off the terminal is read to tell its size when no Content-Length does:
# far enough for any page or image, not so far that a download must finish first.
SIZE_READ_LIMIT = 16 * 1024 * 1024
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@click.command()
@click.argument("url")
@click.option(
    "-X",
    "--request",
    "method",
    metavar="METHOD",
    help="The request method: GET by default, POST with -d or --json.",
)
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
    "-d",
    "--data",
    multiple=True,
    metavar="DATA",
    help=f"Send DATA as the body (repeatable: joined with '&'), as {FORM} unless -H sets a "
    "Content-Type. @FILE sends a file as it is, @- standard input.",
)
@click.option(
    "--json",
    "json_data",
    metavar="JSON",
    help="Send JSON as the body, checked first, with Content-Type and Accept "
    f"{JSON}. @FILE and @- as for -d.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Write the body to FILE (the head still goes to stdout); '-' writes it to stdout "
    "even when that is a terminal and the body is binary.",
)
@click.option(
    "-L", "--location", is_flag=True, help="Follow redirects, printing each response's head."
)
@click.option(
    "--http2", is_flag=True, help="Offer HTTP/2 to https servers (ALPN); http:// stays HTTP/1.1."
)
@click.option(
    "--compressed",
    is_flag=True,
    help="Ask for a compressed body (gzip, deflate, br, zstd) and decode it.",
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
    help="Verify the server with this CA bundle (a PEM file or a hashed directory); without "
    "it, SSL_CERT_FILE and SSL_CERT_DIR when set, else certifi's bundle.",
)
@click.option("--fail", is_flag=True, help="Print nothing and exit 22 on a status >= 400.")
@click.option("-v", "--verbose", is_flag=True, help="Print transport trace events to stderr.")
def get(
    url: str,
    method: str | None,
    headers: list[tuple[str, str]],
    data: tuple[str, ...],
    json_data: str | None,
    output: str | None,
    location: bool,
    http2: bool,
    compressed: bool,
    timeout: float,
    insecure: bool,
    cacert: str | None,
    fail: bool,
    verbose: bool,
) -> None:
    """Send a request to URL (GET unless told otherwise) and print the response head and body.

    A URL without a scheme is http:// (ferryman get localhost:8080/health).
    """
    if insecure and cacert:
        raise click.UsageError("--insecure and --cacert cannot be used together")
    if data and json_data is not None:
        raise click.UsageError("-d/--data and --json cannot be used together")
    body_headers, body = _body(data, json_data)
    context = _ssl_context(False if insecure else cacert or True, http2)
    stdout = sys.stdout.buffer  # click.get_binary_stream is deprecated since click 8.5
    try:
        request = _build_request(
            url,
            method or ("GET" if body is None else "POST"),
            headers,
            body_headers,
            body,
            compressed,
            timeout,
            verbose,
        )
        code = asyncio.run(
            _exchange(
                request,
                context,
                http2=http2,
                location=location,
                compressed=compressed,
                fail=fail,
                output=output,
                stdout=stdout,
            )
        )
    except FerrymanError as exc:
        # In words ("cannot resolve api.example.org: ..."), not a class name.
        _error(str(exc) or type(exc).__name__, EXIT_ERROR)
    except BrokenPipeError:
        # Whoever read stdout has gone; point stdout at /dev/null so the interpreter's final
        # flush does not fail again, and exit as curl does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        sys.exit(EXIT_WRITE_ERROR)
    if code:
        sys.exit(code)


def _parse_header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name:
        raise click.BadParameter(f"{text!r} is not of the form 'Name: value'")
    return name, value.strip()


def _body(data: Sequence[str], json_data: str | None) -> tuple[list[tuple[str, str]], bytes | None]:
    """The headers a body brings (``-H`` may replace them) and the body, or no body."""
    if json_data is not None:
        content = _read_argument(json_data, "--json")
        try:
            json.loads(content)
        except ValueError as exc:  # UnicodeDecodeError included
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="'--json'") from None
        return [("Content-Type", JSON), ("Accept", JSON)], content
    if data:
        return [("Content-Type", FORM)], b"&".join(_read_argument(item, "-d") for item in data)
    return [], None


def _read_argument(value: str, option: str) -> bytes:
    """``@FILE`` is the file's bytes as they are, ``@-`` standard input's, anything else itself."""
    if not value.startswith("@"):
        return value.encode()
    path = value[1:]
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path!r}: {exc.strerror or exc}", param_hint=f"'{option}'"
        ) from None


def _ssl_context(verify: bool | str, http2: bool) -> ssl.SSLContext:
    """The context every connection uses, made once so a bad bundle fails before any request."""
    alpn = ("h2", "http/1.1") if http2 else ("http/1.1",)
    try:
        return create_ssl_context(verify, alpn_protocols=alpn, trust_env=True)
    except OSError as exc:  # ssl.SSLError included: a CA bundle that cannot be loaded
        if isinstance(verify, str):
            raise click.BadParameter(str(exc), param_hint="'--cacert'") from None
        named = [
            f"{name}={os.environ[name]}"
            for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")
            if os.environ.get(name)
        ]
        source = " and ".join(named) or "certifi's bundle"
        _error(f"cannot load the CA certificates of {source}: {exc}", EXIT_USAGE)


def _build_request(
    text: str,
    method: str,
    headers: Sequence[tuple[str, str]],
    body_headers: Sequence[tuple[str, str]],
    body: bytes | None,
    compressed: bool,
    timeout: float,
    verbose: bool,
) -> Request:
    url = URL(text if "://" in text else f"http://{text}")  # curl's guess: no scheme, http
    if not url.scheme or not url.host:
        raise InvalidURL(f"{text!r} is not an absolute http(s) URL")
    defaults = [
        ("Host", url.host_header.decode("ascii")),
        ("User-Agent", f"ferryman/{__version__}"),
        ("Accept", "*/*"),
    ]
    if compressed:
        defaults.append(("Accept-Encoding", ACCEPT_ENCODING.decode("ascii")))
    # A body's headers replace the defaults (--json's Accept), and -H replaces both.
    for replacing in (body_headers, headers):
        given = {name.lower() for name, _ in replacing}
        defaults = [item for item in defaults if item[0].lower() not in given] + [*replacing]
    extensions: dict[str, Any] = {
        "timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)
    }
    if verbose:
        extensions["trace"] = _print_trace_event
    return Request(method, url, headers=Headers(defaults), content=body, extensions=extensions)


async def _exchange(
    request: Request,
    context: ssl.SSLContext,
    *,
    http2: bool,
    location: bool,
    compressed: bool,
    fail: bool,
    output: str | None,
    stdout: BinaryIO,
) -> int:
    """Send the request, print the head of every response and the last one's body."""
    async with AsyncClient(verify=context, http2=http2, store_cookies=False) as client:
        response = await client.send(
            request, stream=True, allow_redirects=location, decompress=compressed
        )
        try:
            if fail and response.status_code >= 400:
                click.echo(f"error: HTTP {_status_line(response)}", err=True)
                return EXIT_HTTP_ERROR
            for hop in (*response.history, response):
                _write_head(hop, stdout)
            if output is None or output == "-":
                guard = output is None and stdout.isatty()
                await _write_body(response, stdout, guard, compressed)
                return 0
            try:
                with open(output, "wb") as file:
                    await _write_body(response, file, False, compressed)
            except OSError as exc:
                click.echo(f"error: cannot write {output!r}: {exc.strerror or exc}", err=True)
                return EXIT_WRITE_ERROR
            return 0
        finally:
            await response.aclose()


def _write_head(response: Response, out: BinaryIO) -> None:
    version = response.http_version
    # HTTP/2 has no reason phrase on the wire; curl prints none either.
    status = str(response.status_code) if version == "HTTP/2" else _status_line(response)
    head = [f"{version} {status}".encode("latin-1")]
    head += [name + b": " + value for name, value in response.headers.raw]
    out.write(b"\n".join(head) + b"\n\n")
    out.flush()


async def _write_body(response: Response, out: BinaryIO, guard: bool, compressed: bool) -> None:
    """Stream the body to ``out``; with ``guard`` (a terminal), never a compressed or binary
    byte: the rest is read only to tell its size."""
    chunks = response.aiter_bytes()
    decoded = False
    if guard:
        coding = response.headers.get("content-encoding", "").strip()
        if coding.lower() not in ("", "identity"):
            decodable = get_content_decoder(coding) is not None
            decoded = compressed and decodable  # the session undoes it
            if not decoded:
                hint = ["--compressed to decode it"] if decodable else []
                size = await _size(response, chunks, 0, decoded=False)
                return _not_shown(f"{coding}-compressed body", response, size, hint)
    shown = 0
    async for chunk in chunks:
        if guard and b"\0" in chunk:  # curl's test for binary data
            size = await _size(response, chunks, shown + len(chunk), decoded=decoded)
            what = f"binary body (after {shown:,} bytes shown)" if shown else "binary body"
            return _not_shown(what, response, size, [])
        out.write(chunk)
        shown += len(chunk)
    out.flush()


async def _size(
    response: Response, chunks: AsyncIterator[bytes], seen: int, *, decoded: bool
) -> str:
    length = response.headers.get("content-length", "")
    if length.isdigit() and not decoded:  # (decoded: Content-Length counts the encoded bytes)
        return f"{int(length):,} bytes"
    total = seen
    async for chunk in chunks:
        total += len(chunk)
        if total > SIZE_READ_LIMIT:
            return f"more than {SIZE_READ_LIMIT // (1024 * 1024)} MiB"
    return f"{total:,} bytes"


def _not_shown(what: str, response: Response, size: str, fixes: list[str]) -> None:
    content_type = response.headers.get("content-type") or "no Content-Type"
    fixes = [*fixes, "-o FILE to save it", "-o - to print it anyway"]
    advice = ", ".join(fixes[:-1]) + ", or " + fixes[-1]
    click.echo(
        f"note: {what} not shown ({content_type}, {size}): binary output can mess up your "
        f"terminal. Use {advice}.",
        err=True,
    )


def _print_trace_event(name: str, info: dict[str, Any]) -> None:
    """The ``trace`` callback of ``-v``: one line per event, values kept short."""
    if name == "http11.receive_response_headers.complete":
        _, status, reason, _ = info["return_value"]
        info = {"status": status, "reason": reason.decode("latin-1")}
    elif name == "http2.receive_response_headers.complete":
        status, _ = info["return_value"]
        info = {"status": status}
    fields = (f"{key}={_shorten(repr(value))}" for key, value in info.items())
    click.echo(" ".join((name, *fields)), err=True)


def _shorten(text: str) -> str:
    return text if len(text) <= TRACE_VALUE_LIMIT else text[: TRACE_VALUE_LIMIT - 3] + "..."


def _status_line(response: Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".rstrip()


def _error(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
