"""One access-log line per finished transaction, as text or as JSON, built with string operations.

The text line reads left to right like nginx's combined format, with the proxy's own fields
after the status, and the optional ones as ``key=value`` so that ``grep cache=HIT`` works::

    2026-01-05T10:15:32.123Z 127.0.0.1:52334 api "GET /users?id=1 HTTP/1.1" 200 213 3.2ms \
        http://10.0.0.5:9000/users?id=1
    2026-01-05T10:15:33.020Z 127.0.0.1:52336 api "GET /x HTTP/1.1" 502 81 0.4ms - \
        error="the upstream http://10.0.0.5:9000 refused the connection"

(each on one line).
time (UTC, when the request head arrived), client address, endpoint, request line, status (0:
nothing was sent), response body bytes, duration, the upstream URL (``-``: none was reached),
then ``cache=``, ``attempts=`` with ``tried=`` (each failed try's upstream and what failed,
when the request went more than once) and ``error=``, each when there is one. Quoted fields
escape ``"``, ``\\`` and control characters (``\\xHH``), so a line is always one line and can
be split on its quotes.

The JSON line is one object with the same fields (``null`` when absent; ``attempts`` always,
``tried`` a list of ``{"upstream", "failure"}``) plus the transaction's ``id`` (what the
storage and the dashboard know it by) and ``request_bytes``.

Cheap on purpose (it runs once per request, on the event loop): no ``logging`` machinery, no
``json.dumps`` of a dict, the time's seconds formatted once per second, and the query's secrets
looked for only in a target that has a query.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring_ascii
from typing import Final

from ferryman.proxy.transactions import Transaction

__all__ = ["LineFormatter", "escape", "json_line", "query_redactor", "text_line"]

Redactor = Callable[[str], str]
REDACTED: Final = "[redacted]"

# Characters a quoted text field may not hold as they are.
_ESCAPES: Final = {i: f"\\x{i:02x}" for i in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def escape(text: str) -> str:
    """``text`` fit to stand between double quotes on one line (unchanged when it already is)."""
    if '"' in text or "\\" in text or not text.isprintable():
        return text.translate(_ESCAPES)
    return text


def query_redactor(names: Iterable[str]) -> Redactor | None:
    """A function that replaces the values of the query parameters ``names`` (any case) in a
    target or URL by ``[redacted]``; ``None`` when there are no names."""
    names = [name for name in names if name]
    if not names:
        return None
    pattern = re.compile(
        r"([?&;](?:" + "|".join(re.escape(name) for name in names) + r")=)[^&;#]*", re.IGNORECASE
    )

    def redact(text: str) -> str:
        return pattern.sub(r"\g<1>" + REDACTED, text) if "?" in text else text

    return redact


class _Clock:
    """``2026-01-05T10:15:32.123Z`` for an epoch time: the text of the last millisecond is kept
    (at 50,000 requests a second, fifty lines share it), the seconds part formatted once each.
    It also keeps the text of recent client addresses (a kept-alive client sends many requests).
    """

    __slots__ = ("clients", "millisecond", "prefix", "second", "text")

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""
        self.millisecond = -1
        self.text = ""
        self.clients: dict[tuple[str, int], str] = {}

    def stamp(self, when: float) -> str:
        millisecond = int(when * 1000)
        if millisecond == self.millisecond:
            return self.text
        second = millisecond // 1000
        if second != self.second:
            self.second = second
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self.millisecond = millisecond
        self.text = text = self.prefix + _MILLISECONDS[millisecond - second * 1000]
        return text

    def client(self, client: tuple[str, int] | None) -> str:
        if client is None:
            return "-"
        text = self.clients.get(client)
        if text is None:
            if len(self.clients) >= MAX_CLIENTS:
                self.clients.clear()
            text = self.clients[client] = _client(client)
        return text


def _client(client: tuple[str, int]) -> str:
    host = client[0]
    return f"[{host}]:{client[1]}" if ":" in host else f"{host}:{client[1]}"


#: Client addresses whose text is kept; beyond, the cache starts again.
MAX_CLIENTS: Final = 4096
#: ``.000Z`` to ``.999Z``: a millisecond's text is looked up, not formatted (once a request).
_MILLISECONDS: Final = [f".{index:03d}Z" for index in range(1000)]


def milliseconds(seconds: float) -> str:
    """A duration as the text line gives it, ``12.3ms`` (tenths, rounded half up): integer
    arithmetic, which costs a fraction of a float format."""
    tenths = int(seconds * 10000.0 + 0.5)
    if tenths < 0:
        return f"{seconds * 1000:.1f}ms"
    return f"{tenths // 10}.{tenths % 10}ms"


def _upstream(transaction: Transaction, target: bytes) -> str | None:
    """The upstream URL; the client's target when the request went with it unchanged (no
    rewrite: the usual case), found without parsing the upstream head."""
    origin, head = transaction.upstream_origin, transaction.raw_upstream_head
    if origin is None or head is None:
        return transaction.upstream
    start = len(transaction.raw_method) + 1
    end = start + len(target)
    if head.startswith(target, start) and head[end : end + 1] == b" ":
        return origin + target.decode("latin-1")
    return transaction.upstream


class LineFormatter:
    """Turns a finished :class:`Transaction` into its line (ending with a newline)."""

    __slots__ = ("_clock", "format", "redact")

    def __init__(self, format: str = "text", redact: Redactor | None = None) -> None:
        if format not in ("text", "json"):
            raise ValueError(f"the access log's format is text or json, not {format!r}")
        self.format = format
        self.redact = redact
        self._clock = _Clock()

    def __call__(self, transaction: Transaction) -> str:
        if self.format == "text":
            return text_line(transaction, self._clock, self.redact)
        return json_line(transaction, self._clock, self.redact)


def text_line(transaction: Transaction, clock: _Clock, redact: Redactor | None = None) -> str:
    t = transaction
    raw_target = t.raw_target
    target = escape(raw_target.decode("latin-1"))
    # The upstream URL is the origin and the same target unless a rewrite changed it: then
    # no second escape nor parse of the upstream head (the common case, once per request).
    origin, head = t.upstream_origin, t.raw_upstream_head
    upstream: str | None
    if origin is None:
        upstream = None  # (the general path's URL, if it reached one: t.upstream)
    elif (
        head is not None
        and head.startswith(raw_target, start := len(t.raw_method) + 1)
        and (head[start + len(raw_target) : start + len(raw_target) + 1] == b" ")
    ):
        upstream = origin + target
    else:
        upstream = None
    if upstream is None:
        upstream = escape(t.upstream or "-").replace(" ", "%20")
    if redact is not None and "?" in target:
        target = redact(target)
        upstream = redact(upstream)
    end = t.t_end
    line = (
        f"{clock.stamp(t.started_at)} {clock.client(t.client)} {t.endpoint} "
        f'"{t.raw_method.decode("latin-1")} {target} HTTP/{t.http_version}" '
        f"{t.status} {t.response_body_size} "
        f"{'-' if end is None else milliseconds(end - t.t_start)} {upstream}"
    )
    if t.cache is not None:
        line += f" cache={escape(t.cache).replace(' ', '_')}"
    failed = t.failed_attempts
    if failed is not None:
        tried = "; ".join(f"{upstream} {what}" for upstream, what in failed)
        line += f' attempts={len(failed) + 1} tried="{escape(tried)}"'
    if t.error is not None:
        line += f' error="{escape(t.error)}"'
    return line + "\n"


def json_line(transaction: Transaction, clock: _Clock, redact: Redactor | None = None) -> str:
    t = transaction
    raw_target = t.raw_target
    target = raw_target.decode("latin-1")
    upstream = _upstream(t, raw_target)
    if redact is not None and "?" in target:
        target = redact(target)
        if upstream is not None:
            upstream = redact(upstream)
    duration = t.duration
    client = t.client
    return (
        f'{{"time":"{clock.stamp(t.started_at)}","id":"{t.id}",'
        f'"client":{"null" if client is None else encode_basestring_ascii(clock.client(client))},'
        f'"endpoint":{encode_basestring_ascii(t.endpoint)},'
        f'"method":{encode_basestring_ascii(t.raw_method.decode("latin-1"))},'
        f'"target":{encode_basestring_ascii(target)},'
        f'"http_version":"{t.http_version}",'
        f'"status":{t.status},"bytes":{t.response_body_size},'
        f'"request_bytes":{t.request_body_size},'
        f'"duration_ms":{"null" if duration is None else f"{duration * 1000:.3f}"},'
        f'"upstream":{"null" if upstream is None else encode_basestring_ascii(upstream)},'
        f'"cache":{"null" if t.cache is None else encode_basestring_ascii(t.cache)},'
        f'"attempts":{t.attempts},"tried":{_tried(t.failed_attempts)},'
        f'"error":{"null" if t.error is None else encode_basestring_ascii(t.error)}}}\n'
    )


def _tried(failed: list[tuple[str, str]] | None) -> str:
    """The failed tries as a JSON array of ``{"upstream", "failure"}``; ``null`` for none."""
    if failed is None:
        return "null"
    return (
        "["
        + ",".join(
            f'{{"upstream":{encode_basestring_ascii(upstream)},'
            f'"failure":{encode_basestring_ascii(what)}}}'
            for upstream, what in failed
        )
        + "]"
    )
