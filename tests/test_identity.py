"""The server identity key, fingerprints, the CURVE form of the key, known_hosts and the trust decision."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509 import load_pem_x509_certificate

from conf_cli.errors import ConfError
from conf_cli.identity import Identity, KnownHosts, curve_public_from_ed25519, fingerprint
from conf_cli.plugin.security import Trust, check_fingerprint


def test_fingerprint_is_ssh_style_sha256_of_the_raw_key() -> None:
    key = bytes(range(32))
    expected = base64.b64encode(hashlib.sha256(key).digest()).decode().rstrip("=")
    assert fingerprint(key) == "SHA256:" + expected
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", fingerprint(key))
    assert check_fingerprint(fingerprint(key)) == fingerprint(key)
    with pytest.raises(ConfError, match="bad fingerprint"):
        check_fingerprint("SHA256:short")


def test_key_is_created_private_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "server" / "identity.key"
    first = Identity.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    again = Identity.load_or_create(path)
    assert again.public_key == first.public_key and again.fingerprint == first.fingerprint


def test_a_bad_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    path.write_text("not a key")
    with pytest.raises(ConfError, match="cannot read the server key"):
        Identity.load_or_create(path)


def test_curve_key_is_the_x25519_form_of_the_identity() -> None:
    for _ in range(20):
        identity = Identity(Ed25519PrivateKey.generate())
        assert curve_public_from_ed25519(identity.public_key) == identity.curve_public()


def test_certificate_is_self_signed_with_the_identity() -> None:
    identity = Identity.generate()
    certificate_pem, _ = identity.certificate_pem()
    certificate = load_pem_x509_certificate(certificate_pem)
    raw = certificate.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw == identity.public_key
    identity.private.public_key().verify(certificate.signature, certificate.tbs_certificate_bytes)


def test_trust_pins_on_first_use_and_refuses_a_change(tmp_path: Path) -> None:
    hosts = KnownHosts(tmp_path / "known_hosts")
    said: list[str] = []
    one, two = Identity.generate(), Identity.generate()
    trust = Trust("tcp://h:1", known_hosts=hosts, notice=said.append)
    trust.check(one.public_key)
    assert len(said) == 1 and one.fingerprint in said[0]
    assert hosts.get("tcp://h:1") == one.public_key
    assert (tmp_path / "known_hosts").stat().st_mode & 0o777 == 0o600
    trust.check(one.public_key)
    assert len(said) == 1
    with pytest.raises(ConfError) as refused:
        trust.check(two.public_key)
    text = str(refused.value)
    assert "CHANGED" in text and one.fingerprint in text and two.fingerprint in text
    assert "conf known-hosts forget tcp://h:1" in text
    assert hosts.forget("tcp://h:1") and not hosts.forget("tcp://h:1")
    trust.check(two.public_key)
    assert hosts.get("tcp://h:1") == two.public_key


def test_expected_fingerprint_overrides_first_use(tmp_path: Path) -> None:
    hosts = KnownHosts(tmp_path / "known_hosts")
    one, two = Identity.generate(), Identity.generate()
    hosts.add("zmq://h:2", one.public_key)
    trust = Trust("zmq://h:2", expected=two.fingerprint, known_hosts=hosts, notice=lambda _: None)
    assert trust.pinned() is None  # the pin names another key than the one asked for
    with pytest.raises(ConfError, match="not " + re.escape(two.fingerprint)):
        trust.check(one.public_key)
    trust.check(two.public_key)
    assert hosts.get("zmq://h:2") == two.public_key
    unpinned = Trust("zmq://h:3", expected=one.fingerprint, known_hosts=hosts, pin=False)
    unpinned.check(one.public_key)
    assert hosts.get("zmq://h:3") is None
