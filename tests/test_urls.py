"""URL canonicalisation and URL rules."""

from __future__ import annotations

import pytest

from yasearch.crawler.urls import UrlFilter, canonicalize, host_of


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a",
        "http://example.com/a#x",
        "http://example.com/a?",
        "http://example.com/A/../a",
        "HTTP://EXAMPLE.com:80/a",
        "http://example.com/./a",
    ],
)
def test_variants_collapse(url: str) -> None:
    assert canonicalize(url) == "http://example.com/a"


def test_query_sorted_and_empty_path() -> None:
    assert canonicalize("http://h.org?b=2&a=1") == "http://h.org/?a=1&b=2"
    assert canonicalize("https://h.org:443") == "https://h.org/"
    assert canonicalize("https://h.org:8443/x") == "https://h.org:8443/x"


def test_relative_resolution() -> None:
    base = "http://h.org/dir/page.html"
    assert canonicalize("other.html", base) == "http://h.org/dir/other.html"
    assert canonicalize("../up", base) == "http://h.org/up"
    assert canonicalize("//cdn.org/x", base) == "http://cdn.org/x"
    assert canonicalize("?q=1", base) == "http://h.org/dir/page.html?q=1"
    assert canonicalize("#frag", base) == "http://h.org/dir/page.html"
    assert canonicalize(" \n/sp ace\t", base) == "http://h.org/sp%20ace"


@pytest.mark.parametrize(
    "url", ["mailto:a@b.org", "javascript:void(0)", "ftp://h.org/f", "data:text/html,x", "", "http://", "/rel"]
)
def test_rejects_non_http(url: str) -> None:
    assert canonicalize(url) is None


def test_idna_and_percent_encoding() -> None:
    assert canonicalize("http://Bücher.de/ä") == "http://xn--bcher-kva.de/%C3%A4"


def test_too_long_rejected() -> None:
    assert canonicalize("http://h.org/" + "a" * 5000) is None


def test_host_of() -> None:
    assert host_of("http://H.org:80/x") == "h.org"
    assert host_of("http://127.0.0.1:8080/x") == "127.0.0.1:8080"
    assert host_of("https://h.org:443/") == "h.org"


def test_filter_allow_deny_same_site() -> None:
    f = UrlFilter(allow=[r"/docs/"], deny=[r"\.pdf$", "private"], same_site_hosts={"H.org"})
    assert f.accepts("http://h.org/docs/a")
    assert not f.accepts("http://h.org/blog/a")  # not allowed
    assert not f.accepts("http://h.org/docs/a.pdf")  # denied
    assert not f.accepts("http://h.org/docs/private")  # deny beats allow
    assert not f.accepts("http://other.org/docs/a")  # other site
    assert UrlFilter([], [], None).accepts("http://anything.org/")


def test_filter_bad_regex() -> None:
    with pytest.raises(ValueError, match="invalid deny regex"):
        UrlFilter(allow=[], deny=["(unclosed"])
