"""Trustless gateway: our server and our verifying reader, over a real socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Response

from marketplace.errors import (
    BlobTooLarge,
    BlockNotFound,
    CidMismatch,
    InvalidCid,
    ReadOnlyStore,
    StorageError,
)
from marketplace.storage import (
    BackgroundServer,
    GatewayReader,
    LocalStore,
    cid_for,
    get_blob,
    put_blob,
    start_gateway,
)
from marketplace.storage.gateway import RAW_MEDIA_TYPE


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStore, str]]:
    store = LocalStore(tmp_path_factory.mktemp("gateway-store"))
    with start_gateway(store) as server:
        yield store, server.url


@pytest.fixture()
def reader(served: tuple[LocalStore, str]) -> Iterator[GatewayReader]:
    with GatewayReader(served[1], timeout=5.0) as gateway:
        yield gateway


def test_reader_fetches_and_verifies_over_a_real_socket(
    served: tuple[LocalStore, str], reader: GatewayReader
) -> None:
    store, url = served
    assert url.startswith("http://127.0.0.1:")
    cid = store.put(b"hello world")
    assert reader.get(cid) == b"hello world"
    assert reader.has(cid)
    assert not reader.has(cid_for(b"absent"))


def test_reader_fetches_a_chunked_blob(
    served: tuple[LocalStore, str], reader: GatewayReader
) -> None:
    data = bytes(range(256)) * 40
    cid = put_blob(served[0], data, chunk_size=1000)
    assert get_blob(reader, cid, max_size=len(data)) == data
    with pytest.raises(BlobTooLarge):
        get_blob(reader, cid, max_size=len(data) - 1)


def test_reader_unknown_block(reader: GatewayReader) -> None:
    cid = cid_for(b"nobody stored this")
    with pytest.raises(BlockNotFound, match=cid):
        reader.get(cid)


def test_reader_is_read_only(served: tuple[LocalStore, str], reader: GatewayReader) -> None:
    with pytest.raises(ReadOnlyStore, match="read-only"):
        reader.put(b"data")
    cid = served[0].put(b"pin me")
    with pytest.raises(ReadOnlyStore, match="pin"):
        reader.pin(cid)


def test_reader_refuses_malformed_cid_without_a_request(reader: GatewayReader) -> None:
    with pytest.raises(InvalidCid):
        reader.get("bafy-not-a-cid")


def test_server_raw_response_headers(served: tuple[LocalStore, str]) -> None:
    store, url = served
    cid = store.put(b"raw block")
    response = httpx.get(
        f"{url}/ipfs/{cid}", params={"format": "raw"}, headers={"Accept": RAW_MEDIA_TYPE}
    )
    assert response.status_code == 200
    assert response.content == b"raw block"
    assert response.headers["content-type"] == RAW_MEDIA_TYPE
    assert response.headers["etag"] == f'"{cid}.raw"'
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_server_head(served: tuple[LocalStore, str]) -> None:
    store, url = served
    cid = store.put(b"twelve bytes")
    response = httpx.head(f"{url}/ipfs/{cid}")
    assert response.status_code == 200
    assert response.headers["content-length"] == "12"
    assert response.content == b""
    assert httpx.head(f"{url}/ipfs/{cid_for(b'x')}").status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "headers", "status"),
    [
        ("/ipfs/QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", {}, {}, 400),
        ("/ipfs/bafkreinotbase32!", {}, {}, 400),
        ("/ipfs/" + cid_for(b"unknown"), {}, {}, 404),
        ("/ipfs/" + cid_for(b""), {"format": "car"}, {}, 400),
        ("/ipfs/" + cid_for(b""), {}, {"Accept": "application/vnd.ipld.car"}, 406),
    ],
)
def test_server_error_statuses(
    served: tuple[LocalStore, str],
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
) -> None:
    served[0].put(b"")
    response = httpx.get(served[1] + path, params=params, headers=headers)
    assert response.status_code == status


def test_server_never_serves_a_corrupted_block(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cid = store.put(b"original")
    store.path_of(cid).write_bytes(b"tampered")
    with start_gateway(store) as server:
        assert httpx.get(f"{server.url}/ipfs/{cid}").status_code == 500
        with GatewayReader(server.url) as reader, pytest.raises(StorageError):
            reader.get(cid)


def _lying_gateway(body: bytes) -> FastAPI:
    app = FastAPI()

    @app.get("/ipfs/{cid}")
    def block(cid: str) -> Response:
        return Response(body, media_type=RAW_MEDIA_TYPE)

    return app


def test_reader_detects_a_gateway_serving_wrong_bytes() -> None:
    cid = cid_for(b"what was asked for")
    with BackgroundServer(_lying_gateway(b"something else")) as server:
        with GatewayReader(server.url) as reader, pytest.raises(CidMismatch, match=cid):
            reader.get(cid)


def test_reader_caps_the_response_size() -> None:
    cid = cid_for(b"small")
    with BackgroundServer(_lying_gateway(bytes(5000))) as server:
        reader = GatewayReader(server.url, max_block_size=4096)
        with pytest.raises(BlobTooLarge, match="4096"):
            reader.get(cid)
        reader.close()


def test_reader_reports_an_unreachable_gateway() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with GatewayReader(f"http://127.0.0.1:{port}", timeout=2.0) as reader:
        with pytest.raises(StorageError, match="unreachable"):
            reader.get(cid_for(b"x"))
        with pytest.raises(StorageError, match="unreachable"):
            reader.has(cid_for(b"x"))


def test_background_server_stops(tmp_path: Path) -> None:
    server = start_gateway(LocalStore(tmp_path))
    url = server.url
    assert httpx.get(f"{url}/ipfs/{cid_for(b'')}").status_code == 404
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/ipfs/{cid_for(b'')}", timeout=2.0)
