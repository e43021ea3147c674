"""The server guard's pure parts and its ASGI behaviour (marketplace.server)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from marketplace.server import GuardMiddleware, ServerLimits, TokenBuckets, error_response
from marketplace.server.middleware import (
    check_json_body,
    unencodable_string,
)
from marketplace.untrusted.parse import json_depth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # empty: one token every 0.5 s
    assert buckets.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.now += 60  # refills to the burst, not beyond
    assert [buckets.take("a") for _ in range(4)].count(0.0) == 3


def test_work_buckets_charge_after_the_fact_and_refuse_while_in_debt() -> None:
    clock = Clock()
    work = TokenBuckets(rate=0.25, burst=1.0, clock=clock)
    assert work.take("a", cost=0.0) == 0.0
    work.charge("a", 1.5)  # a costly request: half a second of debt
    assert work.take("a", cost=0.0) == pytest.approx(2.0)  # paid back at 0.25 s/s
    assert work.take("b", cost=0.0) == 0.0
    clock.now += 2.0
    assert work.take("a", cost=0.0) == 0.0


def test_token_buckets_keep_only_the_most_recent_clients() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_clients=100, clock=Clock())
    for i in range(1000):
        buckets.take(f"10.0.{i // 256}.{i % 256}")
    assert len(buckets) == 100


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * 33 + "]" * 33, True),
        ("[" * 32 + "]" * 32, False),
        ('{"a": "' + "[" * 500 + '"}', False),  # brackets inside strings do not nest
        ('["\\"[[[[", ' * 3 + "1" + "]" * 3, False),
        ("[" * 200_000, True),
    ],
)
def test_json_depth(text: str, deep: bool) -> None:
    assert (json_depth(text.encode(), 32) > 32) is deep
    refused = check_json_body(text.encode(), 32)
    assert (refused is not None and "nests deeper than 32" in refused[1]) is deep


def test_unencodable_string_names_the_field() -> None:
    assert unencodable_string({"q": "fine", "list": ["ok", {"x": "\ud800"}]}) == "list[1].x"
    assert unencodable_string({"\udc00": 1}) == "body (a key)"
    assert unencodable_string({"q": "caf\u00e9 \U0001f600"}) is None
    assert unencodable_string({"id": {"\n": "\ud800"}}) == 'id."\\n"'  # found by the fuzz suite


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[" * 5000, "deeper than 32"),
        (b'{"k": ' + b"9" * 5000 + b"}", "number too long"),
        (b'{"query": "\\ud800"}', "query: holds an unpaired UTF-16 surrogate"),
    ],
)
def test_check_json_body_refuses_with_one_line(body: bytes, fragment: str) -> None:
    problem = check_json_body(body, 32)
    assert problem is not None and problem[0] == 422
    assert fragment in problem[1] and "\n" not in problem[1]


def test_error_response_is_always_one_line() -> None:
    body = json.loads(error_response(422, "bad field 'a\nb\r'").body)
    assert body == {"error": "bad field 'a\\nb\\r'", "detail": None}


def test_check_json_body_accepts_unicode() -> None:
    assert check_json_body(json.dumps({"q": "caf\u00e9 \U0001f600"}).encode(), 32) is None


@pytest.fixture()
def guarded() -> TestClient:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    app.add_middleware(
        GuardMiddleware,
        limits=ServerLimits(max_body_bytes=100, rate_per_s=1.0, burst=5, tarpit_s=0.0),
    )
    return TestClient(app)


def test_guard_body_cap_declared_and_chunked(guarded: TestClient) -> None:
    assert guarded.post("/echo", json={"a": "x" * 50}).json() == {"bytes": 58}
    r = guarded.post("/echo", content=b"x" * 101, headers={"content-type": "text/plain"})
    assert r.status_code == 413 and "larger than 100 bytes" in r.json()["error"]
    r = guarded.post("/echo", content=iter([b"x" * 60, b"x" * 60]))
    assert r.status_code == 413


def test_guard_rate_limit_says_when_to_retry(guarded: TestClient) -> None:
    codes = [guarded.post("/echo", json={}).status_code for _ in range(8)]
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}
    r = guarded.post("/echo", json={})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert "too many requests from testclient" in r.json()["error"]


def test_guard_caps_a_clients_requests_in_flight() -> None:
    """A few costly requests at a time could hold every worker within any rate: 429 past 2."""
    release = asyncio.Event()
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await release.wait()
        return {"done": True}

    guarded = GuardMiddleware(app, ServerLimits(max_in_flight_per_client=2))

    async def scenario() -> list[int]:
        async def get(client: str) -> int:
            transport = httpx.ASGITransport(app=guarded, client=(client, 1234))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return (await c.get("/slow")).status_code

        first = [asyncio.create_task(get("10.0.0.1")) for _ in range(2)]
        await asyncio.sleep(0.05)
        third = await get("10.0.0.1")  # refused at once, while two are in flight
        other = asyncio.create_task(get("10.0.0.2"))  # another client is not affected
        await asyncio.sleep(0.05)
        release.set()
        return [third, *[await t for t in first], await other]

    assert asyncio.run(scenario()) == [429, 200, 200, 200]
    assert guarded.in_flight == {}


def test_guard_charges_handler_time() -> None:
    """Requests that each take a long time are refused once a client used its share."""
    app = FastAPI()

    @app.get("/costly")
    async def costly() -> dict[str, bool]:
        await asyncio.sleep(0.3)
        return {"done": True}

    limits = ServerLimits(work_share=0.01, work_burst_s=0.5, tarpit_s=0.0)
    client = TestClient(GuardMiddleware(app, limits))
    codes = [client.get("/costly").status_code for _ in range(3)]
    assert codes == [200, 200, 429]  # 0.6 s used of a 0.5 s allowance
    r = client.get("/costly")
    assert r.status_code == 429 and "too much work asked by testclient" in r.json()["error"]


def test_a_429_waits_out_the_tarpit() -> None:
    """A flooding connection gets one answer per tarpit delay, not a busy loop of 429s."""
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, bool]:
        return {"ok": True}

    client = TestClient(GuardMiddleware(app, ServerLimits(rate_per_s=0.1, burst=1, tarpit_s=0.3)))
    assert client.get("/").status_code == 200
    start = time.monotonic()
    assert client.get("/").status_code == 429
    assert time.monotonic() - start >= 0.3
