"""Fuzzing /api/v1 and /p2p/v1 from the peer's own OpenAPI description: no input gives a 5xx.

schemathesis turns each operation of ``/api/v1/openapi.json`` into a Hypothesis
strategy of requests, valid ones (positive) and ones that break the schema
(negative), and we send them to a peer on loopback. The example budget is small
and fixed and the runs are derandomized, so CI is fast and repeatable; set
``YASEARCH_FUZZ_EXAMPLES`` (and ``YASEARCH_FUZZ_SEED`` for a random walk) to fuzz
harder by hand.

Crawls started by fuzzed requests are recorded, not run: a fuzzed seed URL names
anything on the internet, and tests only talk to loopback. Everything else (index
removals, p2p writes, searches) runs for real on the test peer. The two Server-Sent
Events streams never end by design and are left out.
"""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

EXAMPLES = int(os.environ.get("YASEARCH_FUZZ_EXAMPLES", "12"))
SEED = os.environ.get("YASEARCH_FUZZ_SEED")
SKIPPED = ("/api/v1/crawl/events", "/api/v1/crawl/{id}/events")


def fuzz(doc: dict[str, Any], base_url: str, examples: int) -> tuple[int, list[str]]:
    """Send ``examples`` positive and negative cases per operation; (requests sent, the 5xx answers)."""
    schema = schemathesis.openapi.from_dict(doc)
    sent = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in SKIPPED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=SEED is None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                nonlocal sent
                response = case.call(base_url=base_url, timeout=30)
                sent += 1
                if response.status_code >= 500:
                    failures.append(f"{response.status_code} {response.text[:200]}\n    {case.as_curl_command()}")

            if SEED is not None:
                run = seed(int(SEED))(run)
            try:
                run()
            except Unsatisfiable:  # nothing to break: an operation without parameters or body
                assert mode is GenerationMode.NEGATIVE, op.path
    return sent, failures


async def test_fuzzed_api_and_p2p_requests_never_get_a_5xx(make_peer, http, monkeypatch):
    peer = await make_peer()
    started: list[Any] = []

    async def record_crawl(spec: Any) -> Any:
        started.append(spec)
        return SimpleNamespace(id=f"fuzz{len(started)}", state="running")

    monkeypatch.setattr(peer, "start_crawl", record_crawl)
    async with http.get(peer.url + "/api/v1/openapi.json") as r:
        doc = await r.json()
    assert {"/api/v1/crawl", "/p2p/v1/postings", "/p2p/v1/lookup"} <= set(doc["paths"])
    sent, failures = await asyncio.to_thread(fuzz, doc, peer.url, EXAMPLES)
    assert not failures, f"{len(failures)} of {sent} fuzzed requests got a 5xx:\n" + "\n".join(failures[:20])
    assert sent >= EXAMPLES * 10  # the operations were really exercised
    assert started  # valid crawl requests got through to the peer


# -- what the fuzzer found, one regression test each --------------------------------------

#: A multipart part whose header holds a control character: aiohttp's parser raises
#: InvalidHeader while the handler reads the form (was a 500 on every form route).
BAD_MULTIPART = b'--b\r\nContent-Disposition: form-data; name="\x1d,]"\r\n\r\nx\r\n--b--\r\n'


async def test_a_malformed_multipart_body_is_a_400(make_peer, http):
    from peerutil import assert_json_error

    peer = await make_peer(admin_token="s3cret")
    headers = {"Content-Type": "multipart/form-data; boundary=b", "Authorization": "Bearer s3cret"}
    async with http.post(peer.url + "/api/v1/crawl", data=BAD_MULTIPART, headers=headers) as r:
        await assert_json_error(r, 400, "bad_request")
    for path in ("/crawl", "/crawl/login", "/index/login"):  # the UI's form posts
        async with http.post(peer.url + path, data=BAD_MULTIPART, headers=headers) as r:
            assert r.status == 400, path
    assert peer.list_jobs() == []
