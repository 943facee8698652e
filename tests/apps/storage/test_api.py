"""The JSON API on the kernel's port, every answer validated against its OpenAPI document;
HAR 1.2 export, filters, favourites, the live stream and replay."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_schema_validator import OAS31Validator

import ferryman
from tests.apps.storage.conftest import Served
from tests.servers.edge import EdgeServer


class Checked:
    """Calls the API and validates each answer against the schema the OpenAPI document gives
    for that operation and status."""

    def __init__(self, client: ferryman.AsyncClient, served: Served, document: dict[str, Any]):
        self.client = client
        self.served = served
        self.document = document

    async def call(self, method: str, path: str, **params: Any) -> Any:
        response = await self.client.request(method, self.served.api + path, params=params)
        template = re.sub(r"/transactions/[0-9a-f]{32}", "/transactions/{id}", path)
        operation = self.document["paths"][template][method.lower()]
        answer = operation["responses"].get(str(response.status_code))
        assert answer is not None, f"{method} {path}: {response.status_code} is not documented"
        schema = answer["content"]["application/json"]["schema"]
        wrapped = {**schema, "components": self.document["components"]}
        body = response.json()
        OAS31Validator(wrapped).validate(body)
        return response.status_code, body


@pytest.fixture
async def api(
    serve: Any, database_url: str, edge: EdgeServer, client: ferryman.AsyncClient
) -> Checked:
    served = await serve(database_url, [("api", edge.url), ("other", edge.url)])
    document = (await client.get(served.api + "/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    OAS31Validator.check_schema({"$defs": document["components"]["schemas"]})
    return Checked(client, served, document)


async def traffic(api: Checked) -> None:
    client, served = api.client, api.served
    await client.post(
        served.url("api", "/echo?page=1&q=a%20b"),
        json={"token": "t0ken", "name": "needle-in-body"},
        headers={"Authorization": "Basic c2VrcmV0", "X-Ferryman-Tag-Env": "prod"},
    )
    await client.get(served.url("api", "/status?code=404"))
    await client.get(served.url("api", "/status?code=500"))
    await client.get(served.url("other", "/big?size=300"))
    await served.storage.flush(10)


async def test_lists_filters_and_pages(api: Checked) -> None:
    await traffic(api)
    status, page = await api.call("GET", "/transactions")
    assert status == 200 and len(page["items"]) == 4 and page["next"] is None
    assert [item["target"] for item in page["items"]][-1] == "/echo?page=1&q=a%20b"
    assert (await api.call("GET", "/transactions", endpoint="other"))[1]["items"][0][
        "target"
    ] == "/big?size=300"
    assert {
        i["status"] for i in (await api.call("GET", "/transactions", status="4xx"))[1]["items"]
    } == {404}
    errors = (await api.call("GET", "/transactions", status="5xx"))[1]["items"]
    assert [i["status"] for i in errors] == [500]
    [tagged] = (await api.call("GET", "/transactions", tag="env=prod"))[1]["items"]
    assert tagged["tags"] == {"env": "prod"}
    [found] = (await api.call("GET", "/transactions", q="needle-in"))[1]["items"]
    assert found["id"] == tagged["id"]
    first = (await api.call("GET", "/transactions", limit="3"))[1]
    assert len(first["items"]) == 3 and first["next"]
    second = (await api.call("GET", "/transactions", limit="3", cursor=first["next"]))[1]
    assert len(second["items"]) == 1 and second["next"] is None
    assert second["items"][0]["id"] == tagged["id"]
    assert (await api.call("GET", "/transactions", since="2999-01-01T00:00:00Z"))[1]["items"] == []
    status, error = await api.call("GET", "/transactions", status="7zz")
    assert status == 400 and "status" in error["message"]


async def test_detail_favourite_facets_stats_system(api: Checked) -> None:
    await traffic(api)
    items = (await api.call("GET", "/transactions", tag="env=prod"))[1]["items"]
    identifier = items[0]["id"]
    status, detail = await api.call("GET", f"/transactions/{identifier}")
    assert status == 200
    assert ["authorization", "[redacted]"] in [
        [n.lower(), v] for n, v in detail["request"]["headers"]
    ]
    assert json.loads(detail["request"]["body"]["text"])["token"] == "[redacted]"
    assert detail["timings"]["total"] > 0
    assert (await api.call("GET", f"/transactions/{'0' * 32}"))[0] == 404

    assert (await api.call("PUT", f"/transactions/{identifier}/favourite"))[1]["favourite"]
    [favourite] = (await api.call("GET", "/transactions", favourite="true"))[1]["items"]
    assert favourite["id"] == identifier and favourite["favourite"] is True
    assert not (await api.call("DELETE", f"/transactions/{identifier}/favourite"))[1]["favourite"]
    assert (await api.call("GET", "/transactions", favourite="true"))[1]["items"] == []

    facets = (await api.call("GET", "/facets"))[1]
    assert facets["total"] == 4
    assert facets["endpoint"] == {"api": 3, "other": 1}
    assert facets["status"] == {"2xx": 2, "4xx": 1, "5xx": 1}
    assert facets["tag"] == [{"name": "env", "value": "prod", "count": 1}]

    stats = (await api.call("GET", "/stats"))[1]
    assert stats["total"]["requests"] == 4 and stats["total"]["errors"] == 1
    assert sum(point["requests"] for point in stats["series"]) == 4
    assert [route["path"] for route in stats["failing"]] == ["/status"]

    system = (await api.call("GET", "/system"))[1]
    assert [e["name"] for e in system["endpoints"]] == ["api", "other"]
    assert system["storage"]["size"]["transactions"] == 4
    assert system["storage"]["recorded"] == 4


async def test_har_export_is_har_1_2_and_redacted(api: Checked) -> None:
    await traffic(api)
    status, har = await api.call("GET", "/transactions.har", endpoint="api")
    assert status == 200
    entries = har["log"]["entries"]
    assert har["log"]["version"] == "1.2" and har["log"]["creator"]["name"] == "ferryman"
    assert len(entries) == 3
    # Oldest first, as browsers list them; ISO date-times; -1 for unknown phases.
    assert entries[0]["startedDateTime"] <= entries[-1]["startedDateTime"]
    post = entries[0]
    assert post["request"]["method"] == "POST"
    assert post["request"]["url"].endswith("/echo?page=1&q=a%20b")
    assert {"name": "q", "value": "a b"} in post["request"]["queryString"]
    assert {"name": "authorization", "value": "[redacted]"} in [
        {"name": h["name"].lower(), "value": h["value"]} for h in post["request"]["headers"]
    ]
    assert json.loads(post["request"]["postData"]["text"])["token"] == "[redacted]"
    assert post["response"]["content"]["mimeType"] == "application/json"
    assert post["timings"]["connect"] == -1 or post["timings"]["connect"] >= 0
    # (The echo upstream's answer repeats what it got: only the request side is checked.)
    assert "c2VrcmV0" not in json.dumps([entry["request"] for entry in entries])
    assert "t0ken" not in json.dumps([entry["request"] for entry in entries])
    binary = (await api.call("GET", "/transactions.har", endpoint="other"))[1]["log"]["entries"]
    assert binary[0]["response"]["content"]["encoding"] == "base64"
    Draft202012Validator.check_schema(api.document["components"]["schemas"]["HAR"])


async def test_the_live_stream_sends_each_finished_transaction(api: Checked) -> None:
    client, served = api.client, api.served
    response = await client.get(served.api + "/transactions/stream", stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events: list[dict[str, Any]] = []

    async def read() -> None:
        buffer = b""
        async for chunk in response.aiter_bytes():
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                lines = block.decode().splitlines()
                if "event: transaction" in lines:
                    data = next(line[6:] for line in lines if line.startswith("data: "))
                    events.append(json.loads(data))
                    if len(events) == 2:
                        return

    reader = asyncio.create_task(read())
    while not served.storage.stream.subscribers:
        await asyncio.sleep(0.01)
    await client.get(served.url("api", "/echo?live=1"))
    await client.get(served.url("other", "/echo?live=2"))
    await asyncio.wait_for(reader, 10)
    await response.aclose()
    assert [(e["endpoint"], e["target"]) for e in events] == [
        ("api", "/echo?live=1"),
        ("other", "/echo?live=2"),
    ]
    summary = api.document["components"]["schemas"]["Summary"]
    for event in events:
        OAS31Validator(summary).validate(event)
    await served.storage.flush(10)
    stored = (await api.call("GET", "/transactions"))[1]["items"]
    assert {e["id"] for e in events} == {item["id"] for item in stored}


async def test_replay_sends_the_request_again_and_names_the_new_transaction(api: Checked) -> None:
    await traffic(api)
    [original] = (await api.call("GET", "/transactions", tag="env=prod"))[1]["items"]
    status, replay = await api.call("POST", f"/transactions/{original['id']}/replay")
    assert status == 200, replay
    assert replay["replay_of"] == original["id"] and replay["status"] == 200
    assert [name.lower() for name in replay["omitted_headers"]] == ["authorization"]
    await api.served.storage.flush(10)
    status, again = await api.call("GET", f"/transactions/{replay['id']}")
    assert again["tags"]["replay-of"] == original["id"]
    assert again["method"] == "POST" and again["target"] == original["target"]
    assert "authorization" not in [name.lower() for name, _ in again["request"]["headers"]]
    # What the upstream got: the stored body (its secret redacted), no credentials.
    echoed = json.loads(again["response"]["body"]["text"])
    assert json.loads(echoed["body"])["name"] == "needle-in-body"
    assert "authorization" not in [name.lower() for name, _ in echoed["headers"]]
    assert (await api.call("POST", f"/transactions/{'0' * 32}/replay"))[0] == 404
