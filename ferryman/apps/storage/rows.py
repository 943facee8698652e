"""Turning finished transactions into rows: done by the writer process, in batches.

The finished listener keeps ``Transaction.record()``, a tuple of the raw bytes the relay had,
and the proxy ships batches of them to the writer process (:mod:`.writer`): decoding,
redaction and hashing happen here, once per batch, outside the proxy's process. It still runs
for every recorded request, so it is written for speed (``benchmarks/storage_bench.py``): rows
are tuples in :data:`COLUMNS` order for the driver's executemany, heads are stored as the
header block they arrived as (``Name: value`` lines), and a head is parsed for redaction only
when a secret name appears in it at all.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ferryman.apps.storage.redaction import REDACTED, JsonRedactor
from ferryman.proxy.headers import TAG_PREFIX
from ferryman.proxy.transactions import parse_header_block

__all__ = ["COLUMNS", "Batch", "build_batch", "head_pairs", "parse_head", "upstream_url"]

#: The transactions table's columns, in the order of a row tuple.
COLUMNS: Final = (
    "id",
    "endpoint",
    "method",
    "target",
    "upstream",
    "http_version",
    "client",
    "status",
    "reason",
    "error",
    "started_at",
    "duration",
    "ttfb",
    "blocked",
    "connect",
    "send",
    "wait",
    "receive",
    "reused",
    "request_size",
    "response_size",
    "request_headers",
    "response_headers",
    "request_body",
    "response_body",
    "request_truncated",
    "response_truncated",
    "tags",
    "cache",
    "favourite",
    "attempts",
)
_REDACTED: Final = REDACTED.encode()
_TAG_SIZE: Final = len(TAG_PREFIX)


@dataclass(slots=True)
class Batch:
    """The rows of one INSERT per table."""

    transactions: list[tuple[Any, ...]] = field(default_factory=list)
    #: hash -> (hash, content_type, size, content)
    bodies: dict[str, tuple[str, str | None, int, bytes]] = field(default_factory=dict)
    #: (transaction_id, name, value)
    tags: list[tuple[str, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.transactions)


def parse_head(block: bytes | None) -> list[tuple[bytes, bytes]]:
    """The header pairs of a header block (``Name: value`` lines ending with CRLF)."""
    return parse_header_block(block) if block else []


def head_pairs(text: str | None) -> list[list[str]] | None:
    """A stored header block as ``[[name, value], ...]`` (``None`` stays ``None``)."""
    if text is None:
        return None
    pairs = []
    for line in text.split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            pairs.append([name.strip(), value.strip()])
    return pairs


def _head(pairs: Sequence[tuple[bytes, bytes]], names: frozenset[bytes]) -> bytes:
    return b"".join(
        name + b": " + (_REDACTED if name.lower() in names else value) + b"\r\n"
        for name, value in pairs
    )


def _content_type(lowered: bytes, block: bytes) -> str | None:
    start = lowered.find(b"content-type:")
    if start < 0:
        return None
    start += 13
    end = block.find(b"\r\n", start)
    return block[start : end if end >= 0 else None].strip().decode("latin-1")


class _Builder:
    __slots__ = ("batch", "names", "redact_json", "secret")

    def __init__(self, header_names: frozenset[str], json_keys: frozenset[str]) -> None:
        self.batch = Batch()
        self.names = frozenset(name.lower().encode("latin-1") for name in header_names)
        #: What, found in a lower-cased header block, means it may hold a secret.
        self.secret = tuple(name + b":" for name in sorted(self.names))
        self.redact_json = _redactor(json_keys)

    def head(self, block: bytes, lowered: bytes) -> str:
        """The header block, decoded, its secret values redacted."""
        # A loop: any() over a generator cost more than the search; find(), not ``in``: for
        # ``bytes in bytes`` CPython first tries the needle as an integer, raising and clearing
        # a TypeError each time.
        for name in self.secret:
            if lowered.find(name) >= 0:
                block = _head(parse_head(block), self.names)
                break
        return block.decode("latin-1")

    def body(self, kept: bytes | None, content_type: str | None) -> str | None:
        if not kept:
            return None
        content = self.redact_json(bytes(kept), content_type)
        digest = hashlib.sha256(content).hexdigest()
        bodies = self.batch.bodies
        if digest not in bodies:
            bodies[digest] = (digest, content_type, len(content), content)
        return digest


_redactors: dict[frozenset[str], JsonRedactor] = {}


def _redactor(keys: frozenset[str]) -> JsonRedactor:
    """The redactor of ``keys``, compiled once per process (a batch builds a builder)."""
    redactor = _redactors.get(keys)
    if redactor is None:
        if len(_redactors) > 16:  # settings change rarely; never let this grow
            _redactors.clear()
        redactor = _redactors[keys] = JsonRedactor(keys)
    return redactor


def _request_block(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in pairs)


def upstream_url(url: str | None, origin: str | None, line: bytes | None) -> str | None:
    """The URL a request went to, from a record's parts (as ``Transaction.upstream`` does)."""
    if url is not None:
        return url
    if origin is None or line is None:
        return origin
    parts = line.split(b" ")
    return origin + (parts[1].decode("latin-1") if len(parts) == 3 else "")


