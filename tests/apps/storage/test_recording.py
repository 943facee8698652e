"""Recording through a real served proxy, on SQLite and PostgreSQL: what is stored, redacted,
deduplicated, truncated, left out, and what the janitor deletes."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import func, select, update

import ferryman
from ferryman.apps.storage import queries
from ferryman.apps.storage.schema import bodies, tags, transactions
from tests.apps.storage.conftest import Served
from tests.servers.edge import EdgeServer


async def rows(served: Served) -> list[dict[str, Any]]:
    await served.storage.flush(10)
    found, _ = await queries.list_transactions(served.storage.engine, queries.Filters(), limit=1000)
    return found


async def count(served: Served, table: Any) -> int:
    async with served.storage.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


async def test_every_request_is_recorded_with_its_heads_bodies_timings_and_tags(
    serve: Any, database_url: str, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    served = await serve(database_url, [("api", edge.url)])
    for index in range(5):
        response = await client.post(
            served.url("api", f"/echo?n={index}"),
            content=b"hello",
            headers={"X-Ferryman-Tag-Env": "prod", "X-Ferryman-Tag-Run": str(index)},
        )
        assert response.status_code == 200
    assert (await client.get(served.url("api", "/status?code=503"))).status_code == 503

    stored = await rows(served)
    assert len(stored) == 6 == served.storage.recorded
    assert served.storage.dropped == 0
    newest, *posts = stored
    assert (newest["method"], newest["target"], newest["status"]) == (
        "GET",
        "/status?code=503",
        503,
    )
    assert [row["target"] for row in posts] == [f"/echo?n={n}" for n in (4, 3, 2, 1, 0)]
    row = await queries.get_transaction(served.storage.engine, posts[0]["id"])
    assert row is not None
    assert row["endpoint"] == "api"
    assert row["upstream"] == edge.url + "/echo?n=4"
    assert row["tags"] == {"env": "prod", "run": "4"}
    assert row["request_content"]["content"] == b"hello"
    assert row["request_size"] == 5
    assert json.loads(row["response_content"]["content"])["body"] == "hello"
    assert row["response_size"] == len(row["response_content"]["content"])
    assert row["duration"] > 0 and row["ttfb"] is not None and row["ttfb"] <= row["duration"]
    assert ["Content-Type", "application/json"] in row["response_headers"]
    # The tag headers reached storage, not the upstream (the proxy removed them).
    assert "x-ferryman-tag-env" not in json.loads(row["response_content"]["content"])["target"]
    # One body row for five identical request bodies.
    async with served.storage.engine.connect() as connection:
        same = await connection.execute(
            select(func.count()).select_from(bodies).where(bodies.c.content == b"hello")
        )
        assert same.scalar_one() == 1
        assert (
            await connection.execute(
                select(func.count()).select_from(tags).where(tags.c.name == "env")
            )
        ).scalar_one() == 5


async def test_secrets_are_redacted_before_they_are_stored(
    serve: Any, database_url: str, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    served = await serve(
        database_url,
        [("api", edge.url)],
        "storage.redact_headers=[X-Api-Key]",
        "storage.redact_json_keys=[pin]",
    )
    response = await client.post(
        served.url("api", "/echo"),
        json={"user": "ann", "password": "hunter2", "nested": [{"PIN": 1234, "ok": True}]},
        headers={
            "Authorization": "Bearer sekrit",
            "Cookie": "session=sekrit",
            "X-Api-Key": "sekrit",
            "X-Visible": "shown",
        },
    )
    assert response.status_code == 200
    [summary] = await rows(served)
    row = await queries.get_transaction(served.storage.engine, summary["id"])
    assert row is not None
    headers = dict((name.lower(), value) for name, value in row["request_headers"])
    assert headers["authorization"] == "[redacted]"
    assert headers["cookie"] == "[redacted]"
    assert headers["x-api-key"] == "[redacted]"
    assert headers["x-visible"] == "shown"
    assert json.loads(row["request_content"]["content"]) == {
        "user": "ann",
        "password": "[redacted]",
        "nested": [{"PIN": "[redacted]", "ok": True}],
    }
    async with served.storage.engine.connect() as connection:
        everything = [
            bytes(body.content) for body in await connection.execute(select(bodies.c.content))
        ]
        heads = [
            json.dumps(r.request_headers)
            for r in await connection.execute(select(transactions.c.request_headers))
        ]
    assert not any(b"hunter2" in body or b"1234" in body for body in everything[:1])
    assert all("sekrit" not in head for head in heads)
    request_body = row["request_content"]["content"]
    assert b"hunter2" not in request_body and b"1234" not in request_body


async def test_the_header_a_rate_limit_takes_api_keys_from_is_redacted_unlisted(
    serve: Any, database_url: str, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    # The ratelimit application keeps API keys only as hashes; the storage kept every
    # request's key in clear unless its header was also listed in storage.redact_headers.
    served = await serve(
        database_url,
        [("api", edge.url)],
        "applications=[proxy,storage,ratelimit]",
        "ratelimit.endpoints.api.key=api_key:X-Client-Secret",
        "ratelimit.endpoints.api.requests=100",
    )
    secret = "sk-" + uuid.uuid4().hex
    response = await client.get(served.url("api", "/echo"), headers={"X-Client-Secret": secret})
    assert response.status_code == 200
    [summary] = await rows(served)
    row = await queries.get_transaction(served.storage.engine, summary["id"])
    assert row is not None
    headers = dict((name.lower(), value) for name, value in row["request_headers"])
    assert headers["x-client-secret"] == "[redacted]"
    async with served.storage.engine.connect() as connection:
        stored = [tuple(r) for r in await connection.execute(select(transactions))]
    assert stored and secret not in repr(stored)


async def test_long_bodies_are_truncated_and_marked(
    serve: Any, database_url: str, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    served = await serve(database_url, [("api", edge.url)], "storage.max_body_size=100")
    response = await client.get(served.url("api", "/big?size=5000"))
    assert len(response.content) == 5000  # the client got it all
    [summary] = await rows(served)
    row = await queries.get_transaction(served.storage.engine, summary["id"])
    assert row is not None
    assert row["response_truncated"] is True
    assert row["response_size"] == 5000
    assert row["response_content"]["content"] == response.content[:100]


async def test_endpoints_can_opt_out_of_bodies_or_of_everything(
    serve: Any, database_url: str, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    served = await serve(
        database_url,
        [("full", edge.url), ("heads", edge.url), ("hidden", edge.url)],
        "storage.endpoints.heads.record=headers",
        "storage.endpoints.hidden.record=none",
    )
    for name in ("full", "heads", "hidden"):
        assert (await client.post(served.url(name, "/echo"), content=b"x" * 10)).status_code == 200
    stored = {row["endpoint"]: row for row in await rows(served)}
    assert set(stored) == {"full", "heads"}
    assert stored["full"]["request_body"] is not None
    assert stored["heads"]["request_body"] is None and stored["heads"]["response_body"] is None
    assert stored["heads"]["request_size"] == 10  # sizes are still known
    assert stored["heads"]["request_headers"]


async def test_the_janitor_deletes_old_transactions_but_favourites_and_orphan_bodies(
    serve: Any, database_url: str, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    served = await serve(database_url, [("api", edge.url)], "storage.retention=1h")
    for body in (b"old-one", b"old-two", b"fresh"):
        headers = {"X-Ferryman-Tag-Age": "old" if body.startswith(b"old") else "new"}
        await client.post(served.url("api", "/echo"), content=body, headers=headers)
    stored = await rows(served)
    by_body = {}
    for summary in stored:
        row = await queries.get_transaction(served.storage.engine, summary["id"])
        assert row is not None
        by_body[row["request_content"]["content"]] = row["id"]
    engine = served.storage.engine
    two_hours_ago = time.time() - 7200
    async with engine.begin() as connection:
        await connection.execute(
            update(transactions)
            .where(transactions.c.id.in_([by_body[b"old-one"], by_body[b"old-two"]]))
            .values(started_at=two_hours_ago)
        )
    assert await queries.set_favourite(engine, by_body[b"old-two"], True)

    deleted, orphans = await served.storage.clean()

    assert deleted == 1
    left = {row["id"] for row in await rows(served)}
    assert left == {by_body[b"old-two"], by_body[b"fresh"]}
    kept = await queries.get_transaction(engine, by_body[b"old-two"])
    assert kept is not None and kept["request_content"]["content"] == b"old-two"
    assert orphans >= 2  # the old request body and its echoed answer
    async with engine.connect() as connection:
        contents = {bytes(r.content) for r in await connection.execute(select(bodies.c.content))}
        tagged = {r.transaction_id for r in await connection.execute(select(tags))}
    assert b"old-one" not in contents and b"old-two" in contents
    assert tagged == left
