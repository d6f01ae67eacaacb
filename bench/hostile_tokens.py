"""Authentication under a flood (issue 12): an admin's latency on GET /os-services with and
without 30,000 made-up tokens arriving at the same time, measured in one run.

The made-up tokens are shaped like Kubernetes JWTs (base64url header, claims and signature), so
none is refused by the facade's local check: each costs a TokenReview, the worst case. They come
from a child process (its own event loop and connections), so the admin's measurements are not
delayed by the flood's own client. `hostile_tokens` is the scenario; `python -m bench.hostile_tokens`
runs it alone on a local stack.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import secrets
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import aiohttp

from .harness import Stack, closed_loop_gets, create_services, milliseconds, say, summary
from .scenarios import facade_ready

FLOOD_TOKENS = 30_000
FLOOD_CONNECTIONS = 64
ADMIN_CONNECTIONS = 8
BASELINE_REQUESTS = 3_000
NOVA_HEADERS = {"Accept": "application/json", "OpenStack-API-Version": "compute 2.53"}


def jwt_shaped_token() -> str:
    """Random, but shaped like a ServiceAccount token (about 900 characters)."""
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"made-up"}').rstrip(b"=").decode()
    return f"{header}.{secrets.token_urlsafe(480)}.{secrets.token_urlsafe(256)}"


def flood(url: str, count: int, connections: int) -> dict[str, Any]:
    """Send `count` requests with distinct made-up tokens (in a child process); their statuses."""

    async def send_all() -> dict[str, Any]:
        statuses: Counter[int] = Counter()
        queue = iter(range(count))
        started = time.monotonic()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

            async def worker() -> None:
                for _ in queue:
                    headers = {**NOVA_HEADERS, "X-Auth-Token": jwt_shaped_token()}
                    async with session.get(url, headers=headers) as response:
                        await response.read()
                        statuses[response.status] += 1

            await asyncio.gather(*(worker() for _ in range(connections)))
        seconds = time.monotonic() - started
        return {"tokens": count, "statuses": dict(statuses), "seconds": seconds, "rps": count / seconds}

    return asyncio.run(send_all())


async def admin_requests(
    url: str, token: str, *, count: int | None = None, until: asyncio.Future | None = None
) -> list[float]:
    """Closed-loop admin GETs on ADMIN_CONNECTIONS connections: `count` of them, or until `until` is done."""
    headers = {**NOVA_HEADERS, "X-Auth-Token": token}
    return await closed_loop_gets(url, headers, ADMIN_CONNECTIONS, count=count, until=until)


async def hostile_tokens(facade_url: str, admin_token: str, tokens: int = FLOOD_TOKENS) -> dict[str, Any]:
    """The admin's GET /os-services latency (ms) alone, then during a flood of `tokens` made-up
    tokens; the target is a p99 within 50 ms of the baseline's."""
    url = f"{facade_url.rstrip('/')}/v2.1/os-services"
    await admin_requests(url, admin_token, count=200)  # warm: the admin's token and rights cached
    baseline = await admin_requests(url, admin_token, count=BASELINE_REQUESTS)
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        flooding = loop.run_in_executor(pool, flood, url, tokens, FLOOD_CONNECTIONS)
        during = await admin_requests(url, admin_token, until=flooding)
        flooded = await flooding
    alone, crowded = milliseconds(summary(baseline)), milliseconds(summary(during))
    return {
        "admin_alone_ms": alone,
        "admin_during_flood_ms": crowded,
        "p99_increase_ms": round(crowded["p99"] - alone["p99"], 2),
        "target_p99_increase_ms": 50,
        "flood": flooded,
    }


async def main() -> dict[str, Any]:
    stack = await Stack.start()
    try:
        await create_services(stack.client, [f"compute{i}" for i in range(20)])
        _, api_port, _, _ = await facade_ready(stack, [])
        return await hostile_tokens(f"http://127.0.0.1:{api_port}", stack.cluster.admin_token)
    finally:
        await stack.stop()


if __name__ == "__main__":
    results = asyncio.run(main())
    say(json.dumps(results, indent=2))
    sys.exit(0 if results["p99_increase_ms"] <= results["target_p99_increase_ms"] else 1)
