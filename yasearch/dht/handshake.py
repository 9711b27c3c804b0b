"""Proof of key possession: the messages of the DHT handshake and signed peer info.

A contact enters our routing table only after proving that it holds the private key
whose public key hashes to its node ID (:func:`yasearch.identity.node_id_of`), so
nobody can pick the ID next to a key it wants to capture (S/Kademlia; libp2p's
peer id is the hash of the key as well). One exchange proves both sides:

1. A -> B ``hello(A_id, network, nonce)``, a fresh random nonce;
2. B -> A ``[B_id, B_pubkey, sig_B, cookie]``, ``sig_B`` over
   ``(HELLO_TAG, network, nonce, B_id, A_id)``; A checks the key hashes to ``B_id``
   and the signature, and caches B (ID, key, address); the nonce came back from that
   address, so the address is proven too;
3. A -> B ``prove(A_id, A_pubkey, sig_A, cookie)``, ``sig_A`` over
   ``(PROVE_TAG, network, cookie, A_id, B_id)``. The cookie is an HMAC of A's address
   and claimed ID under B's secret (a SYN cookie), so B keeps no state per stranger
   and sends nothing to an address that did not ask.

Different tags for the two directions keep one signature from being replayed as the
other; the network name in both keeps peers of different networks apart (a mismatch
is refused at step 2 and would fail the signature anyway).

A client-only peer (one that others cannot dial back: behind NAT, :mod:`yasearch.reachability`)
says so in the handshake itself, in both directions: its answer at step 2 and its
proof at step 3 carry one more element, :data:`CLIENT`, which its signature covers
too. So the marker cannot be stripped or added by anyone but the key's holder, and
the other side knows the role before it would file the contact in its routing table.

Peer info records are signed by their origin (:func:`seal_info`): ``[blob, pubkey,
sig]`` with ``blob = msgpack([seq, info])`` and ``sig`` over ``(INFO_TAG, network,
node_id, blob)``. ``seq`` only grows, so an old record cannot be replayed over a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Any

import umsgpack

from yasearch.identity import PUBLIC_KEY_BYTES, Identity, node_id_of, verify

from .info import is_node_id, validate_info
from .guard import Address, address_key

HELLO_TAG = b"yasearch-dht-hello-v1"
PROVE_TAG = b"yasearch-dht-prove-v1"
INFO_TAG = b"yasearch-dht-info-v1"
NONCE_BYTES = 16
NETWORK_MAX = 64
INFO_BLOB_MAX = 4096
COOKIE_EPOCH = 30.0  # seconds; a cookie is good for one to two epochs
#: The role marker of a client-only peer, last in its hello answer and its proof.
CLIENT = "client"


def challenge_payload(
    tag: bytes, network: str, challenge: bytes, signer_id: bytes, verifier_id: bytes, client: bool = False
) -> bytes:
    """The bytes a handshake signature covers (msgpack of the five fields, and the
    client marker when the signer is client-only)."""
    return umsgpack.packb([tag, network, challenge, signer_id, verifier_id] + ([CLIENT] if client else []))


def is_network(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= NETWORK_MAX


def is_challenge(value: object) -> bool:
    return isinstance(value, bytes) and NONCE_BYTES <= len(value) <= 32


class Cookies:
    """Stateless challenges for step 3: an HMAC of (address, claimed ID, epoch)."""

    def __init__(self) -> None:
        self._secret = os.urandom(32)

    def _mac(self, address: Address, node_id: bytes, epoch: int) -> bytes:
        host, port = address_key(address)
        msg = umsgpack.packb([host, port, node_id, epoch])
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[:NONCE_BYTES]

    def make(self, address: Address, node_id: bytes) -> bytes:
        return self._mac(address, node_id, int(time.monotonic() // COOKIE_EPOCH))

    def check(self, cookie: object, address: Address, node_id: bytes) -> bool:
        if not isinstance(cookie, bytes) or len(cookie) != NONCE_BYTES:
            return False
        epoch = int(time.monotonic() // COOKIE_EPOCH)
        return any(hmac.compare_digest(cookie, self._mac(address, node_id, e)) for e in (epoch, epoch - 1))


def hello_answer(
    identity: Identity, network: str, nonce: bytes, asker_id: bytes, cookie: bytes, *, client: bool = False
) -> list[Any]:
    """Step 2, B's side (``client``: B is client-only and says so, signed)."""
    sig = identity.sign(challenge_payload(HELLO_TAG, network, nonce, identity.node_id, asker_id, client))
    return [identity.node_id, identity.public_key, sig, cookie] + ([CLIENT] if client else [])


