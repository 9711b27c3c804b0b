"""The crawler's outbound policy: links and redirects written by strangers must not
reach loopback, private or link-local addresses (request forgery), a fetch has a
total deadline, and credentials in URLs are never sent or kept."""

from __future__ import annotations

import pytest

from yasearch.crawler.fetcher import fetch
from yasearch.crawler.outbound import GuardedResolver, OutboundPolicy, guarded_session
from yasearch.crawler.types import CrawlerSettings, CrawlSpec
from yasearch.crawler.urls import canonicalize

STRICT = OutboundPolicy()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.3.4.5", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "fc00::1", "fe80::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::", "not-an-address",
    ],
)
def test_non_public_addresses_are_refused(address):
    assert not STRICT.address_allowed(address)
    assert OutboundPolicy(allow_private=True).address_allowed(address) is (address != "not-an-address")


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert STRICT.address_allowed(address)


def test_named_networks_can_be_allowed_alone():
    policy = OutboundPolicy(allow_networks=("10.20.0.0/16",))
    assert policy.address_allowed("10.20.3.4")
    assert not policy.address_allowed("10.21.3.4")
    assert not policy.address_allowed("127.0.0.1")


def test_ip_literal_urls_are_checked_names_are_left_to_the_resolver():
    assert not STRICT.url_allowed("http://127.0.0.1:8090/crawl")
    assert not STRICT.url_allowed("http://[::1]:8090/")
    assert not STRICT.url_allowed("http://169.254.169.254/latest/meta-data/")
    assert STRICT.url_allowed("http://example.org/")


async def test_a_name_that_resolves_to_loopback_is_refused_after_resolution():
    resolver = GuardedResolver(STRICT)
    try:
        with pytest.raises(OSError, match="outbound policy"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_fetching_loopback_is_blocked_and_sends_nothing(make_site):
    site = await make_site()
    site.html("/crawl", title="admin")
    settings = CrawlerSettings(outbound=STRICT)
    async with guarded_session(STRICT) as session:
        by_ip = await fetch(session, site.url("/crawl"), settings)
        by_name = await fetch(session, f"http://localhost:{site.port}/crawl", settings)
    assert (by_ip.reason, by_name.reason) == ("blocked", "blocked")
    assert site.paths() == []  # not one request reached the server


async def test_a_redirect_to_loopback_is_blocked_at_the_hop(make_site):
    target = await make_site()
    target.html("/crawl", title="admin")
    outside = await make_site(host="127.0.0.2")  # stands for an allowed outside site
    outside.redirect("/go", target.url("/crawl"))
    policy = OutboundPolicy(allow_networks=("127.0.0.2/32",))
    async with guarded_session(policy) as session:
        result = await fetch(session, outside.url("/go"), CrawlerSettings(outbound=policy))
    assert result.reason == "blocked"
    assert result.final_url == target.url("/crawl")
    assert outside.paths() == ["/go"] and target.paths() == []


async def test_a_peer_does_not_crawl_its_own_admin_pages(make_peer):
    """The attack: a page (or a seed) links to the peer's own loopback admin pages;
    crawled, they would be indexed and published for everyone to search."""
    peer = await make_peer(allow_private_networks=False)
    job = await peer.start_crawl(CrawlSpec(urls=[f"{peer.url}/crawl", f"http://localhost:{peer.port}/index"], depth=1))
    await peer.jobs.wait(job.id)
    assert job.progress.failures == {"blocked": 2}
    assert peer.index.doc_count() == 0


async def test_a_slow_drip_server_cannot_hold_a_fetch_past_its_deadline(make_site):
    site = await make_site()
    site.drip("/drip", interval=0.05)  # each read is fast; the whole never ends
    allow = OutboundPolicy(allow_private=True)
    settings = CrawlerSettings(outbound=allow, read_timeout=5.0, fetch_deadline=0.5)
    async with guarded_session(allow) as session:
        result = await fetch(session, site.url("/drip"), settings)
    assert result.reason == "timeout"


def test_credentials_are_stripped_from_urls():
    assert canonicalize("http://user:secret@example.org/a") == "http://example.org/a"
    assert canonicalize("https://token@example.org/") == "https://example.org/"
