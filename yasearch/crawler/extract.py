"""HTML/text extraction, run in a process pool.

:func:`extract` is a top-level function taking and returning only plain,
picklable values so that the engine can ship it to a ``ProcessPoolExecutor`` and use
every core: parsing, not the network, is the CPU bottleneck of a crawl.

It never raises on bad input. Hostile documents (unclosed tags, NUL bytes, invalid
bytes, megabyte attributes) yield whatever text is salvageable.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from .urls import canonicalize

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 1_000_000
MAX_LINKS = 2000
MAX_TITLE_CHARS = 1000
MAX_HEADINGS_CHARS = 10_000
MAX_DESCRIPTION_CHARS = 2000
#: Link text kept per outlink (the first non-empty text of links to one URL).
MAX_ANCHOR_CHARS = 100

#: Elements whose content is never visible text.
INVISIBLE_TAGS = ["script", "style", "noscript", "template", "svg", "head", "iframe", "object"]
_HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")
#: Elements that start a new line of text where the page shows them. Inline
#: elements (a, b, code, span, ...) add no whitespace: ``json.<a>dumps</a>(``
#: reads ``json.dumps(`` as on screen.
BLOCK_TAGS = (
    "address", "article", "aside", "blockquote", "body", "br", "caption", "dd", "details", "dialog", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "nav", "ol", "option", "p", "pre", "section", "summary", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "ul", "img",
)
#: The page's own content, preferred over everything around it when present.
MAIN_SELECTOR = "main, article, [role=main]"
#: Without a meta description, the page's lead paragraph stands in: the first
#: paragraph of the main content with at least this many words, cut to
#: LEAD_CHARS. Search engines show and weight a page's opening the same way.
LEAD_MIN_WORDS = 5
LEAD_CHARS = 300
#: Page furniture kept out of the body text (and so out of snippets): site
#: navigation, banners, footers and sidebars. A page of furniture only keeps it.
BOILERPLATE_SELECTOR = "nav, header, footer, aside, [role=navigation], [role=banner], [role=contentinfo]"
_WS = re.compile(r"\s+")
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([a-zA-Z0-9_:.\-]{1,40})""", re.IGNORECASE
)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


@dataclass
class Extracted:
    title: str = ""
    headings: str = ""
    body: str = ""
    description: str = ""
    language: str = ""
    links: list[str] = field(default_factory=list)
    #: Outlink -> its link text (or an image's alt text), for links that have one.
    anchors: dict[str, str] = field(default_factory=dict)
    canonical: str | None = None
    noindex: bool = False
    nofollow: bool = False


def _collapse(text: str, limit: int) -> str:
    return _WS.sub(" ", text).strip()[:limit]


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        info = codecs.lookup(name.strip().strip("\"'"))
    except (LookupError, ValueError):
        return None
    # Per the HTML spec a "utf-16" meta declaration in a byte stream we could read
    # that far is a lie; and latin-1 is really windows-1252 on the web.
    if info.name in ("latin-1", "iso8859-1", "ascii"):
        return "cp1252"
    return info.name


