"""Media and byte counts per transport, summed over a server's links when asked (on a scrape).

Each link counts its own traffic (:class:`conf_cli.plugin.transport.LinkStats`) as it sends and receives;
nothing is added to the forwarding path here. A link's counts are folded into :attr:`TrafficTotals.closed`
when it closes, so the totals only ever grow, as a Prometheus counter must.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from conf_cli.plugin.transport import Link, LinkStats

_FIELDS = tuple(f.name for f in fields(LinkStats))


def transport_of(link: Link) -> str:
    """The transport a link came in on (its listener's URL scheme), or ``local`` for a service's link."""
    listener = link.listener
    if listener is None:
        return "local"
    scheme, sep, _ = listener.url.partition("://")
    return scheme if sep else "local"


def _add(into: LinkStats, stats: LinkStats) -> None:
    for name in _FIELDS:
        setattr(into, name, getattr(into, name) + getattr(stats, name))


@dataclass
class TrafficTotals:
    closed: dict[str, LinkStats] = field(default_factory=dict)
    """Per transport: the counts of links that have closed."""

    def retire(self, link: Link) -> None:
        """``link`` closed: keep its counts."""
        _add(self.closed.setdefault(transport_of(link), LinkStats()), link.stats)

    def by_transport(self, open_links: Iterable[Link]) -> dict[str, tuple[LinkStats, int]]:
        """Per transport: every count so far (closed links and ``open_links``) and the open links."""
        totals: dict[str, tuple[LinkStats, int]] = {}
        for name, stats in self.closed.items():
            summed = LinkStats()
            _add(summed, stats)
            totals[name] = (summed, 0)
        for link in open_links:
            name = transport_of(link)
            summed, opened = totals.get(name) or (LinkStats(), 0)
            _add(summed, link.stats)
            totals[name] = (summed, opened + 1)
        return totals
