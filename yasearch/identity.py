"""The peer's persistent identity: a 160-bit node ID and a display name.

Created on first start and kept in the data dir, so a restarted peer keeps its
ID and therefore its share of the DHT key space.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path


class IdentityError(RuntimeError):
    """The identity file exists but cannot be read."""


@dataclass(frozen=True)
class Identity:
    node_id: bytes  # 20 bytes

    @property
    def hex(self) -> str:
        return self.node_id.hex()


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file, fsync, rename: a kill leaves old or new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_or_create(data_dir: Path) -> Identity:
    path = data_dir / "identity.json"
    if path.exists():
        try:
            raw = json.loads(path.read_text())
            node_id = bytes.fromhex(raw["node_id"])
            if len(node_id) == 20:
                return Identity(node_id)
        except (ValueError, KeyError, TypeError):
            pass
        raise IdentityError(
            f"{path} is damaged; move it away to start with a new identity (the peer will get a new node ID)"
        )
    ident = Identity(secrets.token_bytes(20))
    atomic_write(path, json.dumps({"node_id": ident.hex}).encode())
    return ident
