"""An emulated internet: network namespaces, one bridge, one NAT router, WAN in user space.

Used by the namespace tests (``tests/test_internet.py`` through ``tests/netns.py``) and
by ``python -m bench wan``; it lives in ``bench/`` because both use it and neither is
the product. Needs root and ``ip netns`` (:func:`unavailable` says why not); NAT also
needs ``nft`` (Debian's nftables; ``.ci/run`` installs it).

Layout of one :class:`Lab` (``T`` = the owning process id and the lab's number in
it, ``S`` = a free /24):

- namespace ``ysl-T-net`` holds the bridge ``br0``: the "internet";
- this process (the controller: tests, the benchmark) has one veth leg ``yslT`` on
  it, address ``10.77.S.1``, and talks to peers directly;
- each public host is a namespace ``ysl-T-hN`` with ``eth0`` on the bridge at
  ``10.77.S.(N+10)``;
- a NAT'd host sits behind a router namespace ``ysl-T-rN``: the router's ``eth0``
  is on the bridge (``10.77.S.(200+N)``), its ``eth1`` leads to the host's own
  private subnet ``10.78.S.0/24``, nftables masquerades what leaves through
  ``eth0`` and forwards nothing inwards but replies (and the controller, so tests
  can read the NAT'd peer's status). Public hosts have no route to ``10.78.S.0/24``.

Only addresses inside these namespaces are ever dialled. The kernel here has no
netem, so WAN delay, jitter and loss are put into the peer processes by
:mod:`bench.wanem` (``wan=`` of :meth:`Lab.spawn`). Everything is torn down by
:meth:`Lab.close` (killing the processes it started, by pid, then deleting the
namespaces, which deletes their links); namespaces of labs whose process died
(an aborted run) are deleted by the next :class:`Lab`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from yasearch.procpool import pid_alive

REPO = Path(__file__).resolve().parent.parent
SHIM = REPO / "bench" / "wanshim"
PREFIX = "ysl-"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def unavailable(nat: bool = False) -> str | None:
    """Why namespaces cannot be used here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, bridge)"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip`"
    if nat and shutil.which("nft") is None:
        return "needs nftables (`apt-get install nftables`; .ci/run installs it)"
    probe = f"{PREFIX}probe{os.getpid()}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def clean_stale() -> None:
    """Delete namespaces and the root-side link of labs whose process is gone."""
    out = _ip("netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        owner = name[len(PREFIX):].split("-")[0].split("x")[0]
        if owner.isdigit() and not pid_alive(int(owner)):
            _ip("netns", "del", name, check=False)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        dev = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        owner = dev[3:].split("x")[0]
        if dev.startswith("ysl") and owner.isdigit() and not pid_alive(int(owner)):
            _ip("link", "del", dev, check=False)


def _free_subnet() -> int:
    """A third octet S with neither 10.77.S.0/24 nor 10.78.S.0/24 routed here yet."""
    used = _ip("-o", "route", "show", check=False).stdout
    for s in [os.getpid() % 250 + n for n in range(250)]:
        s %= 250
        if f"10.77.{s}." not in used and f"10.78.{s}." not in used:
            return s
    raise RuntimeError("no free 10.77.x.0/24 subnet")


@dataclass
class Host:
    """One machine of the lab: its namespace and the address it binds to."""

    name: str
    ns: str
    ip: str
    nat: bool = False
    router_ip: str = ""  # the NAT router's public address: what others see a NAT'd host as
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


class Lab:
    """One emulated internet (see the module doc). Use as a context manager, or call
    :meth:`close` in a ``finally``."""

    _made = 0  # labs made by this process: part of the names, so two at once do not collide

    def __init__(self) -> None:
        clean_stale()
        Lab._made += 1
        self.owner = f"{os.getpid()}x{Lab._made}"
        self.s = _free_subnet()
        self.net = f"{PREFIX}{self.owner}-net"
        self.link = f"ysl{self.owner}"
        self.controller_ip = f"10.77.{self.s}.1"
        self.hosts: list[Host] = []
        self._namespaces: list[str] = []
        self._n = 0
        self._closed = False
        try:
            self._add_ns(self.net)
            self._in(self.net, "ip", "link", "add", "br0", "type", "bridge")
            self._in(self.net, "ip", "link", "set", "br0", "up")
            _ip("link", "add", self.link, "type", "veth", "peer", "name", "ctl", "netns", self.net)
            _ip("addr", "add", f"{self.controller_ip}/24", "dev", self.link)
            _ip("link", "set", self.link, "up")
            self._in(self.net, "ip", "link", "set", "ctl", "master", "br0", "up")
        except BaseException:
            self.close()
            raise

    # -- plumbing -----------------------------------------------------------------

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._namespaces.append(ns)
        self._in(ns, "ip", "link", "set", "lo", "up")

    def _in(self, ns: str, *cmd: str, stdin: str | None = None) -> None:
        r = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, input=stdin)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} in {ns} failed: {r.stderr.strip()}")

    def _leg(self, ns: str, dev: str, address: str) -> None:
        """A veth from ``ns`` (named ``dev``) into the bridge, with ``address``."""
        self._n += 1
        port = f"p{self._n}"
        _ip("-n", ns, "link", "add", dev, "type", "veth", "peer", "name", port, "netns", self.net)
        self._in(self.net, "ip", "link", "set", port, "master", "br0", "up")
        self._in(ns, "ip", "addr", "add", f"{address}/24", "dev", dev)
        self._in(ns, "ip", "link", "set", dev, "up")

    # -- hosts --------------------------------------------------------------------

    def add_host(self, name: str) -> Host:
        """A host on the bridge with an address of its own."""
        i = len(self.hosts)
        ns = f"{PREFIX}{self.owner}-h{i}"
        self._add_ns(ns)
        ip = f"10.77.{self.s}.{10 + i}"
        self._leg(ns, "eth0", ip)
        host = Host(name, ns, ip)
        self.hosts.append(host)
        return host

    def add_nat_host(self, name: str) -> Host:
        """A host behind a NAT router (nftables masquerade): it can dial out, nobody
        on the bridge can dial in."""
        i = len(self.hosts)
        router, ns = f"{PREFIX}{self.owner}-r{i}", f"{PREFIX}{self.owner}-h{i}"
        self._add_ns(router)
        self._add_ns(ns)
        public = f"10.77.{self.s}.{200 + i}"
        inside, private = f"10.78.{self.s}.1", f"10.78.{self.s}.2"
        self._leg(router, "eth0", public)
        _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1", "netns", router)
        self._in(router, "ip", "addr", "add", f"{inside}/24", "dev", "eth1")
        self._in(router, "ip", "link", "set", "eth1", "up")
        self._in(ns, "ip", "addr", "add", f"{private}/24", "dev", "eth0")
        self._in(ns, "ip", "link", "set", "eth0", "up")
        self._in(ns, "ip", "route", "add", "default", "via", inside)
        self._in(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        rules = f"""
table ip lab {{
    chain postrouting {{ type nat hook postrouting priority srcnat; oifname "eth0" masquerade; }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        iifname "eth1" oifname "eth0" accept
        ct state established,related accept
        ip saddr {self.controller_ip} accept
    }}
}}
"""
        self._in(router, "nft", "-f", "-", stdin=rules)
        # the controller (only) may reach the private subnet, to read the NAT'd peer's status
        _ip("route", "add", f"10.78.{self.s}.0/24", "via", public, "dev", self.link)
        host = Host(name, ns, private, nat=True, router_ip=public)
        self.hosts.append(host)
        return host

    # -- processes -------------------------------------------------------------------

    def spawn(
        self, host: Host, cmd: list[str], *, log: Path, wan: str = "", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Run ``cmd`` inside ``host``'s namespace (``ip netns exec`` becomes the command,
        so the pid is the command's). ``wan``: ``"DELAY_MS,JITTER_MS,LOSS"`` for :mod:`bench.wanem`."""
        path = [str(REPO)] + ([str(SHIM)] if wan else [])
        full_env = dict(os.environ, PYTHONPATH=os.pathsep.join(reversed(path)), **(env or {}))
        full_env.pop("YASEARCH_WANEM", None)
        if wan:
            full_env["YASEARCH_WANEM"] = wan
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", host.ns, *cmd], stdout=out, stderr=subprocess.STDOUT,
                env=full_env, cwd=REPO, start_new_session=True,
            )
        host.procs.append(proc)
        return proc

    def spawn_python(self, host: Host, args: list[str], **kw: object) -> subprocess.Popen[bytes]:
        return self.spawn(host, [sys.executable, *args], **kw)  # type: ignore[arg-type]

    # -- teardown ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop what we started (SIGTERM, then SIGKILL after 10 s), delete our namespaces."""
        if self._closed:
            return
        self._closed = True
        procs = [p for h in self.hosts for p in h.procs]
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        _ip("route", "del", f"10.78.{self.s}.0/24", check=False)
        _ip("link", "del", self.link, check=False)
        for ns in reversed(self._namespaces):
            _ip("netns", "del", ns, check=False)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- yasearch peers in the lab ---------------------------------------------------------

#: Every peer listens on this port in its own namespace (TCP for HTTP, UDP for the DHT).
PEER_PORT = 8090
ADMIN_TOKEN = "lab-admin-token"


class LabPeer:
    """``python -m yasearch peer`` on a lab host, bound to the host's address.

    Config: the host's address, :data:`PEER_PORT`, an admin token (a peer bound to a
    non-loopback address must have one), private networks allowed (every lab address
    is private), network ``lab``, no crawl delay; ``config`` adds keys."""

    def __init__(
        self, lab: Lab, host: Host, root: Path, *, bootstrap: list["LabPeer"] = (),  # type: ignore[assignment]
        wan: str = "", config: dict[str, object] | None = None,
    ) -> None:
        self.lab, self.host, self.wan = lab, host, wan
        self.name = host.name
        self.url = f"http://{host.ip}:{PEER_PORT}"
        self.data_dir = root / self.name
        self.log = root / f"{self.name}.log"
        self.bootstrap = [f"{p.host.ip}:{PEER_PORT}" for p in bootstrap]
        self.config = {
            "host": host.ip, "port": PEER_PORT, "admin_token": ADMIN_TOKEN, "allow_private_networks": True,
            "network": "lab", "crawl_delay": 0.0, "commit_interval": 0.2, **(config or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.peer_id = ""

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir.parent / f"{self.name}.toml"
        conf.write_text("".join(f"{k} = {_toml(v)}\n" for k, v in self.config.items()))
        cmd = ["-m", "yasearch", "-v", "peer", "--data-dir", str(self.data_dir), "--no-seeds",
               "--name", self.name, "--config", str(conf)]
        for b in self.bootstrap:
            cmd += ["--bootstrap", b]
        self.proc = self.lab.spawn_python(self.host, cmd, log=self.log, wan=self.wan)

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
