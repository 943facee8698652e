"""An ASGI app served by uvicorn in the tests: a server nobody on this project wrote."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from typing import Any
from urllib.parse import parse_qs

import brotli
import zstandard

# Deterministic, compressible text: what the /encoded route compresses.
SAMPLE_LINE = b"ferryman carries HTTP traffic between applications and their APIs.\n"


def sample_body(lines: int) -> bytes:
    """Numbered lines: compressible, but not so much that the compressed body fits one read."""
    return b"".join(b"%06d %s" % (i, SAMPLE_LINE) for i in range(lines))


TEXT_SAMPLES = {
    "cp1252": "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, na\u00efve fa\u00e7ade \u2014 \u20ac5. " * 8,
    "shift_jis": "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3067\u3059\u3002"
    "\u3053\u308c\u306f\u30c6\u30b9\u30c8\u3067\u3059\u3002" * 8,
    "utf-8": "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 \u65e5\u672c \U0001f680 " * 8,
}


def _compress(coding: str, data: bytes) -> bytes:
    for name in [part.strip() for part in coding.split(",")]:
        if name == "gzip":
            data = gzip.compress(data)
        elif name == "deflate":
            data = zlib.compress(data)
        elif name == "br":
            data = brotli.compress(data)
        elif name == "zstd":
            data = zstandard.ZstdCompressor().compress(data)
        elif name != "identity":
            raise ValueError(name)
    return data


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await _websocket_echo(receive, send)
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path == "/encoded":
        # ?coding=zstd|gzip|deflate|br|"gzip, br"&lines=N: a compressed body sent in pieces.
        coding = query.get("coding", "identity")
        plain = sample_body(int(query.get("lines", "100")))
        data = _compress(coding, plain)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-encoding", coding.encode()),
                ],
            }
        )
        pause = float(query.get("pause", "0"))  # seconds between pieces: separate reads
        for start in range(0, len(data), 1000):
            await send(
                {
                    "type": "http.response.body",
                    "body": data[start : start + 1000],
                    "more_body": True,
                }
            )
            if pause:
                await asyncio.sleep(pause)
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/redirect":
        # ?url=...&status=307: a redirect answered after the request body was read.
        location = query.get("url", "/")
        await send(
            {
                "type": "http.response.start",
                "status": int(query.get("status", "302")),
                "headers": [(b"location", location.encode()), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/text":
        # ?charset=cp1252|shift_jis|utf-8&declare=1: text in a charset, named in the header or not.
        charset = query.get("charset", "utf-8")
        data = TEXT_SAMPLES[charset].encode(charset)
        content_type = b"text/plain"
        if query.get("declare") == "1":
            content_type += b"; charset=" + charset.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type)],
            }
        )
        await send({"type": "http.response.body", "body": data})
        return
    if path == "/stream":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        for i in range(5):
            await send({"type": "http.response.body", "body": b"part%d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    payload = {
        "method": scope["method"],
        "path": path,
        "query": scope["query_string"].decode(),
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        "body": body.decode("latin-1"),
        "http_version": scope["http_version"],
    }
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _websocket_echo(receive: Any, send: Any) -> None:
    message = await receive()
    assert message["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
