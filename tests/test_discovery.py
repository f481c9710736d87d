"""Finding servers with SSDP: the messages, and real servers and searches inside network namespaces."""

from __future__ import annotations

import pytest

from conf_cli.discovery import localise
from conf_cli.errors import ProtocolError
from conf_cli.protocol import ssdp
from conf_cli.testing_netns import NetLab, netns_unavailable

ANNOUNCEMENT = ssdp.Announcement(
    "ab12", ("tcp://10.0.0.2:7450", "zmq://10.0.0.2:7452"), ("tcp", "zmq"), "sha256:x"
)


def test_search_and_response_round_trip() -> None:
    found = ssdp.parse_search(ssdp.search())
    assert ssdp.wanted(found) and found.wait == 1
    assert ssdp.wanted(ssdp.parse_search(ssdp.search("ssdp:all")))
    assert not ssdp.wanted(ssdp.parse_search(ssdp.search("urn:schemas-upnp-org:device:MediaRenderer:1")))
    data = ssdp.response(ANNOUNCEMENT)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nLOCATION: tcp://10.0.0.2:7450\r\n" in data
    assert ssdp.parse_response(data) == ANNOUNCEMENT
    assert ANNOUNCEMENT.as_event()["url"] == "tcp://10.0.0.2:7450"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"x" * 3000, "SSDP datagram of 3000 bytes exceeds 2048"),
        (b"\xff\r\n\r\n", "SSDP datagram is not UTF-8"),
        (b"M-SEARCH * HTTP/1.1\r\nST: x\r\n", "SSDP datagram has no blank line"),
        (b"M-SEARCH * HTTP/1.1\r\n" + b"A: b\r\n" * 33 + b"\r\n", "SSDP datagram has more than 32 headers"),
        (b"M-SEARCH * HTTP/1.1\r\nnocolon\r\n\r\n", "SSDP header line 'nocolon' has no name"),
        (b"NOTIFY * HTTP/1.1\r\n\r\n", "not an M-SEARCH"),
        (b"M-SEARCH * HTTP/1.1\r\nST: x\r\n\r\n", 'M-SEARCH without MAN: "ssdp:discover"'),
    ],
)
def test_bad_searches_are_refused(data: bytes, error: str) -> None:
    with pytest.raises(ProtocolError) as info:
        ssdp.parse_search(data)
    assert str(info.value).startswith(error)


def test_bad_responses_are_refused() -> None:
    good = ssdp.response(ANNOUNCEMENT).decode()
    for bad, error in (
        (good.replace("ST: urn", "ST: other"), "SSDP response is not for conf servers"),
        (good.replace("USN: uuid:ab12", "USN: "), "SSDP response has no usable USN"),
        (
            good.replace("tcp://10.0.0.2:7450 zmq://10.0.0.2:7452", "nonsense"),
            "SSDP response needs 1 to 8 URLs",
        ),
        (good.replace("HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found"), "not an SSDP response"),
    ):
        with pytest.raises(ProtocolError) as info:
            ssdp.parse_response(bad.encode())
        assert str(info.value).startswith(error)


def test_a_wildcard_url_names_the_address_the_searcher_reaches() -> None:
    assert localise("tcp://0.0.0.0:7450", "127.0.0.1") == "tcp://127.0.0.1:7450"
    assert localise("tcp://10.1.2.3:7450", "127.0.0.1") == "tcp://10.1.2.3:7450"


@pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))
def test_discovery_finds_the_server_on_its_own_network_and_nothing_else() -> None:
    with NetLab() as lab:
        here, neighbour, far, far_neighbour = (lab.ns(n) for n in ("here", "nb", "far", "farnb"))
        for a, b in ((here, neighbour), (far, far_neighbour)):
            lab.link(a, "lan0", "10.77.0.1/24", b, "lan0", "10.77.0.2/24")
            lab.route(a, "224.0.0.0/4", "dev", "lan0")
            lab.route(b, "224.0.0.0/4", "dev", "lan0")
        wildcard = ["server", "--json", "--host", "0.0.0.0", "--port", "0"]
        announced = lab.conf(here, wildcard)
        started = announced.expect("server_started")
        assert started["announced"] is True
        port = started["urls"][0].rsplit(":", 1)[1]
        quiet = lab.conf(here, [*wildcard, "--no-announce"])
        assert quiet.expect("server_started")["announced"] is False
        elsewhere = lab.conf(far, [*wildcard, "--announce"])
        assert elsewhere.expect("server_started")["announced"] is True

        search = lab.conf(here, ["discover", "--json", "--timeout", "1.5"])
        assert search.wait(20) == 0
        found = search.drain(1.0)
        assert [e["type"] for e in found] == ["server_found"]
        (server,) = found
        assert server["url"] == f"tcp://10.77.0.1:{port}" and server["transports"] == ["tcp"]
        assert server["fingerprint"] == started["fingerprint"] and started["fingerprint"].startswith(
            "SHA256:"
        )

        # `conf join --discover` reaches the one server found.
        host = lab.conf(here, ["create", "--json", "--server", f"tcp://10.77.0.1:{port}", "--name", "host"])
        created = host.expect("meeting_created")
        guest = lab.conf(
            here,
            [
                "join",
                created["meeting"],
                "--discover",
                "--json",
                "--name",
                "guest",
                "--passcode",
                created["passcode"],
            ],
        )
        guest.expect("joined", timeout=20)
        host.expect("participant_joined", lambda e: e["name"] == "guest")
