"""What is never stored: secret header values and secret JSON values, replaced by a marker.

Redaction runs in the writer task, off the request path, on the bytes the transaction kept. A
header is redacted by name (``Authorization``...); a JSON body (a ``json`` content type, or a
body that parses as JSON and starts like one) has the values of secret keys replaced at any
depth. A body that claims to be JSON and does not parse is stored as it is: it cannot be
redacted by key, and hiding it would hide the very bug one looks for. Redacted requests cannot
be replayed as they were: the replay says which headers it could not send.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["REDACTED", "is_json", "redact_headers", "redact_json", "redact_json_body"]

#: What a secret value becomes.
REDACTED: Final = "[redacted]"


def redact_headers(pairs: Iterable[tuple[bytes, bytes]], names: frozenset[str]) -> list[list[str]]:
    """``[[name, value], ...]`` as text, the values of ``names`` (lower-case) redacted."""
    return [
        [
            name.decode("latin-1"),
            REDACTED if name.lower().decode("latin-1") in names else value.decode("latin-1"),
        ]
        for name, value in pairs
    ]


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media.endswith("/json")


def redact_json(value: Any, keys: frozenset[str]) -> tuple[Any, bool]:
    """``value`` with the values of ``keys`` (lower-case) redacted at any depth; and whether
    anything was."""
    if isinstance(value, dict):
        changed = False
        result = {}
        for key, item in value.items():
            if isinstance(key, str) and key.lower() in keys:
                result[key] = REDACTED
                changed = True
            else:
                result[key], inner = redact_json(item, keys)
                changed = changed or inner
        return result, changed
    if isinstance(value, list):
        items = [redact_json(item, keys) for item in value]
        return [item for item, _ in items], any(inner for _, inner in items)
    return value, False


def redact_json_body(body: bytes, content_type: str | None, keys: frozenset[str]) -> bytes:
    """The body with secret JSON values redacted; unchanged when it is not JSON or holds
    none. A truncated JSON body does not parse: it is checked by a scan for the keys instead,
    and stored as ``[redacted: truncated JSON holding a secret key]`` when one appears."""
    if not body or not keys:
        return body
    if not is_json(content_type):
        start = body[:1]
        if start not in (b"{", b"["):
            return body
    try:
        document = json.loads(body)
    except ValueError:
        if not is_json(content_type):
            return body
        lowered = body.lower()
        if any(b'"' + key.encode() + b'"' in lowered for key in keys):
            return b"[redacted: truncated JSON holding a secret key]"
        return body
    redacted, changed = redact_json(document, keys)
    if not changed:
        return body
    return json.dumps(redacted, ensure_ascii=False, separators=(",", ":")).encode()
