"""Stored rows as the JSON API shows them, and HAR 1.2 entries for the export.

Times in the API are milliseconds (``duration_ms``, ``timings``), as HAR and browser tools count
them; ``started_at`` is an ISO 8601 date-time in UTC and ``started`` the same as epoch seconds.
A body is ``{"size", "truncated", "content_type", "encoding", "text"}``: ``encoding`` is
``"utf-8"`` when the bytes are text, ``"base64"`` otherwise.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from ferryman._version import __version__
from ferryman.proxy.transactions import Transaction

__all__ = ["detail", "har_document", "har_entry", "live_summary", "summary"]

_PHASES: Final = ("blocked", "connect", "send", "wait", "receive")


def _iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """A list entry: what a table row of the dashboard shows."""
    return {
        "id": row["id"],
        "endpoint": row["endpoint"],
        "method": row["method"],
        "target": row["target"],
        "upstream": row["upstream"],
        "status": row["status"],
        "error": row["error"],
        "started_at": _iso(row["started_at"]),
        "started": row["started_at"],
        "duration_ms": _ms(row["duration"]),
        "request_size": row["request_size"],
        "response_size": row["response_size"],
        "tags": row["tags"] or {},
        "cache": row["cache"],
        "favourite": bool(row["favourite"]),
        "attempts": len(row.get("attempts") or ()) + 1,
    }


def live_summary(transaction: Transaction) -> dict[str, Any]:
    """The same summary, from a transaction that just finished (the live stream)."""
    return {
        "id": transaction.id,
        "endpoint": transaction.endpoint,
        "method": transaction.method,
        "target": transaction.target,
        "upstream": transaction.upstream,
        "status": transaction.status,
        "error": transaction.error,
        "started_at": _iso(transaction.started_at),
        "started": transaction.started_at,
        "duration_ms": _ms(transaction.duration),
        "request_size": transaction.request_body_size,
        "response_size": transaction.response_body_size,
        "tags": transaction.tags,
        "cache": transaction.cache,
        "favourite": False,
        "attempts": transaction.attempts,
    }


def body(content: dict[str, Any] | None, truncated: bool) -> dict[str, Any] | None:
    if content is None:
        return None
    data: bytes = content["content"]
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(data).decode("ascii"), "base64"
    return {
        "size": content["size"],
        "truncated": bool(truncated),
        "content_type": content["content_type"],
        "encoding": encoding,
        "text": text,
    }


def detail(row: dict[str, Any]) -> dict[str, Any]:
    """One transaction in full: the summary, timings, heads and bodies."""
    return {
        **summary(row),
        "reason": row["reason"],
        "http_version": row["http_version"],
        "client": row["client"],
        "reused": bool(row["reused"]),
        "failed_attempts": [
            {"upstream": str(failed["upstream"]), "failure": str(failed["failure"])}
            for failed in row.get("attempts") or ()
        ],
        "timings": {
            "blocked": _ms(row["blocked"]),
            "connect": _ms(row["connect"]),
            "send": _ms(row["send"]),
            "wait": _ms(row["wait"]),
            "receive": _ms(row["receive"]),
            "total": _ms(row["duration"]),
            "ttfb": _ms(row["ttfb"]),
        },
        "request": {
            "headers": row["request_headers"] or [],
            "body": body(row.get("request_content"), row["request_truncated"]),
        },
        "response": (
            None
            if row["response_headers"] is None
            else {
                "headers": row["response_headers"],
                "body": body(row.get("response_content"), row["response_truncated"]),
            }
        ),
    }


# -- HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/) ----------------------------------


def _header_value(headers: list[list[str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _url(row: dict[str, Any]) -> str:
    """The URL as the client asked: its Host header and the target (the upstream's when the
    request carried no Host)."""
    headers = row["request_headers"] or []
    target = row["target"]
    if target.startswith(("http://", "https://")):
        return str(target)
    host = _header_value(headers, "host")
    if host:
        return f"http://{host}{target}"
    return str(row["upstream"] or f"http://localhost{target}")


def _har_headers(headers: list[list[str]] | None) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in headers or []]


def _har_version(version: str | None) -> str:
    return f"HTTP/{version}" if version else "HTTP/1.1"


def har_entry(row: dict[str, Any], contents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One HAR entry: ``contents`` holds the bodies by hash."""
    url = _url(row)
    request_headers = row["request_headers"] or []
    request: dict[str, Any] = {
        "method": row["method"],
        "url": url,
        "httpVersion": _har_version(row["http_version"]),
        "cookies": [],
        "headers": _har_headers(request_headers),
        "queryString": [
            {"name": name, "value": value}
            for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)
        ],
        "headersSize": -1,
        "bodySize": row["request_size"],
    }
    sent = contents.get(row["request_body"] or "")
    if sent is not None or row["request_size"]:
        mime = _header_value(request_headers, "content-type") or "application/octet-stream"
        data: bytes = b"" if sent is None else sent["content"]
        request["postData"] = {"mimeType": mime, "params": [], "text": _text(data)[0]}
    response_headers = row["response_headers"] or []
    answered = contents.get(row["response_body"] or "")
    data = b"" if answered is None else answered["content"]
    text, encoding = _text(data)
    content: dict[str, Any] = {
        "size": row["response_size"],
        "mimeType": _header_value(response_headers, "content-type") or "",
        "text": text,
    }
    if encoding:
        content["encoding"] = encoding
    if row["response_truncated"]:
        content["comment"] = f"truncated: {len(data)} of {row['response_size']} bytes stored"
    timings = {phase: _har_ms(row[phase]) for phase in _PHASES}
    if timings["send"] < 0:
        timings["send"] = 0.0  # HAR requires send, wait and receive to be known (>= 0)
    if timings["wait"] < 0:
        timings["wait"] = 0.0
    if timings["receive"] < 0:
        timings["receive"] = 0.0
    timings["ssl"] = -1
    timings["dns"] = -1
    total = _har_ms(row["duration"])
    entry: dict[str, Any] = {
        "startedDateTime": _iso(row["started_at"]),
        "time": total if total >= 0 else 0.0,
        "request": request,
        "response": {
            "status": row["status"],
            "statusText": row["reason"] or "",
            "httpVersion": _har_version(row["http_version"]),
            "cookies": [],
            "headers": _har_headers(response_headers),
            "content": content,
            "redirectURL": _header_value(response_headers, "location") or "",
            "headersSize": -1,
            "bodySize": row["response_size"] if row["response_headers"] is not None else -1,
        },
        "cache": {},
        "timings": timings,
        "_id": row["id"],
        "_endpoint": row["endpoint"],
    }
    if row["error"]:
        entry["comment"] = row["error"]
        entry["response"]["_error"] = row["error"]
    return entry


def _har_ms(seconds: float | None) -> float:
    return -1 if seconds is None else round(seconds * 1000, 3)


def _text(data: bytes) -> tuple[str, str | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def har_document(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "ferryman", "version": __version__},
            "pages": [],
            "entries": entries,
        }
    }
