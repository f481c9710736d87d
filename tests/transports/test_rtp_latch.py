"""The rtp:// latch and consent state machine, sans-I/O, with ``now`` passed in: which address a link's
media may go to, and how a copied or forged STUN request fails to move it (see docs/protocol.md)."""

from __future__ import annotations

import itertools
import random

from conf_transport_udp_rtp.latch import (
    CHECK_ATTEMPTS,
    CHECK_BURST,
    CHECK_RATE,
    CHECK_RTO,
    CHECK_SUFFIX,
    CONSENT_INTERVAL,
    CONSENT_TIMEOUT,
    Action,
    Alive,
    Credentials,
    Latched,
    Latches,
    Transmit,
    Unlatched,
    answer_check,
    new_token,
    request_transaction,
)

from conf_cli.protocol.stun import CLASS_REQUEST, CLASS_SUCCESS, StunMessage, binding_request

SERVER = ("192.0.2.1", 5004)
CLIENT = ("10.0.0.1", 4000)
MOVED = ("10.0.0.1", 4001)
EVIL = ("10.6.6.6", 6666)
VICTIM = ("10.7.7.7", 7777)


class Client:
    """The client's side of the exchange, as a real client does it."""

    def __init__(self, token: bytes) -> None:
        self.credentials = Credentials.of(token)
        self.number = 0

    def request(self) -> bytes:
        self.number += 1
        return self.credentials.request(request_transaction(self.number))

    def answer(self, action: Transmit) -> bytes:
        answer = answer_check(action.datagram, self.credentials, *SERVER)
        assert answer is not None, "a check signed with the link's key"
        return answer


def fresh(seed: int = 1) -> tuple[Latches[str], Client]:
    latches: Latches[str] = Latches(rng=random.Random(seed))
    token = new_token()
    latches.add("alice", token)
    return latches, Client(token)


def sent(actions: list[Action], to: tuple[str, int] | None = None) -> list[Transmit]:
    return [a for a in actions if isinstance(a, Transmit) and (to is None or a.address == to)]


def checks(actions: list[Action]) -> list[Transmit]:
    """The consent checks among ``actions`` (STUN requests the server sends)."""
    return [a for a in sent(actions) if StunMessage.parse(a.datagram).message_class == CLASS_REQUEST]


def latch(latches: Latches[str], client: Client, address: tuple[str, int], now: float = 0.0) -> None:
    """Bind and answer the check, as a real client at ``address``."""
    actions = latches.receive(client.request(), address, now)
    (check,) = checks(actions)
    assert check.address == address
    latched = latches.receive(client.answer(check), address, now + 0.01)
    assert any(isinstance(a, Latched) and a.address == address for a in latched)
    assert latches.lookup(address) == "alice"


def test_the_token_never_travels_on_udp_and_in_clear_values_prove_nothing() -> None:
    token = new_token()
    credentials = Credentials.of(token)
    request = credentials.request(request_transaction(1))
    assert token not in request and token.hex().encode() not in request
    assert credentials.key not in request and credentials.key.hex().encode() not in request
    assert len(credentials.username) == 32 and credentials.username != token.hex()

    latches, _ = fresh()
    latches.add("bob", token)
    username = credentials.username
    unsigned = bytes(binding_request(request_transaction(2), username, None))
    keyed_by_username = bytes(binding_request(request_transaction(3), username, username.encode()))
    old_scheme = bytes(binding_request(request_transaction(4), token.hex(), token))  # token in clear as key
    for datagram in (unsigned, keyed_by_username, old_scheme):
        assert latches.receive(datagram, EVIL, 0.0) == []
    assert latches.receive(b"\x00\x01junk", EVIL, 0.0) == []
    assert latches.stats.stun_refused == 3 and latches.stats.dropped_malformed == 1
    assert latches.stats.consent_checks == 0 and latches.next_deadline() is None


