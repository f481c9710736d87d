"""How ``conf bench --churn`` shows its figures: a live line while it runs, a table at the end."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from conf_cli.bench.churn import run_churn
from conf_cli.bench.churn_plan import ChurnConfig


def churn_table(figures: dict[str, Any]) -> Table:
    config, joins, server = figures["config"], figures["joins"], figures["server"]
    encryption = "TLS" if config["encryption"] == "on" else "no encryption"
    rate = f"{config['rate']:g} joins/s offered" if config["rate"] else "as fast as they go"
    table = Table(
        title=(
            f"conf bench --churn: {config['transport']} ({encryption}), passcode, "
            f"{config['clients']} clients at once in {config['meetings']} meeting(s), {rate}, "
            f"{figures['seconds']:g} s"
        )
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("joins done / started", f"{joins['joined']:,} / {joins['started']:,}"),
        ("left / dropped their connection", f"{joins['left']:,} / {joins['dropped']:,}"),
        ("joins failed", _failed(joins)),
        ("joins/s", f"{figures['joins_per_s']:,.1f}" if figures["joins_per_s"] is not None else "-"),
    ]
    for label, key in (
        ("join (connect to joined)", "join_ms"),
        ("connect (to welcome)", "connect_ms"),
        ("chat round trip", "chat_ms"),
    ):
        ms = figures[key]
        if ms:
            rows.append(
                (f"{label} p50 / p95 / p99", f"{ms['p50']:.1f} / {ms['p95']:.1f} / {ms['p99']:.1f} ms")
            )
    if server["cpu_ms_per_join"] is not None:
        rows.append(("server CPU per join (with its chat, leave)", f"{server['cpu_ms_per_join']:.2f} ms"))
    if server["cpu_pct"] is not None:
        rows.append(("server CPU", f"{server['cpu_pct']}% of a core"))
    if server["passcode_checks"] is not None:
        rows.append(
            (
                "passcode checks / hashed with scrypt",
                f"{server['passcode_checks']:,} / {server['passcode_hashed']:,}",
            )
        )
    if server["rss_bytes_idle"] is not None and server["rss_bytes_end"] is not None:
        rows.append(
            (
                "server RSS before / at the end",
                f"{server['rss_bytes_idle'] / 2**20:.1f} / {server['rss_bytes_end'] / 2**20:.1f} MiB",
            )
        )
    if server["fds_idle"] is not None and server["fds_end"] is not None:
        rows.append(("server open files before / at the end", f"{server['fds_idle']} / {server['fds_end']}"))
    loads = ", ".join(f"{c}%" for c in figures["generator_cpu_pct"] if c is not None)
    rows.append(("load generator CPU per process", loads or "-"))
    target = figures["target"]
    rows.append(
        (
            f"target: p95 <= {target['p95_ms']:g} ms, >= {target['joins_per_s']:g} joins/s",
            "met" if target["met"] else "not met",
        )
    )
    for name, value in rows:
        table.add_row(name, value)
    return table


def _failed(joins: dict[str, Any]) -> str:
    if not joins["failed"]:
        return "0"
    reasons = ", ".join(f"{why}: {count}" for why, count in sorted(joins["errors"].items()))
    return f"{joins['failed']:,} ({reasons})"


async def churn(config: ChurnConfig, json_flag: bool) -> int:
    """Run ``conf bench --churn`` and print its figures (a table, or one JSON object with ``--json``)."""
    console = Console(stderr=True)
    if json_flag or not console.is_terminal:
        figures = await run_churn(config)
    else:
        with Live(Text("connecting"), console=console, refresh_per_second=4, transient=True) as live:
            figures = await run_churn(config, lambda line: live.update(Text(line)))
    if json_flag:
        sys.stdout.write(json.dumps(figures) + "\n")
        sys.stdout.flush()
    else:
        Console().print(churn_table(figures))
    return 0
