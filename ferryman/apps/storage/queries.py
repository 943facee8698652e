"""What the dashboard asks of the stored transactions: lists, one in full, facets, statistics.

Every function takes the storage's engine and returns plain data (dicts, lists, numbers) for
the JSON API. Lists are newest first and paginated by a cursor (``started_at`` and ``id`` of
the last row seen), which stays right while new transactions arrive, unlike an offset.
"""

from __future__ import annotations

import datetime
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Text,
    and_,
    cast,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.apps.storage.migrate import sqlite_path
from ferryman.apps.storage.rows import head_pairs
from ferryman.apps.storage.schema import bodies, tags, transactions

__all__ = [
    "MAX_LIMIT",
    "FilterError",
    "Filters",
    "facets",
    "get_transaction",
    "list_transactions",
    "parse_time",
    "set_favourite",
    "stats",
    "storage_size",
]

#: Most transactions one page (or one HAR file) holds.
MAX_LIMIT: Final = 10000
#: Most rows the statistics read; a longer range is cut to its newest rows, and says so.
STATS_ROWS: Final = 200000

_STATUS_CLASSES: Final = {"1xx", "2xx", "3xx", "4xx", "5xx"}


class FilterError(ValueError):
    """A filter the caller got wrong: its message names the parameter."""


def parse_time(name: str, value: str) -> float:
    """Epoch seconds from ``value``: a number, or an ISO 8601 date-time (UTC unless it says)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(
            f"{name}: {value!r} is neither epoch seconds nor an ISO 8601 date-time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


@dataclass(slots=True)
class Filters:
    """Which transactions: each list is "any of", the lists together "all of"."""

    endpoint: list[str] = field(default_factory=list)
    method: list[str] = field(default_factory=list)
    #: ``2xx``..``5xx``, an exact code (``404``), or ``error`` (no answer, or cut short).
    status: list[str] = field(default_factory=list)
    #: ``(name, value)``: a transaction carrying that tag.
    tags: list[tuple[str, str]] = field(default_factory=list)
    #: The cache's verdict (``HIT``, ``MISS``, ``STALE``, ``REVALIDATED``), or ``none``: the
    #: cache did not look.
    cache: list[str] = field(default_factory=list)
    favourite: bool | None = None
    since: float | None = None
    until: float | None = None
    #: Text looked for in the target, the upstream URL and the bodies.
    search: str | None = None

    @classmethod
    def from_query(cls, params: dict[str, list[str]]) -> Filters:
        """From query parameters (``?endpoint=a&status=5xx&tag=env=prod&q=...``)."""
        filters = cls(
            endpoint=params.get("endpoint", []),
            method=[method.upper() for method in params.get("method", [])],
            status=params.get("status", []),
        )
        for status in filters.status:
            if (
                status not in _STATUS_CLASSES
                and status != "error"
                and not (status.isdigit() and len(status) == 3)
            ):
                raise FilterError(f"status: {status!r} is not 2xx..5xx, a code, or 'error'")
        for verdict in params.get("cache", []):
            if verdict.lower() == "none":
                filters.cache.append("none")
            elif verdict.isalpha() and len(verdict) <= 32:
                filters.cache.append(verdict.upper())
            else:
                raise FilterError(
                    f"cache: {verdict!r} is not a cache status (HIT, MISS...) or none"
                )
        for tag in params.get("tag", []):
            name, sep, value = tag.partition("=")
            if not sep or not name:
                raise FilterError(f"tag: {tag!r} is not name=value")
            filters.tags.append((name.lower(), value))
        for favourite in params.get("favourite", [])[-1:]:
            if favourite.lower() not in ("true", "false", "1", "0"):
                raise FilterError(f"favourite: {favourite!r} is not true or false")
            filters.favourite = favourite.lower() in ("true", "1")
        for since in params.get("since", [])[-1:]:
            filters.since = parse_time("since", since)
        for until in params.get("until", [])[-1:]:
            filters.until = parse_time("until", until)
        for search in params.get("q", [])[-1:]:
            filters.search = search or None
        return filters

    def where(self, dialect: str) -> list[ColumnElement[bool]]:
        t = transactions.c
        clauses: list[ColumnElement[bool]] = []
        if self.endpoint:
            clauses.append(t.endpoint.in_(self.endpoint))
        if self.method:
            clauses.append(t.method.in_(self.method))
        if self.status:
            alternatives: list[ColumnElement[bool]] = []
            for status in self.status:
                if status == "error":
                    alternatives.append(or_(t.status == 0, t.error.is_not(None)))
                elif status in _STATUS_CLASSES:
                    low = int(status[0]) * 100
                    alternatives.append(and_(t.status >= low, t.status < low + 100))
                else:
                    alternatives.append(t.status == int(status))
            clauses.append(or_(*alternatives))
        if self.cache:
            verdicts = [verdict for verdict in self.cache if verdict != "none"]
            looked = [t.cache.in_(verdicts)] if verdicts else []
            unlooked = [t.cache.is_(None)] if "none" in self.cache else []
            clauses.append(or_(*looked, *unlooked))
        for name, value in self.tags:
            clauses.append(
                exists().where(
                    tags.c.transaction_id == t.id, tags.c.name == name, tags.c.value == value
                )
            )
        if self.favourite is not None:
            clauses.append(t.favourite.is_(self.favourite))
        if self.since is not None:
            clauses.append(t.started_at >= self.since)
        if self.until is not None:
            clauses.append(t.started_at < self.until)
        if self.search:
            text = self.search
            content = (
                func.encode(bodies.c.content, "escape")
                if dialect == "postgresql"
                else cast(bodies.c.content, Text)
            )
            in_body = exists().where(
                or_(bodies.c.hash == t.request_body, bodies.c.hash == t.response_body),
                content.icontains(text, autoescape=True),
            )
            clauses.append(
                or_(
                    t.target.icontains(text, autoescape=True),
                    t.upstream.icontains(text, autoescape=True),
                    in_body,
                )
            )
        return clauses


def _cursor(row: Any) -> str:
    return f"{row.started_at!r}_{row.id}"


def _parse_cursor(cursor: str) -> tuple[float, str]:
    started, sep, identifier = cursor.partition("_")
    try:
        if not sep:
            raise ValueError
        return float(started), identifier
    except ValueError:
        raise FilterError(f"cursor: {cursor!r} is not a cursor this API gave") from None


async def list_transactions(
    engine: AsyncEngine,
    filters: Filters,
    *,
    limit: int = 50,
    cursor: str | None = None,
    columns: Sequence[Any] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of transactions, newest first, and the cursor of the next page (``None`` at
    the end)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise FilterError(f"limit: must be between 1 and {MAX_LIMIT}")
    t = transactions.c
    query = select(*(columns or [transactions])).where(*filters.where(engine.dialect.name))
    if cursor:
        started, identifier = _parse_cursor(cursor)
        query = query.where(
            or_(t.started_at < started, and_(t.started_at == started, t.id < identifier))
        )
    query = query.order_by(t.started_at.desc(), t.id.desc()).limit(limit + 1)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    following = _cursor(rows[limit - 1]) if len(rows) > limit else None
    return [_row(row) for row in rows[:limit]], following


def _row(row: Any) -> dict[str, Any]:
    """A row as a dict, its header blocks as ``[[name, value], ...]``."""
    found = dict(row._mapping)
    for name in ("request_headers", "response_headers"):
        if name in found:
            found[name] = head_pairs(found[name])
    return found


async def count_transactions(engine: AsyncEngine, filters: Filters) -> int:
    query = select(func.count()).select_from(transactions)
    query = query.where(*filters.where(engine.dialect.name))
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def get_transaction(engine: AsyncEngine, identifier: str) -> dict[str, Any] | None:
    """One transaction, with its bodies (``request_content``/``response_content``: the stored
    bytes and content type, or ``None``)."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(select(transactions).where(transactions.c.id == identifier))
        ).first()
        if row is None:
            return None
        found = _row(row)
        hashes = [h for h in (found["request_body"], found["response_body"]) if h]
        contents: dict[str, Any] = {}
        if hashes:
            for body in await connection.execute(select(bodies).where(bodies.c.hash.in_(hashes))):
                contents[body.hash] = dict(body._mapping)
    found["request_content"] = contents.get(found["request_body"] or "")
    found["response_content"] = contents.get(found["response_body"] or "")
    return found


