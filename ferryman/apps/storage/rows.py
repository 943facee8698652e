"""Turning finished transactions into rows: done by the writer, in batches, never inline.

The finished listener queues the :class:`~ferryman.proxy.transactions.Transaction` itself, which
still holds the raw bytes the relay had: decoding, redaction and hashing happen here, once per
batch, on the writer's time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ferryman.apps.storage.redaction import redact_headers, redact_json_body
from ferryman.proxy.transactions import Transaction

__all__ = ["Batch", "build_batch", "parse_head"]


@dataclass(slots=True)
class Batch:
    """The rows of one INSERT per table."""

    transactions: list[dict[str, Any]] = field(default_factory=list)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.transactions)


def parse_head(block: bytes | None) -> list[tuple[bytes, bytes]]:
    """The header pairs of a header block (``Name: value`` lines ending with CRLF)."""
    if not block:
        return []
    pairs = []
    for line in block.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if colon:
            pairs.append((name.strip(), value.strip()))
    return pairs


def _content_type(pairs: Sequence[tuple[bytes, bytes]]) -> str | None:
    for name, value in pairs:
        if name.lower() == b"content-type":
            return value.decode("latin-1")
    return None


def _body(
    batch: Batch,
    kept: bytearray | None,
    content_type: str | None,
    json_keys: frozenset[str],
) -> str | None:
    if not kept:
        return None
    content = redact_json_body(bytes(kept), content_type, json_keys)
    digest = hashlib.sha256(content).hexdigest()
    if digest not in batch.bodies:
        batch.bodies[digest] = {
            "hash": digest,
            "content_type": content_type,
            "size": len(content),
            "content": content,
        }
    return digest


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def build_batch(
    transactions: Sequence[Transaction],
    header_names: frozenset[str],
    json_keys: frozenset[str],
) -> Batch:
    """The rows for ``transactions``, redacted; a body seen twice is one row."""
    batch = Batch()
    rows = batch.transactions
    for transaction in transactions:
        request_pairs = transaction.raw_request_headers
        response_pairs = parse_head(transaction.raw_response_head)
        timings = transaction.timings
        client = transaction.client
        tags = transaction.tags
        identifier = transaction.id
        rows.append(
            {
                "id": identifier,
                "endpoint": transaction.endpoint,
                "method": transaction.method,
                "target": transaction.target,
                "upstream": transaction.upstream,
                "http_version": transaction.http_version,
                "client": None if client is None else f"{client[0]}:{client[1]}",
                "status": transaction.status,
                "reason": transaction.reason.decode("latin-1") or None,
                "error": transaction.error,
                "started_at": transaction.started_at,
                "duration": _seconds(timings["total"]),
                "ttfb": _seconds(timings["ttfb"]),
                "blocked": _seconds(timings["blocked"]),
                "connect": _seconds(timings["connect"]),
                "send": _seconds(timings["send"]),
                "wait": _seconds(timings["wait"]),
                "receive": _seconds(timings["receive"]),
                "reused": transaction.reused,
                "request_size": transaction.request_body_size,
                "response_size": transaction.response_body_size,
                "request_headers": redact_headers(request_pairs, header_names),
                "response_headers": (
                    None
                    if transaction.raw_response_head is None
                    else redact_headers(response_pairs, header_names)
                ),
                "request_body": _body(
                    batch, transaction.request_body, _content_type(request_pairs), json_keys
                ),
                "response_body": _body(
                    batch, transaction.response_body, _content_type(response_pairs), json_keys
                ),
                "request_truncated": transaction.request_body_truncated,
                "response_truncated": transaction.response_body_truncated,
                "tags": tags or None,
                "cache": transaction.cache,
                "favourite": False,
            }
        )
        for name, value in tags.items():
            batch.tags.append({"transaction_id": identifier, "name": name, "value": value})
    return batch
