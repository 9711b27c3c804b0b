"""``python -m bench wire``: decoding + validating one /p2p/v1/postings batch, msgspec vs pydantic v2.

The p2p server decodes every request body into a typed message (:mod:`yasearch.wire`,
msgspec Structs with ``Meta`` constraints). This measures that step on the largest
message a peer receives, one full batch of :data:`~yasearch.wire.MAX_POSTINGS`
postings, against the same message and the same constraints declared for pydantic
v2 (strict mode, so ``"1"`` is no more an int there than here), in one run on one
machine. Both must accept the batch and refuse the same hostile one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from yasearch.limits import MAX_DOC_LENGTH, MAX_FLAGS, MAX_TERM_CHARS, MAX_TF
from yasearch.identity import Identity
from yasearch.wire import MAX_POSTINGS, PROTOCOL_VERSION, BadMessage, PostingsRequest, check_ids, decode, encode, sign


def _pydantic_model() -> Any:
    """The postings request for pydantic v2, with the constraints of yasearch.wire."""
    from pydantic import BaseModel, ConfigDict, Field, StringConstraints

    Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]
    Term = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TERM_CHARS)]
    Posting = tuple[
        Hex,
        Annotated[int, Field(ge=0, le=MAX_TF)],
        Annotated[int, Field(ge=0, le=MAX_FLAGS)],
        Annotated[int, Field(ge=0, le=MAX_DOC_LENGTH)],
    ]

    class PostingsRequestPd(BaseModel):
        model_config = ConfigDict(strict=True)

        origin: Hex
        postings: Annotated[list[tuple[Term, Posting]], Field(max_length=MAX_POSTINGS)]
        v: int = PROTOCOL_VERSION

    return PostingsRequestPd


class _UncheckedPosting(msgspec.Struct, array_like=True):
    doc_id: Annotated[str, msgspec.Meta(min_length=40, max_length=40)]
    tf: Annotated[int, msgspec.Meta(ge=0, le=MAX_TF)]
    flags: Annotated[int, msgspec.Meta(ge=0, le=MAX_FLAGS)]
    length: Annotated[int, msgspec.Meta(ge=0, le=MAX_DOC_LENGTH)]


class _UncheckedEntry(msgspec.Struct, array_like=True):
    term: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TERM_CHARS)]
    posting: _UncheckedPosting


class _UncheckedRequest(msgspec.Struct):
    """The same message with the hex-id patterns left out: what the patterns cost.

    msgspec checks a ``pattern`` with Python's ``re`` once per string; pydantic-core
    uses a Rust regex engine. A batch holds one doc id per posting."""

    origin: Annotated[str, msgspec.Meta(min_length=40, max_length=40)]
    postings: Annotated[list[_UncheckedEntry], msgspec.Meta(max_length=MAX_POSTINGS)]
    v: int = PROTOCOL_VERSION


def batch(n: int, seed: int = 7) -> bytes:
    """One postings request as a publisher sends it: n postings over realistic terms, signed."""
    rng = random.Random(seed)
    words = [f"{w}{i}" for i, w in enumerate(("river", "castle", "copper", "lantern", "meadow") * 400)]
    docs = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(n // 20 + 1)]
    postings = [
        [rng.choice(words), [rng.choice(docs), rng.randint(1, 40), rng.choice((0, 1, 3, 8)), rng.randint(50, 5000)]]
        for _ in range(n)
    ]
    key = Identity.generate()
    unsigned = json.dumps({"v": PROTOCOL_VERSION, "origin": key.hex, "postings": postings, "signed_at": time.time()})
    return encode(sign(msgspec.json.decode(unsigned, type=PostingsRequest), key))


_VALIDATE = msgspec.json.Decoder(PostingsRequest)


def msgspec_validate(raw: bytes) -> PostingsRequest:
    """What the library is chosen for: JSON to a validated message (constraints and ids),
    without the signature check that yasearch.wire.decode adds."""
    msg = _VALIDATE.decode(raw)
    check_ids(msg)
    return msg


def per_batch(fn: Callable[[bytes], object], raw: bytes, runs: int) -> float:
    """Median seconds of one call over ``runs`` (after a warm-up call)."""
    fn(raw)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(raw)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench wire", description=__doc__.splitlines()[0])
    ap.add_argument("--postings", type=int, default=MAX_POSTINGS, help="postings in the batch (default: the limit)")
    ap.add_argument("--runs", type=int, default=50, help="timed decodes per library (median reported)")
    args = ap.parse_args(argv)
    import pydantic

    Pd = _pydantic_model()
    raw = batch(args.postings)
    origin = msgspec.json.decode(raw, type=PostingsRequest).origin.encode()
    hostile = raw.replace(b'"origin":"' + origin, b'"origin":"' + origin.upper())
    assert len(decode(raw, PostingsRequest).postings) == len(Pd.model_validate_json(raw).postings) == args.postings
    for name, check in (("msgspec", lambda: msgspec_validate(hostile)), ("pydantic", lambda: Pd.model_validate_json(hostile))):
        try:
            check()
        except (BadMessage, pydantic.ValidationError):
            continue
        raise SystemExit(f"{name} accepted a hostile batch")

    ms = per_batch(msgspec_validate, raw, args.runs)
    full = per_batch(lambda b: decode(b, PostingsRequest), raw, args.runs)
    pd = per_batch(Pd.model_validate_json, raw, args.runs)
    unchecked = per_batch(msgspec.json.Decoder(_UncheckedRequest).decode, raw, args.runs)

    print(f"one /p2p/v1/postings batch: {args.postings} postings, {len(raw) / 1024:.0f} KiB of JSON; median of {args.runs} runs")
    print(f"  msgspec {msgspec.__version__:<8} {ms * 1000:8.2f} ms per batch")
    print(f"  pydantic {pydantic.VERSION:<7} {pd * 1000:8.2f} ms per batch")
    print(f"  pydantic / msgspec: {pd / ms:.2f}x (above 1: msgspec is faster)")
    print(f"  for reference, msgspec without the hex-id check: {unchecked * 1000:.2f} ms per batch")
    print(f"  and yasearch.wire.decode (validation and the origin's signature): {full * 1000:.2f} ms per batch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
