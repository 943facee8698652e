"""The access log of a served proxy: one line per request, written to the configured file, with
what the client and the upstream saw; nothing registered at all when it is off."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import ferryman
from ferryman.apps.accesslog import AccessLog
from ferryman.exceptions import EventListenerError
from ferryman.proxy.transactions import EVENT_TRANSACTION_FINISHED
from ferryman.system import ConfigurationError, load_config
from tests.apps.accesslog.test_formats import TEXT
from tests.apps.conftest import serve_with, stop, url_of
from tests.servers.edge import EdgeServer


async def wait_for_lines(path: Path, count: int, timeout: float = 5.0) -> list[str]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or asyncio.get_running_loop().time() > deadline:
            return lines
        await asyncio.sleep(0.05)


async def test_every_request_gets_one_line_with_what_happened(
    edge: EdgeServer, refused_url: str, client: ferryman.AsyncClient, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    proxy = await serve_with(
        [("api", edge.url), ("down", refused_url)], [f"logging.access_log={log}"]
    )
    try:
        statuses = []
        for i in range(20):
            response = await client.get(url_of(proxy, "api", f"/status?code={200 + i % 3 * 100}"))
            statuses.append(response.status_code)
        posted = await client.post(url_of(proxy, "api", "/echo"), content=b"12345")
        down = await client.get(url_of(proxy, "down", "/x?token=secret"))
        lines = await wait_for_lines(log, 22)
    finally:
        await stop(proxy)
    assert len(lines) == 22
    matches = [TEXT.match(line + "\n") for line in lines]
    assert all(matches), lines
    assert [int(m["status"]) for m in matches[:20]] == statuses  # type: ignore[index]
    assert {m["endpoint"] for m in matches[:21]} == {"api"}  # type: ignore[index]
    echo = matches[20]
    assert echo is not None
    assert echo["method"] == "POST" and echo["target"] == "/echo"
    assert int(echo["bytes"]) == len(posted.content)
    assert echo["upstream"] == f"{edge.url}/echo"
    assert echo["client"].startswith("127.0.0.1:")
    refused = matches[21]
    assert refused is not None
    assert int(refused["status"]) == down.status_code == 502
    assert refused["target"] == "/x?token=[redacted]"
    assert refused["upstream"] == "-"
    assert refused["error"] == f"the upstream {refused_url} refused the connection"


@pytest.mark.parametrize("form", ["text", "json"])
async def test_a_request_that_went_again_says_how_often_and_where(
    client: ferryman.AsyncClient, tmp_path: Path, form: str
) -> None:
    """Two 503s retried (``retry.statuses``), the third try answers: the line says 3 attempts
    and what each failed one met; a request answered at once says nothing of attempts."""
    from tests.servers.cache_origin import CacheOrigin, Reply

    origin = CacheOrigin().start()
    origin.script("/flaky", Reply(503, body=b"busy"), Reply(503, body=b"busy"), Reply(200))
    origin.script("/steady", Reply(200))
    log = tmp_path / "access.log"
    proxy = await serve_with(
        [("api", origin.url)],
        [
            f"logging.access_log={log}",
            f"logging.format={form}",
            "proxy.endpoints.0.retry.statuses=[503]",
            "proxy.endpoints.0.retry.backoff=0",
            "proxy.endpoints.0.breaker.enabled=false",
            "applications=[proxy, accesslog]",
        ],
    )
    try:
        flaky = await client.get(url_of(proxy, "api", "/flaky"))
        steady = await client.get(url_of(proxy, "api", "/steady"))
        lines = await wait_for_lines(log, 2)
    finally:
        await stop(proxy)
        origin.stop()
    assert flaky.status_code == 200 and steady.status_code == 200
    assert origin.hits("/flaky") == 3
    tried = f"{origin.url} answered 503"
    if form == "text":
        retried, once = (TEXT.match(line + "\n") for line in lines)
        assert retried is not None and once is not None, lines
        assert retried["attempts"] == "3" and retried["tried"] == f"{tried}; {tried}"
        assert retried["status"] == "200" and retried["upstream"] == origin.url + "/flaky"
        assert once["attempts"] is None and "attempts=" not in lines[1]
    else:
        first, second = (json.loads(line) for line in lines)
        failed = {"upstream": origin.url, "failure": "answered 503"}
        assert first["attempts"] == 3 and first["tried"] == [failed, failed]
        assert first["status"] == 200
        assert second["attempts"] == 1 and second["tried"] is None


async def test_json_lines_parse(
    edge: EdgeServer, client: ferryman.AsyncClient, tmp_path: Path
) -> None:
    log = tmp_path / "access.jsonl"
    proxy = await serve_with(
        [("api", edge.url)], [f"logging.access_log={log}", "logging.format=json"]
    )
    try:
        for _ in range(5):
            assert (await client.get(url_of(proxy, "api", "/echo?a=1"))).status_code == 200
        lines = await wait_for_lines(log, 5)
    finally:
        await stop(proxy)
    records = [json.loads(line) for line in lines]
    assert len(records) == 5
    assert {r["target"] for r in records} == {"/echo?a=1"}
    assert {r["upstream"] for r in records} == {f"{edge.url}/echo?a=1"}
    assert all(r["status"] == 200 and r["bytes"] > 0 and r["duration_ms"] > 0 for r in records)
    assert len({r["id"] for r in records}) == 5


async def test_off_registers_nothing(edge: EdgeServer, client: ferryman.AsyncClient) -> None:
    proxy = await serve_with(
        [("api", edge.url)], ["applications=[proxy, accesslog]", "logging.access_log=off"]
    )
    try:
        assert AccessLog not in proxy.system.provider
        assert not proxy.system.dispatcher.has_listeners(EVENT_TRANSACTION_FINISHED)
        assert not proxy.transactions.active  # no transaction is even created
        assert (await client.get(url_of(proxy, "api", "/echo"))).status_code == 200
    finally:
        await stop(proxy)


def test_bad_settings_name_the_key() -> None:
    with pytest.raises(ConfigurationError) as error:
        load_config([], env={}, overrides=["logging.format=xml", "logging.level=loud"])
    problems = "\n".join(error.value.problems)
    assert "logging.format" in problems and "logging.level" in problems
    assert (
        load_config([], env={}, overrides=["logging.access_log=off"])["logging"]["access_log"]
        == "off"
    )


async def test_a_file_that_cannot_be_opened_stops_the_start_naming_the_key(
    edge: EdgeServer, tmp_path: Path
) -> None:
    with pytest.raises(EventListenerError) as error:
        await serve_with([("api", edge.url)], [f"logging.access_log={tmp_path}/no/such/dir.log"])
    cause = error.value.__cause__
    assert isinstance(cause, ConfigurationError)  # (ferryman start prints it as error: ...)
    assert "logging.access_log: cannot open" in str(cause)
    assert "no such file or directory" in str(cause)
