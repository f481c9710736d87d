"""How ``conf bench`` shows its figures: a live line while it runs, a table at the end."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from conf_cli.bench.result import BenchResult

LINK_ENCRYPTION = {"tcp": "TLS 1.3", "zmq": "CURVE", "rtp": "TLS + SRTP (AEAD_AES_128_GCM)"}


def encryption_name(transport: str, encryption: str) -> str:
    """What protects a run's links: ``none``, or the transport's mechanism when encryption is on."""
    if encryption == "none":
        return "none"
    return LINK_ENCRYPTION.get(transport, encryption)


def live_line(result: BenchResult) -> str:
    """One progress line from the latest interval."""
    if not result.intervals:
        return "starting"
    last = result.intervals[-1]
    step = result.config.interval
    pct = last.percentiles_ms()
    latency = f"p50 {pct[0]:.2f} ms  p99 {pct[1]:.2f} ms" if pct else "no packets"
    cpu = f"  server CPU {last.server_cpu:.0f}%" if last.server_cpu is not None else ""
    return (
        f"{result.duration:5.1f}/{result.config.duration:g} s  in {last.sent / step:>9,.0f} pkt/s  "
        f"out {last.received / step:>9,.0f} pkt/s  {latency}{cpu}"
    )


def summary_table(figures: dict[str, Any]) -> Table:
    config, packets, rates = figures["config"], figures["packets"], figures["rates"]
    server, latency = figures["server"], figures["latency_ms"]
    table = Table(
        title=(
            f"conf bench: {config['transport']}, {config['publishers']} publishers x "
            f"{config['subscribers']} subscribers in {config['meetings']} meeting(s), "
            f"{config['rate']:g} pkt/s x {config['payload']} B each, {figures['seconds']:g} s"
        )
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("encryption", encryption_name(config["transport"], config["encryption"])),
        ("packets/s in (published)", f"{rates['in_pps']:,.0f}"),
        ("packets/s out (delivered)", f"{rates['out_pps']:,.0f}"),
        ("bitrate in", _bits(rates["in_bitrate"])),
        ("bitrate out", _bits(rates["out_bitrate"])),
        ("deliveries expected / received", f"{packets['expected']:,} / {packets['received']:,}"),
        ("loss", f"{100 * packets['loss']:.3f} % ({packets['lost']:,} packets)"),
        ("sequence gaps seen", f"{packets['seq_gaps']:,}"),
        ("publisher sends refused locally", f"{packets['send_failed']:,}"),
    ]
    if latency:
        rows += [(f"latency {k}", f"{latency[k]:.3f} ms") for k in ("p50", "p95", "p99", "max")]
    if server["cpu_pct"] is not None:
        rows.append(
            ("server CPU (mean / max of intervals)", f"{server['cpu_pct']}% / {server['cpu_pct_max']}%")
        )
    if server["cpu_us_per_packet_out"] is not None:
        rows.append(("server CPU per packet out", f"{server['cpu_us_per_packet_out']:.2f} us"))
    if server["rss_bytes"] is not None:
        rows.append(("server RSS", f"{server['rss_bytes'] / 2**20:.1f} MiB"))
    loads = ", ".join(f"{c}%" for c in figures["generator_cpu_pct"] if c is not None)
    nice = config.get("generator_nice") or 0
    generator = f"{config.get('generator', 'python')}{f', nice +{nice}' if nice else ''}"
    rows.append((f"load generator ({generator}) CPU per process", loads or "-"))
    media = ", ".join(f"{c}%" for c in figures.get("generator_media_thread_cpu_pct") or [] if c is not None)
    rows.append(("load generator's media thread CPU per process", media or "-"))
    waits = ", ".join(f"{c}%" for c in figures.get("generator_media_thread_wait_pct") or [] if c is not None)
    rows.append(("... and its time waiting for a core", waits or "-"))
    if server.get("runqueue_wait_pct") is not None:
        rows.append(("server threads' time waiting for a core (summed)", f"{server['runqueue_wait_pct']}%"))
    for name, value in rows:
        table.add_row(name, value)
    return table


def print_summary(figures: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(summary_table(figures))


def _bits(value: float) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} bit/s"