def decode(body: bytes, charset: str | None, is_html: bool = True) -> str:
    """Bytes to text: BOM, then header charset, then <meta charset>, then guessing."""
    for bom, enc in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(enc, errors="replace")
    candidates: list[str] = []
    header = _codec(charset)
    if header:
        candidates.append(header)
    if is_html:
        m = _META_CHARSET.search(body[:4096])
        meta = _codec(m.group(1).decode("ascii", "ignore")) if m else None
        if meta and not meta.startswith("utf-16"):
            candidates.append(meta)
    if candidates:
        return body.decode(candidates[0], errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        from bs4 import UnicodeDammit

        dammit = UnicodeDammit(body, is_html=is_html)
        if dammit.unicode_markup is not None:
            return dammit.unicode_markup
    except Exception:
        log.debug("UnicodeDammit failed", exc_info=True)
    return body.decode("utf-8", errors="replace")


def _robots_flags(content: str) -> tuple[bool, bool]:
    tokens = {t.strip().lower() for t in content.split(",")}
    none = "none" in tokens
    return none or "noindex" in tokens, none or "nofollow" in tokens


def _rel_tokens(rel: str | None) -> set[str]:
    return set((rel or "").lower().split())


class _Collector:
    """Accumulates extraction results independent of the parser backend."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.base = url
        self.out = Extracted()
        self._links: dict[str, None] = {}
        self._anchors: dict[str, str] = {}

    def meta(self, name: str | None, http_equiv: str | None, content: str | None) -> None:
        if content is None:
            return
        name = (name or "").strip().lower()
        if name == "robots":
            noindex, nofollow = _robots_flags(content)
            self.out.noindex |= noindex
            self.out.nofollow |= nofollow
        elif name == "description" and not self.out.description:
            self.out.description = _collapse(content, MAX_DESCRIPTION_CHARS)
        elif name == "language" and not self.out.language:
            self.out.language = _lang(content)
        elif (http_equiv or "").strip().lower() == "content-language" and not self.out.language:
            self.out.language = _lang(content)

    def set_base(self, href: str | None) -> None:
        if href:
            b = canonicalize(href, base=self.url)
            if b:
                self.base = b

    def link_tag(self, rel: str | None, href: str | None) -> None:
        if href and "canonical" in _rel_tokens(rel) and self.out.canonical is None:
            self.out.canonical = canonicalize(href, base=self.base)

    def anchor(self, rel: str | None, href: str | None, text: str = "") -> None:
        if not href or len(self._links) >= MAX_LINKS or "nofollow" in _rel_tokens(rel):
            return
        u = canonicalize(href, base=self.base)
        if u:
            self._links.setdefault(u, None)
            text = _collapse(text, MAX_ANCHOR_CHARS) if text else ""
            if text and u not in self._anchors:
                self._anchors[u] = text

    def finish(self) -> Extracted:
        # A meta nofollow means none of this page's links may be followed; leaving
        # them out keeps Page.links "the links one may follow".
        self.out.links = [] if self.out.nofollow else list(self._links)
        self.out.anchors = {} if self.out.nofollow else self._anchors
        return self.out


def _lang(value: str) -> str:
    v = value.strip().split(",")[0].strip().lower()
    return v[:35]


def _extract_lexbor(text: str, url: str) -> Extracted:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(text)
    c = _Collector(url)
    root = tree.root
    if root is not None and root.tag == "html":
        lang = root.attributes.get("lang") or root.attributes.get("xml:lang")
        if lang:
            c.out.language = _lang(lang)
    title = tree.css_first("title")
    if title is not None:
        c.out.title = _collapse(title.text(deep=True), MAX_TITLE_CHARS)
    base = tree.css_first("base[href]")
    if base is not None:
        c.set_base(base.attributes.get("href"))
    for m in tree.css("meta"):
        a = m.attributes
        c.meta(a.get("name"), a.get("http-equiv"), a.get("content"))
    for link in tree.css("link[href]"):
        a = link.attributes
        c.link_tag(a.get("rel"), a.get("href"))
    for el in tree.css("a[href], area[href]"):
        a = el.attributes
        c.anchor(a.get("rel"), a.get("href"), _link_text_lexbor(el))
    tree.strip_tags(INVISIBLE_TAGS)
    for el in tree.css(",".join(BLOCK_TAGS)):
        el.insert_before("\n")
        el.insert_after("\n")
    c.out.headings = _collapse(
        " \n ".join(h.text(separator="") for h in tree.css(",".join(_HEADING_TAGS))),
        MAX_HEADINGS_CHARS,
    )
    body = tree.body
    node = body if body is not None else tree.root
    if not c.out.description and node is not None:
        c.out.description = _lead((m.text(separator="") for m in tree.css(MAIN_SELECTOR + ", p")))
    c.out.body = _collapse(_content_text(tree, node), MAX_BODY_CHARS)
    return c.finish()


def _link_text_lexbor(el: Any) -> str:
    """What a link says: its text, else the alt text of its image (or an area's)."""
    if el.tag == "area":
        return el.attributes.get("alt") or ""
    text = el.text(deep=True, separator="")
    if text.strip():
        return text
    img = el.css_first("img[alt]")
    return (img.attributes.get("alt") or "") if img is not None else ""


def _lead(paragraphs: Any) -> str:
    """The first paragraph text with at least LEAD_MIN_WORDS words, at most LEAD_CHARS (whole words)."""
    for text in paragraphs:
        text = _collapse(text, MAX_DESCRIPTION_CHARS)
        if len(text.split()) >= LEAD_MIN_WORDS:
            if len(text) > LEAD_CHARS:
                text = text[:LEAD_CHARS].rsplit(" ", 1)[0]
            return text
    return ""


def _content_text(tree: Any, node: Any) -> str:
    """The page's text as shown: its main content if marked, without furniture."""
    if node is None:
        return ""
    mains = tree.css(MAIN_SELECTOR)
    if mains:
        text = "\n".join(m.text(separator="") for m in mains if not any(_inside(m, o) for o in mains if o is not m))
        if text.strip():
            return text
    whole = node.text(separator="")
    for el in node.css(BOILERPLATE_SELECTOR):
        el.decompose()
    rest = node.text(separator="")
    return rest if rest.strip() else whole


def _inside(node: Any, other: Any) -> bool:
    p = node.parent
    while p is not None:
        if p.mem_id == other.mem_id:
            return True
        p = p.parent
    return False


def _extract_soup(text: str, url: str) -> Extracted:
    """Slow but forgiving fallback for documents lexbor chokes on."""
    from bs4 import BeautifulSoup

    try:
        soup = BeautifulSoup(text, "lxml")
    except Exception:
        soup = BeautifulSoup(text, "html.parser")
    c = _Collector(url)

    def attr(el: Any, name: str) -> str | None:
        v = el.get(name)
        if isinstance(v, list):
            return " ".join(v)
        return v

    html = soup.find("html")
    if html is not None and attr(html, "lang"):
        c.out.language = _lang(attr(html, "lang") or "")
    if soup.title is not None:
        c.out.title = _collapse(soup.title.get_text(" "), MAX_TITLE_CHARS)
    base = soup.find("base", href=True)
    if base is not None:
        c.set_base(attr(base, "href"))
    for m in soup.find_all("meta"):
        c.meta(attr(m, "name"), attr(m, "http-equiv"), attr(m, "content"))
    for link in soup.find_all("link", href=True):
        c.link_tag(attr(link, "rel"), attr(link, "href"))
    for el in soup.find_all(["a", "area"], href=True):
        img = el.find("img", alt=True) if el.name == "a" else None
        text = el.get_text("") if el.name == "a" else (attr(el, "alt") or "")
        c.anchor(attr(el, "rel"), attr(el, "href"), text if text.strip() else (attr(img, "alt") or "") if img else "")
    for el in soup.find_all(INVISIBLE_TAGS):
        el.decompose()
    for el in soup.find_all(list(BLOCK_TAGS)):
        el.insert_before("\n")
        el.insert_after("\n")
    c.out.headings = _collapse(
        " \n ".join(h.get_text("") for h in soup.find_all(list(_HEADING_TAGS))), MAX_HEADINGS_CHARS
    )
    node = soup.body or soup
    mains = [m for m in soup.select(MAIN_SELECTOR) if not any(p in m.parents for p in soup.select(MAIN_SELECTOR))]
    text = "\n".join(m.get_text("") for m in mains)
    if not text.strip():
        text = node.get_text("")
        for el in node.select(BOILERPLATE_SELECTOR):
            el.decompose()
        rest = node.get_text("")
        text = rest if rest.strip() else text
    c.out.body = _collapse(text, MAX_BODY_CHARS)
    return c.finish()


def _extract_text(text: str, url: str) -> Extracted:
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return Extracted(
        title=_collapse(first, 200) or url,
        body=_collapse(text, MAX_BODY_CHARS),
    )


def extract(body: bytes, url: str, content_type: str, charset: str | None) -> Extracted:
    """Parse a fetched page into searchable fields; never raises."""
    ctype = (content_type or "text/html").split(";")[0].strip().lower()
    is_html = ctype != "text/plain"
    try:
        text = decode(body, charset, is_html)
    except Exception:
        log.debug("decode failed for %s", url, exc_info=True)
        text = body.decode("utf-8", errors="replace")
    # NULs are invalid in HTML and poison C parsers and databases downstream.
    text = text.replace("\x00", "")
    if not is_html:
        return _extract_text(text, url)
    try:
        return _extract_lexbor(text, url)
    except Exception:
        log.debug("lexbor failed on %s, falling back to bs4", url, exc_info=True)
    try:
        return _extract_soup(text, url)
    except Exception:
        log.debug("bs4 failed on %s", url, exc_info=True)
    # Last resort: strip tags with a regex so the page is at least searchable.
    stripped = re.sub(r"<[^>]*>", " ", text)
    return Extracted(title=url, body=_collapse(stripped, MAX_BODY_CHARS))
