"""From the ``content=`` / ``data=`` / ``files=`` / ``json=`` arguments of a request to its body.

``encode_request`` is the one place that decides a body's ``Content-Type``, its stream and its
length, so the session client, the proxy and the tests all frame bodies the same way.
"""

from __future__ import annotations

import inspect
import json as jsonlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias, cast
from urllib.parse import urlencode

from ferryman.exceptions import StreamConsumedError
from ferryman.http.multipart import BinaryReadable, FileSource, FilesType, MultipartEncoder
from ferryman.http.params import primitive_value_to_str
from ferryman.http.streams import (
    EMPTY_STREAM,
    AsyncByteStream,
    AsyncIteratorByteStream,
    ByteStream,
    IteratorByteStream,
    RequestContent,
    SyncByteStream,
    encode_request_content,
)

__all__ = [
    "AwaitingIteratorByteStream",
    "FileByteStream",
    "RequestData",
    "encode_request",
]

RequestData: TypeAlias = (
    Mapping[str, Any]
    | Sequence[tuple[str, Any]]
    | bytes
    | str
    | BinaryReadable
    | Iterable[Any]
    | AsyncIterable[Any]
)
"""A form (mapping or pairs), a raw body (bytes, str, binary file) or body chunks produced by
a sync iterable (whose items may be awaitables, see ``AwaitingIteratorByteStream``) or an
async iterable."""

_JSON = b"application/json"
_FORM = b"application/x-www-form-urlencoded"


def encode_request(
    content: RequestContent | SyncByteStream | AsyncByteStream | None = None,
    data: RequestData | None = None,
    files: FilesType | None = None,
    json: Any = None,
) -> tuple[list[tuple[bytes, bytes]], SyncByteStream | AsyncByteStream, int | None]:
    """The headers a body brings (its ``Content-Type``), its stream and its length in bytes
    (``None``: unknown, so the body goes out chunked).

    Only one of ``content``, ``data`` as a body, and ``json`` may be given; ``data`` may
    accompany ``files`` as the multipart form's fields.
    """
    if content is None and data is None and json is None and not files:
        return [], EMPTY_STREAM, 0  # most requests: no body, no work
    if files:
        if content is not None or json is not None:
            raise TypeError("files= builds a multipart body; content= and json= cannot join it")
        if data is not None and not _is_form(data):
            raise TypeError(
                "with files=, data= must be form fields (a mapping or (name, value) pairs), "
                f"not {type(data).__name__}"
            )
        encoder = MultipartEncoder(data, files)  # type: ignore[arg-type]
        return [(b"Content-Type", encoder.content_type.encode("ascii"))], encoder, encoder.length
    given = [
        name
        for name, value in (("content", content), ("data", data), ("json", json))
        if value is not None
    ]
    if len(given) > 1:
        raise TypeError(f"a request has one body: give only one of {', '.join(given)}")
    if json is not None:
        body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        encoded = body.encode("utf-8")
        return [(b"Content-Type", _JSON)], ByteStream(encoded), len(encoded)
    if data is not None:
        return _encode_data(data)
    stream, length = encode_request_content(content)
    return [], stream, length


def _is_form(data: object) -> bool:
    if isinstance(data, Mapping):
        return True
    return isinstance(data, list | tuple) and all(
        isinstance(item, list | tuple) and len(item) == 2 for item in data
    )


def _encode_data(
    data: RequestData,
) -> tuple[list[tuple[bytes, bytes]], SyncByteStream | AsyncByteStream, int | None]:
    if isinstance(data, bytes | bytearray | memoryview | str):
        # A raw body: its type is the caller's to declare (as in httpx), not guessed here.
        stream, length = encode_request_content(data)
        return [], stream, length
    if _is_form(data):
        body = _urlencode_form(data)  # type: ignore[arg-type]
        if not body:
            return [], EMPTY_STREAM, 0
        return [(b"Content-Type", _FORM)], ByteStream(body), len(body)
    if hasattr(data, "read"):
        file_stream = FileByteStream(cast(BinaryReadable, data))
        return [], file_stream, file_stream.length
    if isinstance(data, AsyncIterable):
        return [], AsyncIteratorByteStream(data), None
    if isinstance(data, Iterable):
        return [], AwaitingIteratorByteStream(data), None
    raise TypeError(
        "data= must be a mapping or (name, value) pairs (a form), bytes, str, a binary file, "
        f"or a sync or async iterable of bytes, not {type(data).__name__}"
    )


def _urlencode_form(data: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> bytes:
    """``a=1&b=x+y``, with lists as repeated keys and values rendered as query parameters are
    (``true``/``false``, ``None`` as empty), so a form and a query string agree."""
    pairs = data.items() if isinstance(data, Mapping) else data
    fields: list[tuple[str, str | bytes]] = []
    for key, value in pairs:
        name = primitive_value_to_str(key)
        for item in value if isinstance(value, list | tuple) else (value,):
            fields.append((name, item if isinstance(item, bytes) else primitive_value_to_str(item)))
    return urlencode(fields).encode("ascii")


class FileByteStream(SyncByteStream, AsyncByteStream):
    """A binary file as the whole body, read in chunks; its length comes from its size when
    that can be known, and it replays (seeking back) when the file is seekable."""

    __slots__ = ("_passes", "_source")

    def __init__(self, file: BinaryReadable) -> None:
        self._source = FileSource(file, "the request body file")
        self._passes = 0

    @property
    def length(self) -> int | None:
        return self._source.size

    def _chunks(self) -> Iterator[bytes]:
        if self._passes and self._source.start is None:
            raise StreamConsumedError("the body file was already sent and cannot be rewound")
        self._passes += 1
        return self._source.chunks()

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks():
            yield chunk


class AwaitingIteratorByteStream(IteratorByteStream):
    """Body chunks from a sync generator that may also yield awaitables (futures, coroutines)
    whose results are the chunks, as pulsar allows: ``yield b"a"; yield future; yield b"c"``.

    The async face awaits them in order; the sync face cannot, and says so. Plain ``bytes``
    items cost one type check, so an ordinary generator pays nothing for the feature.
    """

    __slots__ = ()

    def __init__(self, iterable: Iterable[Any]) -> None:
        super().__init__(iterable)

    def __iter__(self) -> Iterator[bytes]:
        self._claim()
        items: Iterable[Any] = self._iterable  # typed Iterable[bytes] by the base class
        for item in items:
            if type(item) is bytes:
                yield item
            elif inspect.isawaitable(item):
                if inspect.iscoroutine(item):
                    item.close()  # never awaited: close it so no warning follows
                raise TypeError(
                    "the request body generator yielded an awaitable; only an async client "
                    "can send such a body"
                )
            else:
                yield _chunk_bytes(item)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._claim()
        items: Iterable[Any] = self._iterable  # typed Iterable[bytes] by the base class
        for item in items:
            if type(item) is bytes:
                yield item
            elif inspect.isawaitable(item):
                yield _chunk_bytes(await item)
            else:
                yield _chunk_bytes(item)


def _chunk_bytes(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    raise TypeError(f"body chunks must be bytes or str, not {type(chunk).__name__}")