def test_a_proved_address_gets_media_only_after_it_answers_a_check() -> None:
    latches, client = fresh()
    actions = latches.receive(client.request(), CLIENT, 0.0)
    assert Alive("alice") in actions
    (check,) = checks(actions)
    assert len(sent(actions)) == 1, "no answer to the request before consent"
    assert latches.lookup(CLIENT) is None and latches.address_of("alice") is None
    message = StunMessage.parse(check.datagram)
    assert message.username == client.credentials.username + CHECK_SUFFIX
    assert message.check_integrity(client.credentials.key)

    # An answer from another address, or one signed with another key, latches nothing.
    answer = client.answer(check)
    assert latches.receive(answer, EVIL, 0.01) == []
    wrong = bytes(
        StunMessage(
            message.method, CLASS_SUCCESS, message.transaction_id, key=Credentials.of(new_token()).key
        )
    )
    assert latches.receive(wrong, CLIENT, 0.01) == []
    assert latches.lookup(CLIENT) is None

    done = latches.receive(answer, CLIENT, 0.02)
    assert Latched("alice", CLIENT, None, None) in done
    (response,) = sent(done)
    success = StunMessage.parse(response.datagram)
    assert success.message_class == CLASS_SUCCESS and success.check_integrity(client.credentials.key)
    assert success.xor_mapped_address == CLIENT
    assert latches.lookup(CLIENT) == "alice" and latches.address_of("alice") == CLIENT
    # Once latched, a keep-alive is answered at once.
    again = latches.receive(client.request(), CLIENT, 10.0)
    assert len(sent(again, CLIENT)) == 1 and not checks(again)


def test_a_copied_request_from_another_address_moves_nothing() -> None:
    """Someone who read alice's requests off the wire sends them again from their own address."""
    latches, client = fresh()
    first = client.request()
    actions = latches.receive(first, CLIENT, 0.0)
    latches.receive(client.answer(checks(actions)[0]), CLIENT, 0.01)
    second = client.request()
    assert sent(latches.receive(second, CLIENT, 12.0), CLIENT)
    retransmitted = latches.receive(second, CLIENT, 12.1)  # the same transaction, same address: answered
    assert len(sent(retransmitted, CLIENT)) == 1
    for copy in (first, second):  # the newest, and an older one
        assert latches.receive(copy, EVIL, 12.2) == []
    assert latches.stats.stun_replayed == 2 and latches.stats.consent_checks == 1
    assert latches.lookup(EVIL) is None and latches.address_of("alice") == CLIENT


def test_a_forged_request_aimed_at_a_victim_gets_it_only_a_few_checks() -> None:
    """Even someone holding alice's key (alice herself) cannot aim her media at an address that does not
    consent: the victim gets small checks, a bounded number of them, and no media goes there."""
    latches, client = fresh()
    latch(latches, client, CLIENT)
    to_victim: list[Transmit] = []
    now = 0.0
    for _ in range(600):  # a fresh request every 0.1 s for a minute
        now += 0.1
        to_victim += sent(latches.receive(client.request(), VICTIM, now), VICTIM)
        actions = latches.tick(now)
        to_victim += sent(actions, VICTIM)
        for check in checks(actions):  # alice keeps consenting from her own address
            if check.address == CLIENT:
                latches.receive(client.answer(check), CLIENT, now)
        assert not any(isinstance(a, Latched) for a in actions)
    assert to_victim and all(StunMessage.parse(t.datagram).message_class == CLASS_REQUEST for t in to_victim)
    assert all(len(t.datagram) < 120 for t in to_victim)
    assert len(to_victim) <= CHECK_BURST + CHECK_RATE * now + 1
    assert latches.lookup(VICTIM) is None and latches.address_of("alice") == CLIENT
    assert latches.stats.checks_limited > 0


def test_a_nat_rebinding_moves_media_once_the_new_address_consents() -> None:
    latches, client = fresh()
    latch(latches, client, CLIENT)
    actions = latches.receive(client.request(), MOVED, 20.0)
    (check,) = checks(actions)
    assert check.address == MOVED
    assert latches.lookup(CLIENT) == "alice" and latches.lookup(MOVED) is None  # media stays meanwhile
    done = latches.receive(client.answer(check), MOVED, 20.05)
    assert Latched("alice", MOVED, None, CLIENT) in done
    assert latches.lookup(CLIENT) is None and latches.lookup(MOVED) == "alice"
    assert latches.stats.relatches == 1


