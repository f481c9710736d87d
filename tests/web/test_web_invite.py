"""Invite links from the command line: `conf create` prints one, `/invite [NAME]` shows it again."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from conf_cli.testing.processes import ClientPool, start_server
from conf_cli.urls import invite_link


def test_invite_links_are_query_encoded() -> None:
    welcome = {"type": "welcome", "services": {"web": ["https://conf.example:8443/"]}}
    link = invite_link(welcome, "k7m-q2xw-9fd", "a b&c", "Ada Lovelace")
    assert link is not None
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "conf.example:8443", "/")
    assert parse_qs(parts.query) == {
        "meeting": ["k7m-q2xw-9fd"],
        "passcode": ["a b&c"],
        "name": ["Ada Lovelace"],
    }
    assert invite_link({"type": "welcome"}, "k7m-q2xw-9fd", "x") is None
    assert invite_link({"services": {"rtsp": ["rtsp://h:1/"]}}, "k7m-q2xw-9fd", "x") is None


def test_create_prints_the_invite_and_slash_invite_shows_it() -> None:
    server, url = start_server("--web-port", "0")
    pool = ClientPool(url)
    try:
        web_url = server.seen[-1]["urls"][1]
        host, meeting = pool.create("ada")
        created = next(e for e in host.seen if e["type"] == "meeting_created")
        assert created["invite"] == f"{web_url}?meeting={meeting}&passcode={pool.passcode}"
        guest = pool.joined(meeting, "bo")
        guest.send('/invite "Cy D"')
        invite = guest.expect("invite")
        assert invite == {
            "type": "invite",
            "meeting": meeting,
            "url": f"{web_url}?meeting={meeting}&passcode={pool.passcode}&name=Cy+D",
        }
    finally:
        pool.stop_all()
        server.stop()


def test_slash_invite_without_a_web_page_says_so() -> None:
    server, url = start_server()
    pool = ClientPool(url)
    try:
        host, _ = pool.create("ada")
        assert "invite" not in next(e for e in host.seen if e["type"] == "meeting_created")
        host.send("/invite")
        error = host.expect("error")
        assert error["message"] == "this server serves no web page (conf server --web-port PORT)"
    finally:
        pool.stop_all()
        server.stop()
