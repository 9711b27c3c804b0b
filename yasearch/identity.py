"""The peer's persistent identity: an Ed25519 key pair and the node ID bound to it.

The node ID is the SHA-1 of the 32-byte raw public key (160 bits, the key space
terms already use), so a peer cannot choose where it sits in the DHT: it would have
to find a key whose hash lands there (S/Kademlia, libp2p's peer id). Other peers
check the binding before they route to anyone (see ``yasearch.dht``).

The private key lives in the data dir (``node_key.pem``, PKCS#8, mode 0600),
created on first start, so a restarted peer keeps its ID and its share of the key
space. A data dir from before keys existed holds ``identity.json`` with a random
node ID; it is replaced by a new key (and so a new ID), which is logged once.

The API is small on purpose; signed records elsewhere use exactly this:
``Identity.public_key``, ``Identity.sign``, :func:`node_id_of`, :func:`verify`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)

KEY_FILE = "node_key.pem"
LEGACY_FILE = "identity.json"
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


class IdentityError(RuntimeError):
    """The key file exists but cannot be read."""


def node_id_of(public_key: bytes) -> bytes:
    """The 20-byte node ID of a 32-byte raw Ed25519 public key: its SHA-1."""
    return hashlib.sha1(public_key).digest()


def verify(public_key: object, signature: object, data: object) -> bool:
    """True if ``signature`` is ``public_key``'s Ed25519 signature of ``data``.

    Any malformed input (wrong types or lengths, a point that is not a key) is
    False, never an exception: every argument may come straight off the network.
    """
    if not (isinstance(public_key, bytes) and isinstance(signature, bytes) and isinstance(data, bytes)):
        return False
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """This peer's key pair; ``node_id`` is always ``node_id_of(public_key)``."""

    _key: Ed25519PrivateKey = field(repr=False)
    public_key: bytes = field(init=False)  # 32 raw bytes
    node_id: bytes = field(init=False)  # 20 bytes

    def __post_init__(self) -> None:
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        object.__setattr__(self, "public_key", raw)
        object.__setattr__(self, "node_id", node_id_of(raw))

    @classmethod
    def generate(cls) -> "Identity":
        """A new key pair held in memory only (tests, tools)."""
        return cls(Ed25519PrivateKey.generate())

    @property
    def hex(self) -> str:
        return self.node_id.hex()

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._key.sign(data)

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temporary file, fsync, rename: a kill leaves old or new, never half.

    The temporary file is created with ``mode``, so a secret is never readable by
    others, not even for a moment.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an old .tmp left by a kill keeps its mode otherwise
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _damaged(path: Path) -> IdentityError:
    return IdentityError(
        f"{path} is damaged; move it away to start with a new identity (the peer will get a new node ID)"
    )


def load_or_create(data_dir: Path) -> Identity:
    """The identity kept in ``data_dir``, created (or migrated) on first start."""
    path = data_dir / KEY_FILE
    legacy = data_dir / LEGACY_FILE
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError):
            raise _damaged(path) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise _damaged(path)
        legacy.unlink(missing_ok=True)  # a migration interrupted after the key was written
        return Identity(key)
    ident = Identity.generate()
    atomic_write(path, ident.private_pem(), mode=0o600)
    if legacy.exists():
        log.warning(
            "identity: %s held a random node ID; replaced by a key-bound one (new node ID %s, key in %s)",
            legacy, ident.hex, path.name,
        )
        legacy.unlink()
    return ident
