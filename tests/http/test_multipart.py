"""Multipart bodies parsed back with the stdlib's MIME parser and posted to a real httpbin."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ferryman
from ferryman.exceptions import LocalProtocolError, StreamConsumedError
from ferryman.http import Request
from ferryman.http.multipart import CHUNK_SIZE, MultipartEncoder
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.uvicorn_server import UvicornServer


def _body(encoder: MultipartEncoder) -> bytes:
    return b"".join(encoder)


def _parse(encoder: MultipartEncoder, body: bytes | None = None) -> list[EmailMessage]:
    body = _body(encoder) if body is None else body
    head = b"Content-Type: " + encoder.content_type.encode("ascii") + b"\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    assert isinstance(message, EmailMessage)
    assert message.is_multipart()
    assert not message.defects
    return list(message.iter_parts())  # type: ignore[arg-type]


def _name(part: EmailMessage) -> str:
    name = part.get_param("name", header="content-disposition")
    assert isinstance(name, str)
    return name


def _payload(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


async def _post(
    httpbin: HttpbinServer, encoder: MultipartEncoder, *, declare_length: bool = True
) -> dict[str, Any]:
    headers = [(b"Content-Type", encoder.content_type.encode("ascii"))]
    if declare_length and encoder.length is not None:
        headers.append((b"Content-Length", b"%d" % encoder.length))
    async with ferryman.AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("POST", httpbin.url + "/post", headers=headers, stream=encoder)
        )
        body = await response.aread()
    assert response.status_code == 200, body
    document: dict[str, Any] = json.loads(body)
    return document


def test_fields_and_every_file_form_parse_back(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    with path.open("rb") as report:
        encoder = MultipartEncoder(
            {"title": "Résumé", "count": 3, "flags": [True, False], "empty": None},
            {
                "bare": report,
                "pair": ("notes.txt", b"some notes"),
                "typed": ("data.bin", "text content", "application/x-custom"),
                "headed": ("a.json", b"{}", None, {"X-Origin": "test"}),
                "no_name": (None, b"anonymous"),
            },
        )
        parts = _parse(encoder)
    fields = [(_name(part), part.get_filename(), _payload(part)) for part in parts]
    assert fields == [
        ("title", None, "Résumé".encode()),
        ("count", None, b"3"),
        ("flags", None, b"true"),
        ("flags", None, b"false"),
        ("empty", None, b""),
        ("bare", "report.csv", b"a,b\n1,2\n"),
        ("pair", "notes.txt", b"some notes"),
        ("typed", "data.bin", b"text content"),
        ("headed", "a.json", b"{}"),
        ("no_name", None, b"anonymous"),
    ]
    content_types = {_name(part): part.get("content-type") for part in parts}
    assert content_types["bare"] == "text/csv"
    assert content_types["pair"] == "text/plain"
    assert content_types["typed"] == "application/x-custom"
    assert content_types["headed"] == "application/json"
    assert content_types["no_name"] == "application/octet-stream"
    assert content_types["title"] is None  # plain fields carry no type
    assert parts[8].get("x-origin") == "test"


def test_a_list_of_pairs_repeats_names() -> None:
    encoder = MultipartEncoder(
        [("tag", "a"), ("tag", "b")], [("upload", ("1.txt", b"one")), ("upload", ("2.txt", b"two"))]
    )
    parts = _parse(encoder)
    assert [(_name(p), _payload(p)) for p in parts] == [
        ("tag", b"a"),
        ("tag", b"b"),
        ("upload", b"one"),
        ("upload", b"two"),
    ]


def test_a_headers_content_type_replaces_the_default() -> None:
    encoder = MultipartEncoder(files={"f": ("x.txt", b"x", None, {"Content-Type": "text/x-own"})})
    body = _body(encoder)
    assert body.count(b"Content-Type") == 1
    assert _parse(encoder, body)[0].get("content-type") == "text/x-own"


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ('say "hi"', b"say %22hi%22"),
        ("two\r\nlines", b"two%0D%0Alines"),
        ("back\\slash", b"back\\slash"),
        ("naïve", "naïve".encode()),
    ],
)
def test_names_and_filenames_are_escaped_as_html_forms_do(name: str, quoted: bytes) -> None:
    encoder = MultipartEncoder({name: "v"}, {name: (name, b"f")})
    body = _body(encoder)
    assert b'name="' + quoted + b'"\r\n' in body
    assert b'; filename="' + quoted + b'"\r\n' in body
    assert len(_parse(encoder, body)) == 2


def test_header_injection_through_extra_headers_is_refused() -> None:
    with pytest.raises(ferryman.LocalProtocolError):
        MultipartEncoder(files={"f": ("x", b"x", None, {"X-A": "v\r\nX-Evil: 1"})})
    with pytest.raises(ferryman.LocalProtocolError):
        MultipartEncoder(files={"f": ("x", b"x", "text/plain\r\nX-Evil: 1")})


FIELD_NAMES = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="%"), min_size=1
)


@given(
    fields=st.lists(st.tuples(FIELD_NAMES, st.text()), max_size=5),
    files=st.lists(st.tuples(FIELD_NAMES, FIELD_NAMES, st.binary()), max_size=5),
)
def test_any_form_parses_back_with_its_announced_length(
    fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]
) -> None:
    encoder = MultipartEncoder(fields, [(name, (filename, data)) for name, filename, data in files])
    body = _body(encoder)
    assert encoder.length == len(body)
    assert body.endswith(b"--" + encoder.boundary + b"--\r\n")
    if not fields and not files:
        assert body == b"--" + encoder.boundary + b"--\r\n"
        return
    parts = _parse(encoder, body)
    assert [_payload(p) for p in parts] == [value.encode() for _, value in fields] + [
        data for _, _, data in files
    ]


@pytest.mark.parametrize(
    "boundary", [b"", b"a" * 71, b"ends with space ", b"semi;colon", "é".encode()]
)
def test_invalid_boundaries_are_refused(boundary: bytes) -> None:
    with pytest.raises(ValueError, match="boundary"):
        MultipartEncoder({"a": "b"}, boundary=boundary)


def test_a_boundary_with_special_characters_is_quoted() -> None:
    encoder = MultipartEncoder({"a": "b"}, boundary=b"weird:=?boundary")
    assert encoder.content_type == 'multipart/form-data; boundary="weird:=?boundary"'
    assert [_payload(p) for p in _parse(encoder)] == [b"b"]
    assert MultipartEncoder(boundary=b"plain").content_type.endswith("boundary=plain")


def test_text_mode_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("text")
    with path.open("r") as text_file, pytest.raises(TypeError, match="binary mode"):
        MultipartEncoder(files={"f": text_file})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="binary mode"):
        MultipartEncoder(files={"f": io.StringIO("text")})  # type: ignore[dict-item]


def test_unsupported_values_are_refused() -> None:
    with pytest.raises(TypeError, match="form field"):
        MultipartEncoder({"a": object()})
    with pytest.raises(TypeError, match="content of file field"):
        MultipartEncoder(files={"f": ("name", 12)})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="filename, content"):
        MultipartEncoder(files={"f": ("a", b"b", "c", {}, "e")})  # type: ignore[dict-item]


class RecordingFile(io.RawIOBase):
    """A binary file wrapper that remembers every read size (and is not a real file type,
    so its size is measured by seeking)."""

    def __init__(self, inner: io.BufferedReader) -> None:
        self.inner = inner
        self.reads: list[int] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(-1 if size is None else size)
        return self.inner.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    with path.open("wb") as out:
        for _ in range(4):
            out.write(os.urandom(1024 * 1024))
        out.write(b"tail")
    return path


async def test_a_multi_mib_file_is_streamed_from_disk(
    httpbin: HttpbinServer, big_file: Path
) -> None:
    size = big_file.stat().st_size
    with big_file.open("rb") as raw:
        recording = RecordingFile(raw)
        encoder = MultipartEncoder({"kind": "archive"}, {"blob": ("big.bin", recording)})
        assert recording.reads == []  # nothing read before sending
        assert encoder.length is not None
        assert encoder.length > size
        document = await _post(httpbin, encoder)
    assert document["headers"]["Content-Length"] == str(encoder.length)
    assert document["form"] == {"kind": "archive"}
    prefix = "data:application/octet-stream;base64,"
    assert document["files"]["blob"].startswith(prefix)
    assert base64.b64decode(document["files"]["blob"][len(prefix) :]) == big_file.read_bytes()
    assert recording.reads
    assert max(recording.reads) <= CHUNK_SIZE
    assert len(recording.reads) >= size // CHUNK_SIZE


async def test_fields_and_files_reach_httpbin(httpbin: HttpbinServer, tmp_path: Path) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello from disk")
    with path.open("rb") as upload:
        encoder = MultipartEncoder(
            [("name", "ferryman"), ("tag", "a"), ("tag", "b")],
            {"upload": upload, "inline": ("x.txt", "inline text")},
        )
        document = await _post(httpbin, encoder)
    assert document["form"] == {"name": "ferryman", "tag": ["a", "b"]}
    assert document["files"] == {"upload": "hello from disk", "inline": "inline text"}


def _pipe_with(data: bytes) -> tuple[io.BufferedReader, threading.Thread]:
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with os.fdopen(write_fd, "wb") as out:
            out.write(data)

    writer = threading.Thread(target=write)
    writer.start()
    return os.fdopen(read_fd, "rb"), writer


async def test_an_unsized_file_is_sent_chunked(uvicorn_server: UvicornServer) -> None:
    # Werkzeug (under httpbin) refuses chunked requests, so uvicorn's echo route receives it.
    data = os.urandom(200_000)
    pipe, writer = _pipe_with(data)
    with pipe:
        encoder = MultipartEncoder({"kind": "pipe"}, {"stream": ("s.bin", pipe)})
        assert encoder.length is None
        with pytest.raises(TypeError, match="unknown"):
            len(encoder)
        assert encoder  # truthy even without a length
        headers = [(b"Content-Type", encoder.content_type.encode("ascii"))]
        async with ferryman.AsyncConnectionPool() as pool:
            response = await pool.handle_async_request(
                Request("POST", uvicorn_server.url + "/echo", headers=headers, stream=encoder)
            )
            echo = json.loads(await response.aread())
        writer.join()
        with pytest.raises(StreamConsumedError):
            _body(encoder)
    assert ["transfer-encoding", "chunked"] in echo["headers"]
    parts = _parse(encoder, echo["body"].encode("latin-1"))
    assert [_payload(part) for part in parts] == [b"pipe", data]


def test_length_counts_from_the_current_position_and_replays_from_it(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    with path.open("rb") as handle:
        handle.seek(4)
        encoder = MultipartEncoder(files={"f": ("f.bin", handle)})
        first = _body(encoder)
        second = _body(encoder)
    assert first == second
    assert encoder.length == len(first)
    assert _payload(_parse(encoder, first)[0]) == b"456789"


@pytest.mark.parametrize(
    "content", [b"bytes content", "str content", io.BytesIO(b"in-memory file")]
)
async def test_replayable_contents_give_the_same_body_on_every_face(content: Any) -> None:
    encoder = MultipartEncoder({"a": "1"}, {"f": ("f.txt", content)})
    sync_body = _body(encoder)
    async_body = b"".join([chunk async for chunk in encoder])
    assert sync_body == async_body == _body(encoder)
    assert len(encoder) == len(sync_body)


def test_a_file_that_shrinks_after_measuring_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    with path.open("rb") as handle:
        encoder = MultipartEncoder(files={"f": ("f.bin", handle)})
        path.write_bytes(b"x" * 10)  # truncated underneath the open file
        with pytest.raises(LocalProtocolError, match="changed while being sent"):
            _body(encoder)


def test_a_file_that_grows_sends_only_the_measured_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    with path.open("rb") as handle:
        encoder = MultipartEncoder(files={"f": ("f.bin", handle)})
        with path.open("ab") as more:
            more.write(b"y" * 100)
        body = _body(encoder)
    assert len(body) == encoder.length
    assert _payload(_parse(encoder, body)[0]) == b"x" * 100


def test_small_fixed_parts_go_out_as_one_chunk() -> None:
    encoder = MultipartEncoder({"a": "1", "b": "2"}, {"f": ("f", b"small")})
    assert len(list(encoder)) == 1


def test_files_are_left_open_for_their_owner(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"data")
    with path.open("rb") as handle:
        encoder = MultipartEncoder(files={"f": handle})
        _body(encoder)
        encoder.close()
        assert not handle.closed


async def _collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def _chunks(encoder: MultipartEncoder) -> Iterator[bytes]:
    return iter(encoder)


async def test_a_non_seekable_file_cannot_be_replayed_on_the_async_face() -> None:
    pipe, writer = _pipe_with(b"once")
    with pipe:
        encoder = MultipartEncoder(files={"f": ("f", pipe)})
        assert b"once" in await _collect(encoder.__aiter__())
        writer.join()
        with pytest.raises(StreamConsumedError):
            await _collect(encoder.__aiter__())
        with pytest.raises(StreamConsumedError):
            b"".join(_chunks(encoder))
