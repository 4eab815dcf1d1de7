"""The hostile web: payloads of the fault suite, and a whole site of hostile feeds beside healthy
ones for end-to-end runs (the CLI test, `benchmarks/hostile_run.py`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from tests.faults.harness import (
    RSS_CT,
    HealthyFeed,
    Item,
    add_healthy_feed,
    rss,
    static,
)
from tests.loopback import (
    LoopbackServer,
    endless_chunks,
    gzip_bomb,
    http_date,
    never_answers,
    short_body,
    trickle_body,
)

LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form action=/login>"
    b"<input name=user><input type=password name=pw></form></body></html>"
)
# Each of lol1..lol9 is ten of the one before: &lol9; would be 10^9 "lol"s.
LAUGHS = (
    '<!DOCTYPE rss [<!ENTITY lol "lol">'
    + "".join('<!ENTITY lol{} "{}">'.format(i, f"&lol{i - 1 or ''};" * 10) for i in range(1, 10))
    + "]>"
)
CONTROL = "\x00\x01\x07\x0b\x1b\x7f"
# ~4 MB of paragraphs: trafilatura needs well over ten seconds for it.
ENORMOUS = (
    "<html><body><article>"
    + "".join(f"<p>Paragraph {i} on stablecoin rules and custody.</p>" for i in range(80_000))
    + "</article></body></html>"
).encode()
# ~7 MB of table rows: trafilatura would take ~900 MiB for it.
HUGE_TABLE = (
    "<html><body><table>"
    + "".join(f"<tr><td>{i}</td><td>cell text {i}</td></tr>" for i in range(150_000))
    + "</table></body></html>"
).encode()
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(2000)


def with_doctype(items: Sequence[Item], doctype: str, title_suffix: str = "") -> bytes:
    """RSS with `doctype` after its declaration and raw markup (an entity reference) after
    every title."""
    text = rss(items).replace("?>", "?>" + doctype, 1)
    return re.sub(r"(<title>[^<]*)(</title>)", rf"\1{title_suffix}\2", text).encode()


def cut_mid_item(items: Sequence[Item], server: LoopbackServer) -> bytes:
    """RSS of `items` and one more, cut off in the middle of that one's title."""
    text = rss([*items, Item("The third article, cut off", server.url("/cut/missing.html"))])
    return text[: text.index("The third article") + 9].encode()


def with_control_characters(items: Sequence[Item]) -> bytes:
    """RSS whose titles are strewn with control characters and NULs."""
    dirty = [
        Item(
            f"{CONTROL}{(i.title or '')[:10]}{CONTROL}{(i.title or '')[10:]}\x00",
            i.link,
            guid=i.guid,
        )
        for i in items
    ]
    return rss(dirty).encode()


@dataclass
class HostileWeb:
    healthy: list[HealthyFeed] = field(default_factory=list)
    # Hostile feed URL → the error kinds its feed gets and the status it must be left in.
    hostile: dict[str, tuple[set[str], str]] = field(default_factory=dict)


def hostile_web(server: LoopbackServer, *, slow: bool = False) -> HostileWeb:
    """A dozen and more hostile feeds and three healthy ones under `/web/`. With `slow`, also
    the cases that take a default run its full deadlines (trickle, silence, a page that
    extraction never finishes)."""
    web = HostileWeb()
    routes = server.routes

    def hostile(name: str, kinds: set[str], status: str, handler: object = None) -> str:
        path = f"/web/{name}.xml"
        if handler is not None:
            routes[path] = handler  # type: ignore[assignment]
        web.hostile[server.url(path)] = (kinds, status)
        return path

    def feed_of(name: str, kinds: set[str], status: str, extra: Sequence[Item] = ()) -> HealthyFeed:
        feed = add_healthy_feed(server, f"web-{name}", extra=extra)
        web.hostile[feed.url] = (kinds, status)
        return feed

    web.healthy = [
        add_healthy_feed(server, "web-en"),
        add_healthy_feed(server, "web-zh", "zh"),
        add_healthy_feed(server, "web-zh-2", "zh"),
    ]
    bomb = gzip_bomb()
    hostile("bomb", {"too_large"}, "failing", static(bomb, RSS_CT, **{"Content-Encoding": "gzip"}))
    hostile("endless", {"too_large"}, "failing", endless_chunks)
    hostile("short", {"connection_error"}, "failing", short_body)
    hostile(
        "loop",
        {"too_many_redirects"},
        "failing",
        lambda r: r.reply(302, headers={"Location": "/web/loop.xml"}),
    )
    hostile(
        "429",
        {"http_429"},
        "failing",
        static(b"", "text/plain", 429, **{"Retry-After": http_date(timedelta(hours=1))}),
    )
    hostile("410", {"http_410"}, "gone", static(b"gone", "text/html", 410))
    hostile("login", {"not_a_feed"}, "failing", static(LOGIN_PAGE, "text/html; charset=utf-8"))
    hostile("empty", {"not_a_feed"}, "failing", static(b"", RSS_CT))
    laughs = feed_of("laughs", {"unsafe_xml"}, "failing")
    routes[laughs.path] = static(with_doctype(laughs.items, LAUGHS, "&lol9;"), RSS_CT)
    xxe = feed_of("xxe", {"unsafe_xml"}, "failing")
    doctype = '<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    routes[xxe.path] = static(with_doctype(xxe.items, doctype, "&xxe;"), RSS_CT)
    cut = feed_of("cut", {"feed_recovered"}, "active")
    routes[cut.path] = static(cut_mid_item(cut.items, server), RSS_CT)
    dirty = feed_of("control", {"feed_recovered"}, "active")
    routes[dirty.path] = static(with_control_characters(dirty.items), RSS_CT)
    routes["/web/bomb.html"] = static(bomb, "text/html", **{"Content-Encoding": "gzip"})
    routes["/web/file.pdf"] = static(PDF, "application/pdf")
    routes["/web/image.html"] = static(PNG, "text/html")
    routes["/web/empty.html"] = static(b"", "text/html")
    pages = [
        Item("A gzip bomb", server.url("/web/bomb.html")),
        Item("A PDF", server.url("/web/file.pdf")),
        Item("An image", server.url("/web/image.html")),
        Item("Nothing at all", server.url("/web/empty.html")),
        Item("A script", "javascript:alert(1)", description="Feed text of the script item."),
        Item("Stablecoin " * 100_000, None, description="A 1 MB title and no link at all."),
        Item("Not found", server.url("/web/missing.html")),
    ]
    page_kinds = {"too_large", "not_html", "empty_page", "bad_url", "no_link", "http_404"}
    feed_of("pages", page_kinds, "active", pages)
    if slow:
        # Longer than the default limits: the total deadline (60 s), the read timeout (20 s).
        hostile("trickle", {"timeout"}, "failing", lambda r: trickle_body(r, size=200))
        hostile("silent", {"timeout"}, "failing", lambda r: never_answers(r, seconds=90))
        routes["/web/table.html"] = static(HUGE_TABLE, "text/html; charset=utf-8")
        feed_of("table", {"too_large"}, "active", [Item("A table", server.url("/web/table.html"))])
    return web
