"""Client addresses as limits count them: one IPv4 address, or one IPv6 /64 (what one host is given)."""

from __future__ import annotations

import ipaddress


def address_group(host: str) -> str:
    """The key under which a per-address limit counts ``host``.

    An IPv6 host usually has a whole /64 to itself and picks addresses in it at will, so its /64 is
    counted as one address; an IPv4-mapped IPv6 address counts as its IPv4 address. Anything that is
    not an IP address counts as itself.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if address.is_loopback:
            return str(address)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
