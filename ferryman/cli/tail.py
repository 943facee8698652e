"""``ferryman tail``: the proxy's finished transactions as they happen, one line each.

It reads the storage's live stream (``GET /api/transactions/stream``, server-sent events) on
the kernel's port with ferryman's own :class:`~ferryman.client.AsyncClient`, filters it here
(``--endpoint``, ``--method``, ``--status 5xx``, ``--tag name=value``) and prints::

    14:03:07.412  api  GET  /users/42?full=1  200  12.4 ms  1.2 KiB

the status coloured by class (rich; plain when the output is not a terminal). When the proxy
stops or restarts it says so once on stderr and connects again until it is back; Ctrl-C ends
it quietly with 0. Text from traffic is printed with its control characters escaped, so a
target cannot move the cursor or recolour the terminal.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import click

from ferryman.cli.errors import Command, fail

__all__ = ["Filters", "format_line", "parse_events", "tail"]

STREAM_PATH: Final = "/api/transactions/stream"
#: Seconds between reconnection attempts: doubling from the first to the last.
RETRY_FIRST: Final = 0.5
RETRY_MAX: Final = 5.0
#: The stream sends a comment every 15 s: a silence this long means the connection is dead.
READ_TIMEOUT: Final = 45.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_STATUS = re.compile(r"^(?:[1-5]xx|[1-5]\d\d|error)$")
_STYLES: Final = {1: "dim", 2: "green", 3: "cyan", 4: "yellow", 5: "bold red"}


class StreamRefused(Exception):
    """The server answered, but not with the stream (401, 404...): retrying will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Filters:
    endpoint: Sequence[str] = ()
    method: Sequence[str] = ()
    status: Sequence[str] = ()
    tags: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def __call__(self, item: dict[str, Any]) -> bool:
        if self.endpoint and item.get("endpoint") not in self.endpoint:
            return False
        if self.method and str(item.get("method", "")).upper() not in self.method:
            return False
        if self.status and not any(_status_matches(s, item) for s in self.status):
            return False
        tags = item.get("tags") or {}
        return all(tags.get(name) == value for name, value in self.tags)


def _status_matches(wanted: str, item: dict[str, Any]) -> bool:
    status = int(item.get("status") or 0)
    if wanted == "error":
        return status == 0 or item.get("error") is not None
    if wanted.endswith("xx"):
        return status // 100 == int(wanted[0])
    return status == int(wanted)


def _clean(text: object) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _size(n: object) -> str:
    if not isinstance(n, int):
        return "-"
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


def format_line(item: dict[str, Any]) -> Any:
    """One transaction as a rich ``Text``: time, endpoint, method, target, status, duration,
    size."""
    from rich.text import Text

    started = item.get("started")
    moment = time.localtime(started) if isinstance(started, int | float) else None
    clock = "--:--:--.---"
    if moment is not None and isinstance(started, int | float):
        clock = time.strftime("%H:%M:%S", moment) + f".{int(started * 1000) % 1000:03d}"
    status = item.get("status") or 0
    error = item.get("error")
    duration = item.get("duration_ms")
    line = Text()
    line.append(clock, style="dim")
    line.append("  ")
    line.append(_clean(item.get("endpoint", "?")), style="magenta")
    line.append("  ")
    line.append(_clean(item.get("method", "?")), style="bold")
    line.append("  ")
    line.append(_clean(item.get("target", "")))
    line.append("  ")
    line.append(
        str(status) if status else "---",
        style="bold red" if error or not status else _STYLES.get(int(status) // 100, ""),
    )
    line.append("  ")
    line.append(f"{duration:.1f} ms" if isinstance(duration, int | float) else "-")
    line.append("  ")
    line.append(_size(item.get("response_size")))
    if error:
        line.append("  ")
        line.append(_clean(error), style="red")
    return line


async def parse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """Server-sent events as ``(event, data)``: comments skipped, ``data`` lines joined."""
    event, data = "message", list[str]()
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)


