"""What ``conf bench`` does once its options are parsed: run, show progress, print or write figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from conf_cli.bench.display import live_line, print_summary
from conf_cli.bench.plan import BenchConfig
from conf_cli.bench.plot import write_plot
from conf_cli.bench.result import BenchResult
from conf_cli.bench.runner import run_bench


async def bench(config: BenchConfig, json_flag: bool, plot: Path | None) -> int:
    console = Console(stderr=True)
    if json_flag or not console.is_terminal:
        result = await run_bench(config)
    else:
        with Live(Text("connecting"), console=console, refresh_per_second=4, transient=True) as live:

            def progress(partial: BenchResult) -> None:
                live.update(Text(live_line(partial)))

            result = await run_bench(config, progress)
    figures = result.as_dict()
    if plot is not None:
        write_plot(figures, plot)
    if json_flag:
        sys.stdout.write(json.dumps(figures) + "\n")
        sys.stdout.flush()
    else:
        print_summary(figures)
        if plot is not None:
            Console().print(f"plot written to {plot}")
    return 0