def check_hello_answer(
    answer: object, network: str, nonce: bytes, own_id: bytes
) -> tuple[bytes, bytes, bytes, bool] | None:
    """Step 2, A's side: ``(peer_id, public_key, cookie, client)`` if the answer proves the key."""
    if not isinstance(answer, (list, tuple)) or len(answer) not in (4, 5):
        return None
    client = len(answer) == 5
    if client and answer[4] != CLIENT:
        return None
    peer_id, pubkey, sig, cookie = answer[:4]
    if not (is_node_id(peer_id) and isinstance(pubkey, bytes) and len(pubkey) == PUBLIC_KEY_BYTES):
        return None
    if node_id_of(pubkey) != peer_id or peer_id == own_id or not is_challenge(cookie):
        return None
    if not verify(pubkey, sig, challenge_payload(HELLO_TAG, network, nonce, peer_id, own_id, client)):
        return None
    return peer_id, pubkey, cookie, client


def proof(identity: Identity, network: str, cookie: bytes, peer_id: bytes, *, client: bool = False) -> list[Any]:
    """Step 3's arguments after the asker's ID: ``[pubkey, sig, cookie]`` (and the
    client marker when the asker is client-only)."""
    sig = identity.sign(challenge_payload(PROVE_TAG, network, cookie, identity.node_id, peer_id, client))
    return [identity.public_key, sig, cookie] + ([CLIENT] if client else [])


def check_proof(
    network: str, own_id: bytes, node_id: object, pubkey: object, sig: object, cookie: bytes, client: bool = False
) -> bool:
    """Step 3, B's side (the cookie itself is checked by :class:`Cookies`)."""
    if not (is_node_id(node_id) and isinstance(pubkey, bytes) and len(pubkey) == PUBLIC_KEY_BYTES):
        return False
    if node_id_of(pubkey) != node_id:
        return False
    return verify(pubkey, sig, challenge_payload(PROVE_TAG, network, cookie, node_id, own_id, client))


def seal_info(identity: Identity, network: str, seq: int, info: dict[str, Any]) -> list[Any]:
    """Our peer info record, signed: ``[blob, pubkey, sig]``."""
    blob = umsgpack.packb([seq, info])
    sig = identity.sign(umsgpack.packb([INFO_TAG, network, identity.node_id, blob]))
    return [blob, identity.public_key, sig]


def open_info(sealed: object, network: str, node_id: bytes) -> tuple[int, dict[str, Any]] | None:
    """``(seq, validated info)`` of a record signed by ``node_id``'s key; None otherwise."""
    if not isinstance(sealed, (list, tuple)) or len(sealed) != 3:
        return None
    blob, pubkey, sig = sealed
    if not (isinstance(blob, bytes) and len(blob) <= INFO_BLOB_MAX and isinstance(pubkey, bytes)):
        return None
    if node_id_of(pubkey) != node_id or not verify(pubkey, sig, umsgpack.packb([INFO_TAG, network, node_id, blob])):
        return None
    try:
        seq, info = umsgpack.unpackb(blob)
    except Exception:  # signed garbage is still garbage
        return None
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        return None
    return seq, validate_info(info)