async def follow(
    url: str, auth: tuple[str, str] | None, filters: Filters, console: Any, errors: Any
) -> None:
    """Print the stream's transactions until cancelled, connecting again whenever it ends."""
    from ferryman.client.config import Timeout
    from ferryman.client.session import AsyncClient
    from ferryman.exceptions import TransportError

    stream_url = url.rstrip("/") + STREAM_PATH
    delay = RETRY_FIRST
    waiting = False
    async with AsyncClient(
        auth=auth, trust_env=False, timeout=Timeout(5.0, read=READ_TIMEOUT)
    ) as client:
        while True:
            try:
                response = await client.request(
                    "GET", stream_url, headers={"Accept": "text/event-stream"}, stream=True
                )
                try:
                    if response.status_code != 200:
                        await response.aread()
                        raise StreamRefused(response.status_code, _reason(response))
                    if waiting:
                        errors.print(f"connected again to {url}")
                    else:
                        errors.print(f"tailing {stream_url} (Ctrl-C stops)")
                    waiting, delay = False, RETRY_FIRST
                    async for kind, data in parse_events(response.aiter_lines()):
                        if kind == "transaction":
                            item = json.loads(data)
                            if filters(item):
                                console.print(format_line(item), soft_wrap=True)
                        elif kind == "missed":
                            errors.print(f"... {data} transactions missed (too fast to print)")
                finally:
                    await response.aclose()
                problem = "the stream ended (the proxy stopped?)"
            except (TransportError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                problem = f"cannot read {stream_url}: {_words(exc)}"
            if not waiting:
                errors.print(f"{problem}; connecting again until it is back")
                waiting = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)


def _reason(response: Any) -> str:
    try:
        message = str(json.loads(response.content).get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    return _clean(message or response.reason_phrase or "")


def _words(exc: BaseException) -> str:
    text = str(exc).strip()
    return _clean(text) if text else type(exc).__name__


def _tags(values: Sequence[str]) -> list[tuple[str, str]]:
    tags = []
    for value in values:
        name, sep, tag_value = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not name=value", param_hint="'--tag'")
        tags.append((name.lower(), tag_value))
    return tags


@click.command(cls=Command)
@click.option(
    "--url",
    default="http://127.0.0.1:4080",
    show_default=True,
    envvar="FERRYMAN_TAIL_URL",
    help="The proxy's kernel port (proxy.port), where the dashboard and /api are.",
)
@click.option("--user", envvar="FERRYMAN_TAIL_USER", help="dashboard.auth's username.")
@click.option(
    "--password",
    envvar="FERRYMAN_TAIL_PASSWORD",
    help="dashboard.auth's password (better in FERRYMAN_TAIL_PASSWORD than on a command line).",
)
@click.option("--endpoint", multiple=True, help="Only this endpoint (repeatable).")
@click.option("--method", multiple=True, help="Only this method (repeatable).")
@click.option("--status", multiple=True, help="2xx..5xx, a code, or 'error' (repeatable).")
@click.option("--tag", multiple=True, help="Only transactions with this tag: name=value.")
def tail(
    url: str,
    user: str | None,
    password: str | None,
    endpoint: tuple[str, ...],
    method: tuple[str, ...],
    status: tuple[str, ...],
    tag: tuple[str, ...],
) -> None:
    """Print the proxy's transactions as they finish, one line each, until Ctrl-C.

    \b
    ferryman tail
    ferryman tail --endpoint api --status 5xx
    FERRYMAN_TAIL_PASSWORD=... ferryman tail --url http://10.0.0.5:4080 --user admin
    """
    from rich.console import Console

    for value in status:
        if not _STATUS.match(value):
            raise click.BadParameter(
                f"{value!r} is not 2xx..5xx, a code, or 'error'", param_hint="'--status'"
            )
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{url!r} is not an http:// or https:// URL", param_hint="'--url'")
    if (user is None) != (password is None):
        raise click.UsageError("--user and --password go together")
    filters = Filters(
        endpoint=endpoint,
        method=tuple(m.upper() for m in method),
        status=status,
        tags=tuple(_tags(tag)),
    )
    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    auth = None if user is None or password is None else (user, password)
    try:
        asyncio.run(follow(url, auth, filters, console, errors))
    except KeyboardInterrupt:
        sys.exit(0)
    except StreamRefused as exc:
        hint = ""
        if exc.status == 401:
            hint = ": the dashboard asks for a password (--user, --password)"
        elif exc.status == 404:
            hint = ": is the storage application running there?"
        fail(f"--url: {url} answered {exc.status} {exc}{hint}", code=1)
