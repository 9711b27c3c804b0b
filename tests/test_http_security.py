"""HTTP attacks on a peer next to the user's browser: DNS rebinding, proxies posing as
loopback, a public bind without a token, a stolen admin cookie, deep JSON and huge numbers.

Each test fails with its defence switched off (docs/security.md, "HTTP").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from peerutil import ROOT, assert_json_error, linked_pages, peer_config
from yasearch.auth import ADMIN_COOKIE, SESSION_SECONDS, session_cookie, valid_session
from yasearch.config import Config, ConfigError
from yasearch.server import PeerServer


def rebound(peer, name: str = "evil.example") -> dict[str, str]:
    """What a page at http://name:P sends once its name resolves to 127.0.0.1."""
    return {
        "Host": f"{name}:{peer.port}",
        "Origin": f"http://{name}:{peer.port}",
        "Sec-Fetch-Site": "same-origin",
    }


# -- DNS rebinding: the Host allowlist ---------------------------------------------------


async def test_rebinding_is_refused_on_admin_routes(peer, http, crawl_site, static_site):
    site = await crawl_site(peer, linked_pages(3))
    docs = peer.index.doc_count()
    host = site.removeprefix("http://")
    seed = (await static_site(linked_pages(1))).url
    async with http.post(peer.url + "/api/v1/crawl", json={"urls": [seed]}, headers=rebound(peer)) as r:
        await assert_json_error(r, 421, "unknown_host")
    async with http.delete(f"{peer.url}/api/v1/index/hosts/{host}", headers=rebound(peer)) as r:
        await assert_json_error(r, 421, "unknown_host")
    async with http.post(peer.url + "/crawl", data={"urls": seed}, headers=rebound(peer), allow_redirects=False) as r:
        assert r.status == 421
    assert len(peer.list_jobs()) == 1  # only the crawl of the site above
    assert peer.index.doc_count() == docs == 3


async def test_rebinding_is_refused_on_public_routes(peer, http):
    for path in ("/api/v1/status", "/api/v1/peers", "/p2p/v1/info", "/api/v1/openapi.json"):
        async with http.get(peer.url + path, headers=rebound(peer)) as r:
            await assert_json_error(r, 421, "unknown_host")
    async with http.get(peer.url + "/", headers=rebound(peer)) as r:  # pages too (plain text)
        assert r.status == 421 and "evil.example" in await r.text()


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "localhost", "[::1]:{port}",
                                  "LOCALHOST.:{port}", "192.0.2.7:{port}", "[2001:db8::1]"])
async def test_loopback_names_and_addresses_are_answered(peer, http, host):
    async with http.get(peer.url + "/api/v1/status", headers={"Host": host.format(port=peer.port)}) as r:
        assert r.status == 200


async def test_configured_public_names_are_answered(make_peer, http):
    p = await make_peer(public_names=["search.example.org", "alt.example.org:8443"])
    for host, status in [("search.example.org", 200), ("Search.Example.Org:443", 200), ("alt.example.org:8443", 200),
                         ("alt.example.org:80", 421), ("example.org", 421), ("search.example.org.evil.example", 421)]:
        async with http.get(p.url + "/api/v1/status", headers={"Host": host}) as r:
            assert r.status == status, host


# -- proxies: loopback is not trusted when a request was relayed ---------------------------


@pytest.mark.parametrize("header", [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9;proto=https"},
                                    {"X-Real-IP": "203.0.113.9"}])
async def test_proxy_headers_drop_loopback_trust(peer, http, static_site, header):
    seed = (await static_site(linked_pages(1))).url
    async with http.post(peer.url + "/api/v1/crawl", json={"urls": [seed]}, headers=header) as r:
        err = await assert_json_error(r, 403, "forbidden")
        assert "proxy" in err["message"]
    async with http.get(peer.url + "/api/v1/crawl", headers=header) as r:
        await assert_json_error(r, 403, "forbidden")
    async with http.get(peer.url + "/crawl", headers=header) as r:
        assert r.status == 403
    assert peer.list_jobs() == []
    async with http.get(peer.url + "/api/v1/crawl") as r:  # the same client, not relayed: admin
        assert r.status == 200


# -- a public bind needs a token -------------------------------------------------------


