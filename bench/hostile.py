"""Hostile input (docs/security.md): a tenant's worst-case regular expressions, a flood of
made-up tokens, and the facade fuzzed from docs/openapi.yaml. Each scenario runs on a stack of its own,
so that one's leftovers (caches, servers) cannot flatter another's figures."""

from __future__ import annotations

import asyncio
from typing import Any

from hoststate import API_GROUP_VERSION
from hoststate.kube import SERVERS

from .fuzz import run_fuzz
from .harness import Stack, create_services, say
from .hostile_regex import main as regex_main
from .hostile_regex import tenant as tenant_token
from .hostile_tokens import main as tokens_main
from .scenarios import facade_ready

FUZZ_CASES = 10_000
FUZZ_SERVERS = 20


async def fuzz(cases: int = FUZZ_CASES) -> dict[str, Any]:
    """At least `cases` schemathesis cases against a facade with a few real servers and services."""
    stack = await Stack.start()
    try:
        await create_services(stack.client, [f"compute{i}" for i in range(4)])
        project = "tenant-fuzz"
        token = await tenant_token(stack.client, project)
        ids = []
        for i in range(FUZZ_SERVERS):
            body = {"apiVersion": API_GROUP_VERSION, "kind": "Server", "metadata": {"name": f"vm-{i}"}}
            body["spec"] = {"host": f"compute{i % 4}", "displayName": f"vm-{i}"}
            ids.append((await stack.client.create(SERVERS, body, namespace=project))["metadata"]["uid"])
        _, api_port, _, _ = await facade_ready(stack, [])
        url = f"http://127.0.0.1:{api_port}"
        return await asyncio.to_thread(
            run_fuzz, url, stack.cluster.admin_token, token, cases, known_ids={"server_id": ids[0]}
        )
    finally:
        await stack.stop()


async def run(fuzz_cases: int = FUZZ_CASES) -> dict[str, Any]:
    say("hostile input: worst-case regular expressions")
    regex = await regex_main()
    say("hostile input: a flood of made-up tokens")
    tokens = await tokens_main()
    say(f"hostile input: fuzzing the facade ({fuzz_cases} cases)")
    fuzzed = await fuzz(fuzz_cases)
    return {"regex": regex, "tokens": tokens, "fuzz": fuzzed}


def table(results: dict[str, Any]) -> list[str]:
    regex, tokens, fuzzed = results["regex"], results["tokens"], results["fuzz"]
    alone, attacked = regex["victim_alone_ms"], regex["victim_during_attack_ms"]
    flood_alone, flooded = tokens["admin_alone_ms"], tokens["admin_during_flood_ms"]
    return [
        f"another tenant's GET /servers/{{id}} p99: {alone['p99']:.1f} ms alone, {attacked['p99']:.1f} ms during "
        f"worst-case regex searches (target < {regex['target_p99_ms']} ms)",
        f"admin GET /os-services p99: {flood_alone['p99']:.1f} ms alone, {flooded['p99']:.1f} ms during "
        f"{tokens['flood']['tokens']:,} made-up tokens (+{tokens['p99_increase_ms']:.1f} ms, "
        f"target < +{tokens['target_p99_increase_ms']} ms)",
        f"fuzzing: {fuzzed['cases']} cases, {fuzzed['server_errors']} x 5xx, "
        f"{fuzzed['slower_than_1s']} slower than 1 s, p99 {fuzzed['p99_s'] * 1000:.1f} ms",
    ]
