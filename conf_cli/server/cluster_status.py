"""``conf cluster status``: what a cluster's directory holds, read once (nodes, their load, meetings)."""

from __future__ import annotations

from typing import Any

from conf_cli.errors import ProtocolError
from conf_cli.plugin.registry import Registry
from conf_cli.server.directory import NodeInfo, load

STATUS_TIMEOUT = 3.0
"""Seconds each read of the directory may take."""


async def cluster_status(registry: Registry, url: str) -> dict[str, Any]:
    """A ``cluster_status`` event: every live node (its URLs, key, load and meetings) and every claimed
    meeting with its holder. ConfError (DirectoryUnavailable) if the directory cannot be read."""
    backend = await registry.cluster_backend_for(url).connect(url, timeout=STATUS_TIMEOUT)
    try:
        records = await backend.nodes()
        claims = await backend.claims()
    finally:
        await backend.close()
    nodes: list[dict[str, Any]] = []
    for name, data in sorted(records.items()):
        try:
            node = NodeInfo.parse(name, data)
        except ProtocolError as exc:
            nodes.append({"name": name, "error": str(exc)})
            continue
        nodes.append(
            {
                "name": node.name,
                "urls": list(node.urls),
                "fingerprint": node.fingerprint,
                "cpu": node.cpu,
                "participants": node.participants,
                "packets_per_second": node.packets_per_second,
                "capacity": node.capacity,
                "load": round(load(node), 3),
                "meetings": sorted(m for m, holder in claims.items() if holder == name),
            }
        )
    return {
        "type": "cluster_status",
        "directory": url,
        "nodes": nodes,
        "meetings": dict(sorted(claims.items())),
    }


def status_lines(status: dict[str, Any]) -> list[str]:
    """``status`` for a person: one block per node, then meetings whose holder has no record."""
    lines = [
        f"cluster {status['directory']}: {len(status['nodes'])} node(s), {len(status['meetings'])} meeting(s)"
    ]
    for node in status["nodes"]:
        if "error" in node:
            lines.append(f"  {node['name']}: unreadable record ({node['error']})")
            continue
        lines.append(
            f"  {node['name']}: load {node['load']:.0%} (cpu {node['cpu']:.0%}, {node['participants']}/"
            f"{node['capacity']} participants, {node['packets_per_second']:g} packets/s), key "
            f"{node['fingerprint'] or 'none (no encryption)'}"
        )
        lines.append(f"    urls: {', '.join(node['urls']) or '-'}")
        lines.append(f"    meetings: {', '.join(node['meetings']) or '-'}")
    live = {node["name"] for node in status["nodes"]}
    orphans = {m: holder for m, holder in status["meetings"].items() if holder not in live}
    for meeting, holder in sorted(orphans.items()):
        lines.append(f"  meeting {meeting}: held by {holder}, which has no record (gone?)")
    return lines