def test_a_public_bind_without_a_token_refuses_to_start_with_one_line(tmp_path):
    cmd = [sys.executable, "-m", "yasearch", "peer", "--host", "0.0.0.0", "--port", "0",
           "--data-dir", str(tmp_path / "d"), "--no-seeds"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "admin_token" in lines[0] and "0.0.0.0" in lines[0], done.stderr
    assert not (tmp_path / "d").exists()  # nothing was started


def test_the_config_refuses_public_binds_without_a_token(tmp_path):
    for host in ("0.0.0.0", "::", "", "192.0.2.7", "peer.example.org"):
        with pytest.raises(ConfigError, match="admin_token"):
            Config.from_dict({"host": host})
    toml = tmp_path / "peer.toml"
    toml.write_text('host = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match="admin_token"):
        Config.load(toml)
    assert Config.load(toml, admin_token="s3cret").host == "0.0.0.0"
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        assert Config.from_dict({"host": host}).host == host


async def test_the_server_refuses_a_public_bind_without_a_token(tmp_path):
    server = PeerServer(peer_config(tmp_path / "d", host="0.0.0.0"))
    with pytest.raises(ConfigError, match="admin_token"):
        await server.start()
    await server.stop()


# -- the admin cookie ------------------------------------------------------------------


async def login(http, p, **headers: str):
    async with http.post(p.url + "/crawl/login", data={"token": "s3cret"}, headers=headers, allow_redirects=False) as r:
        assert r.status == 303
        return r.cookies[ADMIN_COOKIE]


async def test_the_admin_cookie_is_a_session_not_the_token(make_peer, http):
    import aiohttp

    p = await make_peer(admin_token="s3cret")
    cookie = await login(http, p)
    assert "s3cret" not in cookie.value and valid_session("s3cret", cookie.value)
    assert int(cookie["max-age"]) == SESSION_SECONDS
    async with http.get(p.url + "/api/v1/crawl") as r:  # the session works
        assert r.status == 200
    expires, nonce, mac = cookie.value.split(".")
    forged = [
        "s3cret",  # the token itself is not a session
        f"{int(expires) + 10**6}.{nonce}.{mac}",  # a longer life
        f"{expires}.{nonce}.{'0' * len(mac)}",
        session_cookie("another-token"),
        session_cookie("s3cret", now=time.time() - SESSION_SECONDS - 1),  # expired
    ]
    for value in forged:
        async with aiohttp.ClientSession(cookies={ADMIN_COOKIE: value}) as other:
            async with other.get(p.url + "/api/v1/crawl") as r:
                await assert_json_error(r, 403, "forbidden")


async def test_the_admin_cookie_is_secure_over_https(make_peer, http):
    p = await make_peer(admin_token="s3cret")
    assert not (await login(http, p))["secure"]  # plain HTTP: a Secure cookie would not come back
    assert (await login(http, p, **{"X-Forwarded-Proto": "https"}))["secure"]  # the loopback proxy says HTTPS
    untrusting = await make_peer(admin_token="s3cret", trusted_proxies=[])
    assert not (await login(http, untrusting, **{"X-Forwarded-Proto": "https"}))["secure"]


# -- deep JSON and huge numbers --------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 10_000 + "]" * 10_000,
        '{"urls": ' + "[" * 10_000 + "]" * 10_000 + "}",
        '{"urls": ["http://127.0.0.1:1/"], "max_pages": 1' + "0" * 400 + "}",
        '{"urls": ["http://127.0.0.1:1/"], "max_pages": 1e400}',
        '{"urls": ["http://127.0.0.1:1/"], "depth": -1' + "0" * 400 + "}",
        '{"urls": ["http://127.0.0.1:1/"], "delay": 1' + "0" * 5000 + "}",
        '{"urls": ["http://127.0.0.1:1/"], "delay": NaN}',
        '{"urls": ["http://127.0.0.1:1/"], "delay": Infinity}',
    ],
    ids=["deep", "deep-urls", "max_pages-10**400", "max_pages-1e400", "depth-minus-10**400", "delay-5000-digits",
         "NaN", "Infinity"],
)
async def test_deep_json_and_huge_numbers_are_400(peer, http, body):
    async with http.post(peer.url + "/api/v1/crawl", data=body, headers={"Content-Type": "application/json"}) as r:
        await assert_json_error(r, 400)
    assert peer.list_jobs() == []


async def test_deep_json_and_huge_numbers_are_400_on_p2p_and_query_strings(peer, http):
    for path in ("/p2p/v1/postings", "/p2p/v1/lookup", "/p2p/v1/withdraw"):
        async with http.post(peer.url + path, data="[" * 10_000 + "]" * 10_000) as r:
            await assert_json_error(r, 400)
        async with http.post(peer.url + path, data=json.dumps({"v": 10**400})) as r:
            assert 400 <= r.status < 500
    for params in ({"q": "a", "limit": str(10**400)}, {"q": "a", "offset": "1e400"}):
        async with http.get(peer.url + "/api/v1/search", params=params) as r:
            await assert_json_error(r, 400, "bad_parameter")
