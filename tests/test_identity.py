"""The node key: ID bound to the public key, the key file, migration, signatures."""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from pathlib import Path

import pytest

from yasearch.identity import Identity, IdentityError, load_or_create, node_id_of, verify


def test_node_id_is_the_sha1_of_the_raw_public_key() -> None:
    ident = Identity.generate()
    assert len(ident.public_key) == 32 and len(ident.node_id) == 20
    assert ident.node_id == node_id_of(ident.public_key) == hashlib.sha1(ident.public_key).digest()
    assert ident.hex == ident.node_id.hex()


def test_key_file_is_private_and_keeps_the_id_across_starts(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    key_file = tmp_path / "node_key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_or_create(tmp_path).node_id == first.node_id
    assert not list(tmp_path.glob("*.tmp"))


def test_a_random_legacy_id_is_migrated_to_a_key_bound_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = "ab" * 20
    (tmp_path / "identity.json").write_text(json.dumps({"node_id": old}))
    with caplog.at_level(logging.WARNING, logger="yasearch.identity"):
        ident = load_or_create(tmp_path)
    assert ident.hex != old and ident.node_id == node_id_of(ident.public_key)
    assert not (tmp_path / "identity.json").exists()
    assert [r.message for r in caplog.records if "random node ID" in r.message] != []
    assert len(caplog.records) == 1


def test_a_damaged_key_file_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "node_key.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n")
    with pytest.raises(IdentityError, match="is damaged; move it away"):
        load_or_create(tmp_path)


def test_signatures_verify_and_malformed_input_is_false_never_an_exception() -> None:
    a, b = Identity.generate(), Identity.generate()
    sig = a.sign(b"data")
    assert verify(a.public_key, sig, b"data")
    assert not verify(a.public_key, sig, b"datA")
    assert not verify(b.public_key, sig, b"data")
    bad_sig = bytes([sig[0] ^ 1]) + sig[1:]
    for args in [
        (a.public_key, bad_sig, b"data"),
        (a.public_key[:31], sig, b"data"),
        (a.public_key, sig[:63], b"data"),
        (b"\xff" * 32, sig, b"data"),  # not a curve point
        ("key", sig, b"data"),
        (a.public_key, None, b"data"),
        (a.public_key, sig, "data"),
        (None, None, None),
    ]:
        assert verify(*args) is False
