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
import re
from collections.abc import Iterable
from typing import Any, Final

__all__ = [
    "REDACTED",
    "JsonRedactor",
    "is_json",
    "redact_headers",
    "redact_json",
    "redact_json_body",
]

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


class JsonRedactor:
    """:func:`redact_json_body` for one set of keys, which first looks whether the body can
    hold one of them at all: most bodies hold none, and parsing each into Python objects was
    the writer's largest cost.

    The look is a search for any key between double quotes, in the body's ASCII lower case.
    It can only prove a body free of secrets when the body's text could not spell a key
    otherwise: so a body with a backslash (a JSON escape such as ``\\u0070``) or a byte
    beyond ASCII (whose lower case may be an ASCII letter, as the Kelvin sign's is ``k``) is
    parsed as before.
    """

    __slots__ = ("keys", "pattern")

    def __init__(self, keys: frozenset[str]) -> None:
        self.keys = keys
        ascii_keys = [key for key in keys if key.isascii()]
        self.pattern: re.Pattern[bytes] | None = None
        if keys and len(ascii_keys) == len(keys):
            alternatives = b"|".join(re.escape(key.encode()) for key in sorted(ascii_keys))
            # Searched in the lower-cased body: faster than an IGNORECASE pattern, which
            # loses the engine's literal-prefix skipping.
            self.pattern = re.compile(b'"(?:' + alternatives + b')"')

    def __call__(self, body: bytes, content_type: str | None) -> bytes:
        if not body or not self.keys:
            return body
        pattern = self.pattern
        if (
            pattern is not None
            and body.isascii()
            and body.find(b"\\") < 0  # (find: see rows._Builder.head)
            and pattern.search(body.lower()) is None
        ):
            return body
        return redact_json_body(body, content_type, self.keys)
