"""Finding servers with SSDP: the messages, and real servers and searches inside network namespaces."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conf_cli.discovery import ANSWERS_PER_SOURCE, conflicts, localise, weigh
from conf_cli.errors import ProtocolError
from conf_cli.protocol import ssdp
from conf_cli.testing.netns import NetLab, netns_unavailable
from conf_cli.testing.processes import ConfProcess

needs_netns = pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))
IMPOSTOR_URL = "tcp://10.77.0.2:7999"
IMPOSTOR_KEY = "SHA256:" + "A" * 43

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


@needs_netns
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
                "--fingerprint",
                started["fingerprint"],
            ],
        )
        guest.expect("joined", timeout=20)
        host.expect("participant_joined", lambda e: e["name"] == "guest")


def test_answers_that_disagree_about_one_server_are_flagged_and_only_pinned_keys_are_trusted() -> None:
    real = ssdp.Announcement("ab12", ("tcp://10.0.0.2:7450",), ("tcp",), "SHA256:real")
    impostor = ssdp.Announcement("ab12", ("tcp://10.0.0.9:7450",), ("tcp",), "SHA256:fake")
    same_url = ssdp.Announcement("cd34", ("tcp://10.0.0.2:7450",), ("tcp",), "SHA256:fake")
    other = ssdp.Announcement("ef56", ("tcp://10.0.0.3:7450",), ("tcp",), "SHA256:other")
    assert conflicts([real, impostor, other]) == [True, True, False]
    assert conflicts([real, same_url]) == [True, True]
    assert conflicts([real, real]) == [False, False]
    weighed = weigh([real, impostor, other], {"tcp://10.0.0.2:7450": "SHA256:real"}, None)
    assert [c.trusted for c in weighed] == ["pinned", "", ""]
    # A pin for the URL with another key trusts nothing: the answer does not name the pinned key.
    assert [c.trusted for c in weigh([same_url], {"tcp://10.0.0.2:7450": "SHA256:real"}, None)] == [""]
    weighed = weigh([real, impostor], {}, "SHA256:fake")
    assert [(c.url, c.trusted) for c in weighed] == [
        ("tcp://10.0.0.2:7450", ""),
        ("tcp://10.0.0.9:7450", "fingerprint"),
    ]
    assert not any(c.trusted for c in weigh([real, impostor, other], {}, None))  # nothing on first use


def _lan(lab: NetLab) -> tuple[str, str]:
    """Namespaces ``here`` (10.77.0.1) and its neighbour ``nb`` (10.77.0.2) on one LAN with multicast."""
    here, neighbour = lab.ns("here"), lab.ns("nb")
    lab.link(here, "lan0", "10.77.0.1/24", neighbour, "lan0", "10.77.0.2/24")
    for ns in (here, neighbour):
        lab.route(ns, "224.0.0.0/4", "dev", "lan0")
    return here, neighbour


def _impostor(lab: NetLab, ns: str, server_id: str) -> ConfProcess:
    """Someone on the LAN answering searches as server ``server_id``, with its own URL and key."""
    args = [
        "--id",
        server_id,
        "--url",
        IMPOSTOR_URL,
        "--fingerprint",
        IMPOSTOR_KEY,
        "--listen",
        "10.77.0.2:7999",
    ]
    impostor = lab.python(ns, ["-m", "conf_cli.testing.ssdp", "impostor", *args])
    impostor.expect("ready")
    return impostor


def _stderr(process: ConfProcess) -> str:
    time.sleep(0.3)  # the reader thread's last lines
    return "\n".join(process.stderr_lines)


@needs_netns
def test_join_discover_does_not_trust_the_first_answer(tmp_path: Path) -> None:
    """Security review, High 4: only an impostor answers. `conf join --discover` (no pin, no
    --fingerprint, not at a terminal) refuses, says what to pass, and never connects to it."""
    with NetLab() as lab:
        here, neighbour = _lan(lab)
        impostor = _impostor(lab, neighbour, "ab" * 16)
        join = ["join", "m1", "--discover", "--json", "--name", "guest", "--passcode", "secret-1"]
        guest = lab.conf(here, join, env={"CONF_HOME": str(tmp_path)})
        assert guest.wait(30) != 0
        told = _stderr(guest)
        assert "does not trust a key on first use" in told and "--fingerprint SHA256:" in told, told
        assert IMPOSTOR_URL in told
        events = impostor.drain(1.0)
        assert {"type": "answered"} in events and {"type": "connected"} not in events


@needs_netns
def test_an_impostor_answering_for_a_server_is_shown_and_only_the_pinned_key_is_used(tmp_path: Path) -> None:
    """Security review, High 4: a second answerer claims the real server's ID with its own URL and key.
    `conf discover` lists both and flags the conflict; `conf join --discover` without a pin refuses and
    shows the conflict; once the real server's key is pinned, it joins the real server."""
    with NetLab() as lab:
        here, neighbour = _lan(lab)
        server = lab.conf(here, ["server", "--json", "--host", "10.77.0.1", "--port", "0"])
        started = server.expect("server_started")
        url, key = started["urls"][0], started["fingerprint"]
        search = lab.conf(here, ["discover", "--json", "--timeout", "1.0"])
        assert search.wait(20) == 0
        (real,) = search.drain(1.0)
        impostor = _impostor(lab, neighbour, real["id"])

        search = lab.conf(here, ["discover", "--json", "--timeout", "1.5"])
        assert search.wait(20) == 0
        found = search.drain(1.0)
        assert sorted(e["url"] for e in found) == sorted([url, IMPOSTOR_URL])
        assert {e["id"] for e in found} == {real["id"]} and all(e["conflict"] for e in found)

        host = lab.conf(here, ["create", "--json", "--server", url, "--name", "host", "--fingerprint", key])
        created = host.expect("meeting_created")
        home = {"CONF_HOME": str(tmp_path)}
        join = ["join", created["meeting"], "--discover", "--json", "--passcode", created["passcode"]]
        refused = lab.conf(here, [*join, "--name", "guest"], env=home)
        assert refused.wait(30) != 0
        told = _stderr(refused)
        assert "CONFLICT" in told and IMPOSTOR_URL in told and url in told, told

        first = [
            "join",
            created["meeting"],
            "--server",
            url,
            "--fingerprint",
            key,
            "--json",
            "--name",
            "first",
        ]
        pinning = lab.conf(here, [*first, "--passcode", created["passcode"]], env=home)
        pinning.expect("joined", timeout=20)  # pins the real server's key
        pinning.stop()
        guest = lab.conf(here, [*join, "--name", "guest"], env=home)
        guest.expect("joined", timeout=20)
        host.expect("participant_joined", lambda e: e["name"] == "guest")
        assert {"type": "connected"} not in impostor.drain(0.5)