def _attempts(failed: Sequence[tuple[str, str]]) -> str:
    """The failed tries as the ``attempts`` column's JSON."""
    return json.dumps(
        [{"upstream": upstream, "failure": what} for upstream, what in failed],
        ensure_ascii=False,
    )


def _tags(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {
        name[_TAG_SIZE:].decode("latin-1").lower(): value.decode("latin-1")
        for name, value in pairs
        if name[:_TAG_SIZE].lower() == TAG_PREFIX and len(name) > _TAG_SIZE
    }


def build_batch(
    records: Sequence[Sequence[Any]],
    header_names: frozenset[str],
    json_keys: frozenset[str],
) -> Batch:
    """The rows for ``records`` (``Transaction.record()`` tuples), redacted; a body seen twice
    is one row. A record without an id gets one made of its start time and random bits."""
    builder = _Builder(header_names, json_keys)
    batch = builder.batch
    rows = batch.transactions
    tag_rows = batch.tags
    randomness = os.urandom(8 * len(records)).hex()
    for index, (
        identifier,
        endpoint,
        method,
        target,
        pairs,
        http_version,
        client,
        url,
        origin,
        line,
        reused,
        status,
        reason,
        response_block,
        error,
        cache,
        started_at,
        start,
        connected,
        sent,
        answered,
        end,
        request_size,
        response_size,
        request_body,
        response_body,
        request_truncated,
        response_truncated,
        failed_attempts,
    ) in enumerate(records):
        if identifier is None:  # the id property's format, without a syscall per row
            identifier = f"{int(started_at * 1e9):016x}{randomness[index * 16 : index * 16 + 16]}"
        request_block = _request_block(pairs)
        request_lower = request_block.lower()
        response_headers = None
        response_type = None
        if response_block is not None:
            response_lower = response_block.lower()
            response_headers = builder.head(response_block, response_lower)
            if response_body:
                response_type = _content_type(response_lower, response_block)
        tags_json = None
        if request_lower.find(TAG_PREFIX) >= 0:
            tags = _tags(pairs)
            if tags:
                tags_json = json.dumps(tags, ensure_ascii=False)
                for name, value in tags.items():
                    tag_rows.append((identifier, name, value))
        rows.append(
            (
                identifier,
                endpoint,
                method.decode("latin-1"),
                target.decode("latin-1"),
                upstream_url(url, origin, line),
                http_version,
                None if client is None else f"{client[0]}:{client[1]}",
                status,
                reason.decode("latin-1") if reason else None,
                error,
                started_at,
                None if end is None else end - start,
                None if answered is None else answered - start,
                None if connected is None else connected - start,
                None,
                None if sent is None or connected is None else max(0.0, sent - connected),
                None if answered is None or sent is None else max(0.0, answered - sent),
                None if end is None or answered is None else max(0.0, end - answered),
                reused,
                request_size,
                response_size,
                builder.head(request_block, request_lower),
                response_headers,
                builder.body(
                    request_body,
                    _content_type(request_lower, request_block) if request_body else None,
                ),
                builder.body(response_body, response_type),
                request_truncated,
                response_truncated,
                tags_json,
                cache,
                False,
                None if failed_attempts is None else _attempts(failed_attempts),
            )
        )
    return batch
