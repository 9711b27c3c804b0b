"""Peer configuration: defaults, a TOML file, then command-line overrides."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from yasearch import __version__
from yasearch.crawler.types import CrawlerSettings

DEFAULT_PORT = 8090


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _as_bool(value: Any) -> bool:
    """A TOML boolean, or the words an environment or CLI gives (``"false"`` is False)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(value)


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


def _host_port(value: str) -> bool:
    """``host:port`` with a port of 1-65535 (IPv6 hosts in brackets)."""
    host, _, port = value.strip().rpartition(":")
    return bool(host.strip("[]")) and port.isdigit() and 0 < int(port) < 65536


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
    #: Names (``name`` or ``name:port``) this peer answers to besides its addresses
    #: and localhost; a request for any other name is refused (DNS rebinding).
    public_names: list[str] = field(default_factory=list)
    #: Addresses of reverse proxies whose ``X-Forwarded-Proto: https`` is believed
    #: (the admin cookie is then ``Secure``).
    trusted_proxies: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])

    # crawler: the defaults are the crawler's own (CrawlerSettings), declared once there
    crawl_delay: float = CrawlerSettings.delay
    crawl_concurrency: int = CrawlerSettings.concurrency
    per_host_concurrency: int = CrawlerSettings.per_host_concurrency
    connect_timeout: float = CrawlerSettings.connect_timeout
    read_timeout: float = CrawlerSettings.read_timeout
    max_body_bytes: int = CrawlerSettings.max_body_bytes
    max_redirects: int = CrawlerSettings.max_redirects
    #: Seconds one page fetch may take in all (a slow-drip server cannot hold it).
    fetch_deadline: float = CrawlerSettings.fetch_deadline
    #: Let the crawler reach loopback, private and link-local addresses. Off, a
    #: link or redirect written by a stranger cannot make this peer fetch (and
    #: index, and publish) its own admin pages or the operator's LAN. On for
    #: crawling one's own network, the offline demo and tests.
    allow_private_networks: bool = False
    user_agent: str = f"yasearch/{__version__} (peer-to-peer search engine; robots.txt honoured)"
    parse_workers: int = 2

    # recrawl (yasearch.recrawl): every indexed page is revisited, adaptively
    #: Bounds of a page's revisit interval (seconds): halved when it changed, doubled when not.
    recrawl_min_interval: float = 86400.0
    recrawl_max_interval: float = 60 * 86400.0
    #: Share of crawl_concurrency the background recrawl may use (0 = no recrawl).
    recrawl_share: float = 0.25
    #: Consecutive failed revisits (5xx, timeout, DNS) after which a page is removed.
    recrawl_max_failures: int = 5
    #: First retry of a failed revisit after this many seconds, doubling per failure.
    recrawl_retry_delay: float = 3600.0
    #: How often the recrawl looks for due pages (seconds).
    recrawl_check_interval: float = 60.0

    # index
    commit_interval: float = 1.0
    commit_batch: int = 500
    index_limitmb: int = 256
    #: Run the index writer in a process of its own (off the event loop's GIL): crawl +
    #: index end to end 1.3-1.5x the writer thread's rate on 2 cores (docs/benchmarks.md).
    index_writer_process: bool = True

    # network
    #: Name of the network this peer belongs to. The DHT handshake carries it and
    #: peers of different networks never enter each other's routing tables, so a
    #: test or intranet network cannot leak into the public one (or the reverse).
    network: str = "public"
    #: "host:port" other peers reach this peer's HTTP API (and DHT) at, when it is
    #: known (a port forwarded through NAT, a public address in front of a proxy).
    #: Set, the peer is public and skips detection; unset, a peer not bound to
    #: loopback asks peers to dial it back and runs client-only when none can
    #: (yasearch.reachability).
    advertise: str = ""
    #: Copies of each term's postings: the r XOR-closest live peers hold them.
    replication: int = 3
    #: Every page's postings are sent again this often (seconds), which refreshes
    #: their expiry clock on the holders and repairs lost copies.
    republish_interval: float = 6 * 3600.0
    #: Postings held for other peers expire when not republished for this long.
    shard_max_age: float = 3 * 24 * 3600.0
    #: Postings one origin peer may place in this peer's shard store.
    shard_quota_per_origin: int = 2_000_000
    #: Postings this peer's shard store holds in all: new ones are refused beyond it.
    shard_max_postings: int = 20_000_000
    #: Postings the origins sending from one IP address may hold here together
    #: (fresh origin ids from one address share it).
    shard_quota_per_source: int = 4_000_000
    #: Source networks not counted per address (many peers on one machine).
    shard_quota_exempt: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    #: A peer missing from the DHT for this long (seconds) counts as gone: its terms
    #: are handed off. Shorter flaps of a busy peer are not membership changes.
    membership_grace: float = 60.0
    #: Total time budget of a global search (seconds); partial results after it.
    search_budget: float = 2.0
    #: Checks of remote results: "origin" (the origin checks phrases and gives
    #: snippets), "off" (nobody is asked), "fetch" (also re-fetch the top results
    #: through the crawler and drop pages gone or without the query terms).
    verify: str = "origin"

    # logs (rotated at 10 MB, 5 old files kept)
    #: Also write the log to this file ("" = stderr only).
    log_file: str = ""
    #: HTTP access log in the combined format: a file, "-" for stdout, "" for none.
    access_log: str = ""

    # HTTP limits
    max_request_bytes: int = 1024 * 1024
    max_query_chars: int = 512

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def exposure_error(self) -> str | None:
        """Why this config must not start: other machines reach it and no admin_token is set."""
        if self.admin_token or self.host in ("localhost", "::1") or self.host.startswith("127."):
            return None
        return (
            f"host = {self.host!r} serves other machines: set admin_token too "
            "(or listen on 127.0.0.1), so admin routes are not guarded by the client's address alone"
        )

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
                    value = _as_bool(value)
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
        if not isinstance(cfg.network, str) or not 0 < len(cfg.network) <= 64:
            raise ConfigError("network must be a name of 1-64 characters")
        if not 1 <= cfg.replication <= 20:
            raise ConfigError("replication must be 1-20")
        if cfg.search_budget <= 0 or cfg.republish_interval <= 0 or cfg.shard_max_age <= 0:
            raise ConfigError("search_budget, republish_interval and shard_max_age must be > 0")
        exposed = cfg.exposure_error()
        if exposed:
            raise ConfigError(exposed)
        if cfg.advertise and not (isinstance(cfg.advertise, str) and _host_port(cfg.advertise)):
            raise ConfigError(f"advertise must be host:port (IPv6 in brackets), not {cfg.advertise!r}")
        if cfg.verify not in ("off", "origin", "fetch"):
            raise ConfigError(f"verify must be off, origin or fetch, not {cfg.verify!r}")
        try:
            for net in cfg.shard_quota_exempt:
                ipaddress.ip_network(net, strict=False)
        except ValueError as e:
            raise ConfigError(f"shard_quota_exempt: {e}") from None
        return cfg