@needs_netns
def test_ssdp_answers_amplify_nothing_and_only_on_the_announced_interface() -> None:
    """Security review, Medium 14, with real datagrams: a search smaller than the answer (a generic
    ``ssdp:all`` of about 150 bytes, what a reflection attack sends) gets none; conf's padded search gets
    an answer no larger than itself; a flood from one host gets at most ANSWERS_PER_SOURCE answers;
    searches sent to the server's address rather than the group, or arriving on an interface it does not
    announce on, get nothing."""
    with NetLab() as lab:
        here, neighbour = _lan(lab)
        far = lab.ns("far")
        lab.link(here, "lan1", "10.79.0.1/24", far, "lan1", "10.79.0.2/24")
        lab.route(far, "224.0.0.0/4", "dev", "lan1")
        server = lab.conf(here, ["server", "--json", "--host", "10.77.0.1", "--port", "0", "--announce"])
        assert server.expect("server_started")["announced"] is True

        def probe(ns: str, *args: str) -> dict:
            done = lab.python(ns, ["-m", "conf_cli.testing.ssdp", "probe", *args])
            result: dict = done.expect("probe", timeout=30)
            return result

        small = probe(neighbour, "--size", "0", "--target", "ssdp:all")
        assert small["sent"] < 200 and small["answers"] == [], small
        padded = probe(neighbour)
        (answer,) = padded["answers"]
        print(f"SSDP answer / search: {answer} / {padded['sent']} bytes = {answer / padded['sent']:.2f}")
        assert answer <= padded["sent"]
        flood = probe(neighbour, "--count", "200")
        print(f"SSDP flood of 200 searches from one host: {len(flood['answers'])} answers")
        assert 0 < len(flood["answers"]) <= ANSWERS_PER_SOURCE
        assert probe(far, "--to", "10.79.0.1", "--count", "3")["answers"] == []  # unicast, other interface
        assert probe(far, "--count", "3")["answers"] == []  # the group, on an interface not announced


def _answers(monkeypatch: pytest.MonkeyPatch, *found: ssdp.Announcement) -> None:
    async def search(timeout: float = 2.0) -> list[ssdp.Announcement]:
        return list(found)

    monkeypatch.setattr("conf_cli.discovery.discover", search)


REAL_KEY = "SHA256:" + "r" * 43
REAL = ssdp.Announcement("ab12", ("tcp://10.0.0.2:7450",), ("tcp",), REAL_KEY)
FORGED = ssdp.Announcement("ab12", ("tcp://10.0.0.9:7450",), ("tcp",), IMPOSTOR_KEY)


def test_at_a_terminal_a_discovered_key_is_used_only_once_the_person_confirms_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from conf_cli.cli import _discovered_server
    from conf_cli.errors import ConfError

    monkeypatch.setenv("CONF_HOME", str(tmp_path))
    _answers(monkeypatch, REAL, FORGED)
    asked: list[str] = []
    monkeypatch.setattr("click.prompt", lambda *a, **k: 1)
    monkeypatch.setattr("click.confirm", lambda text, **k: asked.append(text) or False)
    with pytest.raises(ConfError, match="not confirmed"):
        _discovered_server(False, None, "on")
    assert REAL_KEY in asked[0]
    monkeypatch.setattr("click.confirm", lambda text, **k: True)
    # Confirmed: the connection is held to the key shown (and pins it once the server proves it).
    assert _discovered_server(False, None, "on") == ("tcp://10.0.0.2:7450", REAL_KEY)
    # Not at a terminal: refused, with what to pass.
    with pytest.raises(ConfError, match="--fingerprint SHA256"):
        _discovered_server(True, None, "on")
    # --fingerprint picks the answer that names it, without asking.
    assert _discovered_server(True, IMPOSTOR_KEY, "on") == ("tcp://10.0.0.9:7450", IMPOSTOR_KEY)
    # With --encryption none there is no key to check: only an answer nobody contradicts is used.
    with pytest.raises(ConfError, match="pick one with --server"):
        _discovered_server(True, None, "none")
    _answers(monkeypatch, REAL)
    assert _discovered_server(True, None, "none") == ("tcp://10.0.0.2:7450", None)
