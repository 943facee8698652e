"""Replay: a stored request sent again through the endpoint it came through.

The request goes to the endpoint's own address (so it is proxied, listened to and recorded like
any other), tagged ``replay-of=<original id>`` with an ``X-Ferryman-Tag-Replay-Of`` header, and
the answer names the new transaction's id.

What was not stored cannot be sent: redacted headers (``Authorization``, ``Cookie``...) are
left out and listed in ``omitted_headers``; a body that was truncated or not recorded (an
endpoint with ``record: headers``) makes the replay refuse with 409 rather than send something
else than the original.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, Final

from ferryman.apps.storage.recorder import Storage
from ferryman.apps.storage.redaction import REDACTED
from ferryman.proxy.headers import TAG_PREFIX
from ferryman.server.controllers import Scope

__all__ = ["ReplayError", "Replayer"]

#: Headers a client sets for its own connection, never copied from the stored request.
_CONNECTION_HEADERS: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "upgrade"}
)
_TAG_PREFIX: Final = TAG_PREFIX.decode("latin-1")
#: Seconds a replay waits for its answer, and for its transaction to finish.
REPLAY_TIMEOUT: Final = 30.0


class ReplayError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Replayer:
    """``address_of(endpoint, scope)``: the base URL (``http://host:port[/path]``) the
    endpoint listens on, ``None`` when it is no longer configured."""

    def __init__(self, storage: Storage, address_of: Callable[[str, Scope], str | None]) -> None:
        self.storage = storage
        self.address_of = address_of

    async def replay(self, row: dict[str, Any], scope: Scope) -> dict[str, Any]:
        from ferryman.client.session import AsyncClient

        base = self.address_of(row["endpoint"], scope)
        if base is None:
            raise ReplayError(409, f"the endpoint {row['endpoint']!r} is not configured now")
        if row["request_truncated"]:
            raise ReplayError(409, "the request body was truncated when stored: cannot replay")
        content = row.get("request_content")
        if row["request_size"] and content is None:
            raise ReplayError(409, "the request body was not stored: cannot replay")
        headers: list[tuple[str, str]] = []
        omitted: list[str] = []
        for name, value in row["request_headers"] or []:
            lowered = name.lower()
            if lowered in _CONNECTION_HEADERS or lowered.startswith(_TAG_PREFIX):
                continue
            if value == REDACTED:
                omitted.append(name)
                continue
            headers.append((name, value))
        key = os.urandom(8).hex()
        headers.append((_TAG_PREFIX + "replay-of", row["id"]))
        headers.append((_TAG_PREFIX + "replay", key))
        finished = self.storage.wait_for_tagged(key)
        target: str = row["target"]
        if target.startswith(("http://", "https://")):
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        try:
            async with AsyncClient(trust_env=False, store_cookies=False) as client:
                response = await client.request(
                    row["method"],
                    base.rstrip("/") + target,
                    headers=headers,
                    content=None if content is None else content["content"],
                    allow_redirects=False,
                    decompress=False,
                    timeout=REPLAY_TIMEOUT,
                )
            status = response.status_code
            identifier = await asyncio.wait_for(finished, REPLAY_TIMEOUT)
        except TimeoutError:
            raise ReplayError(504, "the replayed request did not finish in time") from None
        except Exception as exc:
            raise ReplayError(502, f"the replayed request failed: {exc}") from None
        finally:
            finished.cancel()
        return {
            "id": identifier,
            "replay_of": row["id"],
            "status": status,
            "omitted_headers": omitted,
        }
