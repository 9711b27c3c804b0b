"""Peer configuration: defaults, a TOML file, then command-line overrides."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from yasearch import __version__

DEFAULT_PORT = 8090


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass
class Config:
    data_dir: Path = Path("data")
    #: Address the HTTP server and the DHT bind to. Loopback by default: a peer
    #: that should be reachable from other machines sets "0.0.0.0" explicitly.
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    name: str = ""
    bootstrap: list[str] = field(default_factory=list)
    seeds: Path | None = None
    #: When set, admin routes accept any client presenting it as a Bearer token;
    #: when unset, admin routes answer loopback clients only.
    admin_token: str | None = None

    # crawler
    crawl_delay: float = 1.0
    crawl_concurrency: int = 16
    per_host_concurrency: int = 8
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    max_body_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    #: Seconds one page fetch may take in all (a slow-drip server cannot hold it).
    fetch_deadline: float = 30.0
    #: Let the crawler reach loopback, private and link-local addresses. Off, a
    #: link or redirect written by a stranger cannot make this peer fetch (and
    #: index, and publish) its own admin pages or the operator's LAN. On for
    #: crawling one's own network, the offline demo and tests.
    allow_private_networks: bool = False
    user_agent: str = f"yasearch/{__version__} (peer-to-peer search engine; robots.txt honoured)"
    parse_workers: int = 2

    # index
    commit_interval: float = 1.0
    commit_batch: int = 500
    index_limitmb: int = 256
    #: Run the index writer in a process of its own (off the event loop's GIL).
    index_writer_process: bool = False

    # network
    #: Copies of each term's postings: the r XOR-closest live peers hold them.
    replication: int = 3
    #: Every page's postings are sent again this often (seconds), which refreshes
    #: their expiry clock on the holders and repairs lost copies.
    republish_interval: float = 6 * 3600.0
    #: Postings held for other peers expire when not republished for this long.
    shard_max_age: float = 3 * 24 * 3600.0
    #: Postings one origin peer may place in this peer's shard store.
    shard_quota_per_origin: int = 2_000_000
    #: A peer missing from the DHT for this long (seconds) counts as gone: its terms
    #: are handed off. Shorter flaps of a busy peer are not membership changes.
    membership_grace: float = 60.0
    #: Total time budget of a global search (seconds); partial results after it.
    search_budget: float = 2.0

    # HTTP limits
    max_request_bytes: int = 1024 * 1024
    max_query_chars: int = 512

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def version(self) -> str:
        return __version__

    @classmethod
    def load(cls, path: Path | None = None, **overrides: Any) -> "Config":
        """Defaults, then the TOML file (flat keys named like the fields), then overrides.

        Overrides whose value is None are ignored so that CLI flags left unset do
        not clobber the file.
        """
        values: dict[str, Any] = {}
        if path is not None:
            try:
                with open(path, "rb") as f:
                    values.update(tomllib.load(f))
            except FileNotFoundError:
                raise ConfigError(f"config file {path} does not exist") from None
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        cfg = cls()
        for key, value in values.items():
            current = getattr(cfg, key)
            try:
                if key in ("data_dir", "seeds"):
                    value = Path(value) if value is not None else None
                elif isinstance(current, bool):
                    value = bool(value)
                elif isinstance(current, int) and not isinstance(current, bool):
                    value = int(value)
                elif isinstance(current, float):
                    value = float(value)
                elif isinstance(current, list):
                    if isinstance(value, str):
                        value = [value]
                    value = [str(v) for v in value]
            except (TypeError, ValueError):
                raise ConfigError(f"config key {key!r}: cannot use {value!r}") from None
            setattr(cfg, key, value)
        if not (0 <= cfg.port < 65536):
            raise ConfigError(f"port must be 1-65535 (0 = any free port), not {cfg.port}")
        if cfg.crawl_delay < 0:
            raise ConfigError("crawl_delay must be >= 0")
        if not 1 <= cfg.replication <= 20:
            raise ConfigError("replication must be 1-20")
        if cfg.search_budget <= 0 or cfg.republish_interval <= 0 or cfg.shard_max_age <= 0:
            raise ConfigError("search_budget, republish_interval and shard_max_age must be > 0")
        return cfg