async def get_many(engine: AsyncEngine, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The bodies ``rows`` refer to, by hash (for the HAR export of a list)."""
    hashes = {h for row in rows for h in (row["request_body"], row["response_body"]) if h}
    found: dict[str, dict[str, Any]] = {}
    listed = sorted(hashes)
    async with engine.connect() as connection:
        for start in range(0, len(listed), 500):
            chunk = listed[start : start + 500]
            for body in await connection.execute(select(bodies).where(bodies.c.hash.in_(chunk))):
                found[body.hash] = dict(body._mapping)
    return found


async def set_favourite(engine: AsyncEngine, identifier: str, favourite: bool) -> bool:
    """Mark or unmark; False when there is no such transaction."""
    async with engine.begin() as connection:
        result = await connection.execute(
            update(transactions).where(transactions.c.id == identifier).values(favourite=favourite)
        )
    return bool(result.rowcount)


async def facets(engine: AsyncEngine, filters: Filters, top: int = 50) -> dict[str, Any]:
    """Counts of the filtered transactions by endpoint, method, status class, cache verdict
    (``none``: the cache did not look), tag, favourite."""
    t = transactions.c
    where = filters.where(engine.dialect.name)
    status_class = (t.status // 100).label("class")
    async with engine.connect() as connection:

        async def grouped(column: Any) -> list[tuple[Any, int]]:
            query = (
                select(column, func.count())
                .where(*where)
                .group_by(column)
                .order_by(func.count().desc())
                .limit(top)
            )
            return [(row[0], int(row[1])) for row in await connection.execute(query)]

        by_endpoint = await grouped(t.endpoint)
        by_method = await grouped(t.method)
        by_class = await grouped(status_class)
        by_cache = await grouped(t.cache)
        by_tag = (
            await connection.execute(
                select(tags.c.name, tags.c.value, func.count())
                .join(transactions, transactions.c.id == tags.c.transaction_id)
                .where(*where)
                .group_by(tags.c.name, tags.c.value)
                .order_by(func.count().desc())
                .limit(top)
            )
        ).all()
        favourites = (
            await connection.execute(
                select(func.count()).select_from(transactions).where(*where, t.favourite.is_(True))
            )
        ).scalar_one()
        total = (
            await connection.execute(select(func.count()).select_from(transactions).where(*where))
        ).scalar_one()
    classes: dict[str, int] = defaultdict(int)
    for value, count in by_class:
        classes["error" if not value else f"{int(value)}xx"] += count
    return {
        "total": int(total),
        "endpoint": dict(by_endpoint),
        "method": dict(by_method),
        "status": dict(classes),
        "cache": {("none" if value is None else str(value)): count for value, count in by_cache},
        "tag": [{"name": n, "value": v, "count": int(c)} for n, v, c in by_tag],
        "favourite": int(favourites),
    }


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of an ordered sequence."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _is_error(status: int, error: str | None) -> bool:
    return status == 0 or status >= 500 or error is not None


async def stats(
    engine: AsyncEngine,
    filters: Filters,
    *,
    bucket: float = 60.0,
    top: int = 10,
) -> dict[str, Any]:
    """Requests, errors and latency percentiles per time bucket and endpoint; the slowest and
    most failing routes (method and path, query left out). Percentiles are computed here over
    the rows of the range (at most :data:`STATS_ROWS`, the newest)."""
    t = transactions.c
    query = (
        select(t.started_at, t.endpoint, t.method, t.target, t.status, t.error, t.duration, t.cache)
        .where(*filters.where(engine.dialect.name))
        .order_by(t.started_at.desc())
        .limit(STATS_ROWS + 1)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    truncated = len(rows) > STATS_ROWS
    rows = rows[:STATS_ROWS]
    buckets: dict[tuple[float, str], list[Any]] = defaultdict(list)
    routes: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for row in rows:
        start = math.floor(row.started_at / bucket) * bucket
        buckets[(start, row.endpoint)].append(row)
        path = row.target.split("?", 1)[0]
        routes[(row.endpoint, row.method, path)].append(row)

    def summary(group: list[Any]) -> dict[str, Any]:
        durations = sorted(r.duration for r in group if r.duration is not None)
        errors = sum(1 for r in group if _is_error(r.status, r.error))

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        return {
            "requests": len(group),
            "errors": errors,
            "error_rate": errors / len(group),
            "p50_ms": ms(percentile(durations, 0.50)),
            "p90_ms": ms(percentile(durations, 0.90)),
            "p99_ms": ms(percentile(durations, 0.99)),
            "mean_ms": ms(sum(durations) / len(durations)) if durations else None,
        }

    series = [
        {"start": start, "endpoint": endpoint, **summary(group)}
        for (start, endpoint), group in sorted(buckets.items())
    ]
    route_stats = [
        {"endpoint": e, "method": m, "path": p, **summary(group)}
        for (e, m, p), group in routes.items()
    ]
    slowest = sorted(route_stats, key=lambda r: r["p90_ms"] or 0.0, reverse=True)[:top]
    failing = sorted(
        (r for r in route_stats if r["errors"]), key=lambda r: r["errors"], reverse=True
    )[:top]
    verdicts: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.cache is not None:
            verdicts[row.cache] += 1
    looked = sum(verdicts.values())
    served = verdicts.get("HIT", 0) + verdicts.get("STALE", 0)
    return {
        "bucket": bucket,
        "truncated": truncated,
        "total": summary(list(rows)) if rows else None,
        # What the cache did with the requests it looked at; the hit ratio counts those it
        # answered without the origin (HIT, STALE) among them.
        "cache": {
            "looked": looked,
            "statuses": dict(verdicts),
            "hit_ratio": served / looked if looked else None,
        },
        # 429s: the proxy's rate limits and budgets, and upstreams' own (``limited_by_proxy``
        # the proxy's, which say why in ``error``).
        "rate_limited": sum(1 for r in rows if r.status == 429),
        "limited_by_proxy": sum(1 for r in rows if r.status == 429 and r.error is not None),
        "series": series,
        "slowest": slowest,
        "failing": failing,
    }


async def storage_size(engine: AsyncEngine, url: str) -> dict[str, Any]:
    """Rows and bytes: transactions, distinct bodies and their bytes, the database's size."""
    async with engine.connect() as connection:
        count = (
            await connection.execute(select(func.count()).select_from(transactions))
        ).scalar_one()
        body_count, body_bytes = (
            await connection.execute(
                select(func.count(), func.coalesce(func.sum(bodies.c.size), 0))
            )
        ).one()
        database: int | None = None
        if engine.dialect.name == "postgresql":
            database = (
                await connection.execute(select(func.pg_database_size(func.current_database())))
            ).scalar_one()
    path = sqlite_path(url)
    if path is not None:
        database = sum(
            os.path.getsize(name)
            for name in (path, path + "-wal", path + "-shm")
            if os.path.exists(name)
        )
    return {
        "transactions": int(count),
        "bodies": int(body_count),
        "body_bytes": int(body_bytes),
        "database_bytes": None if database is None else int(database),
    }