def test_a_lost_check_is_repeated_then_the_candidate_is_given_up() -> None:
    latches, client = fresh()
    first = client.request()
    (check,) = checks(latches.receive(first, CLIENT, 0.0))
    assert latches.new_deadline == latches.next_deadline() == CHECK_RTO  # the edge's clock must wake by then
    assert latches.receive(first, CLIENT, 0.05) == [Alive("alice")]  # a retransmission: no second check yet
    times = [0.0]
    now = 0.0
    while (deadline := latches.next_deadline()) is not None:
        now = deadline
        if checks(latches.tick(now)):
            times.append(now)
        assert latches.new_deadline is None
    assert len(times) == CHECK_ATTEMPTS
    assert [round(b - a, 2) for a, b in itertools.pairwise(times)] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert latches.stats.consent_failed == 1 and latches.lookup(CLIENT) is None
    # The client's next binding tries again, and a late answer to the old check counts for nothing.
    assert latches.receive(client.answer(check), CLIENT, now) == []
    assert latches.lookup(CLIENT) is None
    latch(latches, client, CLIENT, now + 1)


def test_consent_is_refreshed_and_expires_when_not_answered() -> None:
    latches, client = fresh()
    latch(latches, client, CLIENT)
    now = 0.0
    refreshes = []
    while now < 60.0:  # answered for a minute
        now += 0.5
        for check in checks(latches.tick(now)):
            refreshes.append(now)
            latches.receive(client.answer(check), CLIENT, now)
    assert latches.lookup(CLIENT) == "alice"
    gaps = [b - a for a, b in itertools.pairwise(refreshes)]
    assert len(refreshes) >= 60.0 / (CONSENT_INTERVAL * 1.2) - 1
    assert all(0.8 * CONSENT_INTERVAL - 0.5 <= gap <= 1.2 * CONSENT_INTERVAL + 0.5 for gap in gaps)

    silent_from = now  # then alice's address stops answering
    expired: list[Action] = []
    while not expired:
        now += 0.5
        expired = [a for a in latches.tick(now) if isinstance(a, Unlatched)]
    assert expired == [Unlatched("alice", CLIENT)]
    assert CONSENT_TIMEOUT - CONSENT_INTERVAL * 1.2 <= now - silent_from <= CONSENT_TIMEOUT + 0.5
    assert latches.lookup(CLIENT) is None and latches.address_of("alice") is None
    assert latches.stats.consent_expired == 1
    latch(latches, client, CLIENT, now)  # consent proved again: media again


def test_an_address_consenting_for_another_link_leaves_the_first() -> None:
    latches, alice = fresh()
    latch(latches, alice, CLIENT)
    token = new_token()
    latches.add("bob", token)
    bob = Client(token)
    actions = latches.receive(bob.request(), CLIENT, 1.0)
    done = latches.receive(bob.answer(checks(actions)[0]), CLIENT, 1.01)
    assert Unlatched("alice", CLIENT) in done and latches.lookup(CLIENT) == "bob"
    assert latches.address_of("alice") is None


def test_a_removed_link_forgets_everything() -> None:
    latches, client = fresh()
    latch(latches, client, CLIENT)
    pending = checks(latches.receive(client.request(), MOVED, 1.0))
    latches.remove("alice")
    assert latches.lookup(CLIENT) is None and latches.next_deadline() is None
    assert latches.receive(client.answer(pending[0]), MOVED, 1.1) == []
    assert latches.receive(client.request(), CLIENT, 1.2) == []
    assert latches._links == {} and latches._checks == {} and latches._by_address == {}


def test_the_client_answers_only_checks_signed_with_its_key() -> None:
    credentials = Credentials.of(new_token())
    check = credentials.check(b"c" * 12)
    answer = answer_check(check, credentials, *SERVER)
    assert answer is not None
    message = StunMessage.parse(answer)
    assert message.message_class == CLASS_SUCCESS and message.check_integrity(credentials.key)
    assert message.transaction_id == b"c" * 12
    other = Credentials.of(new_token())
    assert answer_check(other.check(b"c" * 12), credentials, *SERVER) is None  # another link's key
    assert answer_check(credentials.request(b"c" * 12), credentials, *SERVER) is None  # its own request
    assert answer_check(answer, credentials, *SERVER) is None
    assert answer_check(b"\x00\x01junk", credentials, *SERVER) is None
