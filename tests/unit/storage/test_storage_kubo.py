"""KuboStore against a small fake of kubo's HTTP RPC API, over a real socket.

The fake implements just the four commands the client uses, with kubo's wire format:
POST only, ``arg=`` query parameters, multipart upload for ``block/put``, and errors as
HTTP 500 with ``{"Message", "Code", "Type"}``. It computes CIDs on its own (not with our
``cid_for``), so the client's check against kubo's answer is a real comparison.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from marketplace.errors import BlobTooLarge, BlockNotFound, CidMismatch, StorageError
from marketplace.storage import BackgroundServer, KuboStore, cid_for, get_blob, put_blob


def _kubo_cid(data: bytes) -> str:
    binary = b"\x01\x55\x12\x20" + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(binary).decode().lower().rstrip("=")


def _multipart_files(body: bytes, content_type: str) -> list[bytes]:
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    files = []
    for part in body.split(b"--" + boundary)[1:-1]:
        _headers, _, content = part.partition(b"\r\n\r\n")
        files.append(content.removesuffix(b"\r\n"))
    return files


@dataclass
class FakeKubo:
    blocks: dict[str, bytes] = field(default_factory=dict)
    pins: set[str] = field(default_factory=set)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lie_about_cids: bool = False
    serve_wrong_bytes: bool = False

    def app(self) -> FastAPI:
        app = FastAPI()

        def error(message: str) -> JSONResponse:
            return JSONResponse({"Message": message, "Code": 0, "Type": "error"}, 500)

        @app.post("/api/v0/{command:path}")
        async def rpc(command: str, request: Request) -> Response:
            params = dict(request.query_params)
            self.calls.append((command, params))
            if command == "block/put":
                ctype = request.headers.get("content-type", "")
                (data,) = _multipart_files(await request.body(), ctype)
                cid = _kubo_cid(data + b"!" if self.lie_about_cids else data)
                self.blocks[cid] = data
                if params.get("pin") == "true":
                    self.pins.add(cid)
                return JSONResponse({"Key": cid, "Size": len(data)})
            cid = params.get("arg", "")
            if cid not in self.blocks:
                return error(f"block was not found locally (offline): ipld: could not find {cid}")
            if command == "block/get":
                data = self.blocks[cid]
                return Response(data + b"x" if self.serve_wrong_bytes else data)
            if command == "block/stat":
                return JSONResponse({"Key": cid, "Size": len(self.blocks[cid])})
            if command == "pin/add":
                self.pins.add(cid)
                return JSONResponse({"Pins": [cid]})
            return error(f"unknown command {command!r}")

        @app.get("/api/v0/{command:path}")
        def rpc_get(command: str) -> Response:
            return Response("405 - Method Not Allowed", status_code=405)

        return app


@pytest.fixture(scope="module")
def kubo_server() -> Iterator[tuple[FakeKubo, str]]:
    fake = FakeKubo()
    with BackgroundServer(fake.app()) as server:
        yield fake, server.url


@pytest.fixture()
def kubo(kubo_server: tuple[FakeKubo, str]) -> Iterator[tuple[FakeKubo, KuboStore]]:
    fake, url = kubo_server
    fake.calls.clear()
    fake.lie_about_cids = fake.serve_wrong_bytes = False
    with KuboStore(url, timeout=5.0) as store:
        yield fake, store


def test_put_uses_raw_sha256_and_pins(kubo: tuple[FakeKubo, KuboStore]) -> None:
    fake, store = kubo
    cid = store.put(b"hello world")
    assert cid == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert fake.blocks[cid] == b"hello world"
    assert cid in fake.pins
    command, params = fake.calls[-1]
    assert command == "block/put"
    assert params == {"cid-codec": "raw", "mhtype": "sha2-256", "pin": "true"}


def test_get_has_pin(kubo: tuple[FakeKubo, KuboStore]) -> None:
    fake, store = kubo
    data = bytes(range(256)) * 3 + b"\r\n--boundary-like\r\n"
    cid = store.put(data)
    assert store.get(cid) == data
    assert store.has(cid)
    fake.pins.discard(cid)
    store.pin(cid)
    assert cid in fake.pins
    commands = [c for c, _ in fake.calls]
    assert commands == ["block/put", "block/get", "block/stat", "pin/add"]
    assert fake.calls[2][1] == {"arg": cid, "offline": "true"}


def test_unknown_block(kubo: tuple[FakeKubo, KuboStore]) -> None:
    _, store = kubo
    cid = cid_for(b"not in kubo")
    assert not store.has(cid)
    with pytest.raises(BlockNotFound, match="could not find"):
        store.get(cid)
    with pytest.raises(BlockNotFound):
        store.pin(cid)


def test_daemon_returning_another_cid_is_refused(kubo: tuple[FakeKubo, KuboStore]) -> None:
    fake, store = kubo
    fake.lie_about_cids = True
    with pytest.raises(CidMismatch, match=cid_for(b"payload")):
        store.put(b"payload")


def test_daemon_serving_wrong_bytes_is_detected(kubo: tuple[FakeKubo, KuboStore]) -> None:
    fake, store = kubo
    cid = store.put(b"payload")
    fake.serve_wrong_bytes = True
    with pytest.raises(CidMismatch, match=cid):
        store.get(cid)


def test_oversized_answer_is_cut_off(kubo_server: tuple[FakeKubo, str]) -> None:
    fake, url = kubo_server
    cid = _kubo_cid(bytes(2000))
    fake.blocks[cid] = bytes(2000)
    with KuboStore(url, max_block_size=1000) as store, pytest.raises(BlobTooLarge):
        store.get(cid)


def test_chunked_blob_through_kubo(kubo: tuple[FakeKubo, KuboStore]) -> None:
    _, store = kubo
    data = hashlib.sha256(b"blob").digest() * 100
    cid = put_blob(store, data, chunk_size=500, pin=True)
    assert get_blob(store, cid, max_size=len(data)) == data


def test_unreachable_daemon() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with KuboStore(f"http://127.0.0.1:{port}", timeout=2.0) as store:
        with pytest.raises(StorageError, match="ipfs daemon"):
            store.put(b"x")
        with pytest.raises(StorageError, match="unreachable"):
            store.get(cid_for(b"x"))
