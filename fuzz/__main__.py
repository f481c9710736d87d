"""``python -m fuzz``: fuzz conf's parsers for a while and report crashes and hangs.

    python -m fuzz --list
    python -m fuzz --target rtp --seconds 60
    python -m fuzz --all --seconds 10 --out fuzz-findings
    python -m fuzz --target rtcp --replay fuzz-findings/rtcp-crash-0123abcd.bin
    python -m fuzz --target rtp --engine atheris --seconds 60   # coverage-guided

Exit status 0 when nothing was found, 1 when a crash or hang was (each saved under --out), 2 for a usage
error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import fuzz
from fuzz.runner import fuzz as run_fuzz
from fuzz.runner import replay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--target", action="append", default=[], help="a target (repeatable); see --list")
    parser.add_argument("--all", action="store_true", help="every target, one after another")
    parser.add_argument("--list", action="store_true", help="list the targets and stop")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz each target")
    parser.add_argument("--time-limit", type=float, default=1.0, help="CPU seconds one input may take")
    parser.add_argument("--seed", type=int, default=None, help="seed of the mutator, to repeat a run")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"), help="where findings go")
    parser.add_argument("--replay", type=Path, help="run one saved input again and say what it does")
    parser.add_argument("--engine", choices=("builtin", "atheris"), default="builtin")
    args = parser.parse_args(argv)

    if args.list:
        for name in fuzz.names():
            print(f"{name:16} {fuzz.get(name).description}")
        return 0
    try:
        targets = [fuzz.get(name) for name in (fuzz.names() if args.all else args.target)]
    except KeyError as exc:
        print(f"conf fuzz: {exc.args[0]}", file=sys.stderr)
        return 2
    if not targets:
        print("conf fuzz: name a --target (or --all); --list shows them", file=sys.stderr)
        return 2
    if args.replay:
        finding = replay(targets[0], args.replay.read_bytes(), args.time_limit)
        print(
            f"{targets[0].name}: "
            + ("no crash or hang" if finding is None else finding.details or finding.summary)
        )
        return 0 if finding is None else 1
    if args.engine == "atheris":
        if len(targets) != 1:
            print("conf fuzz: the atheris engine runs one --target at a time", file=sys.stderr)
            return 2
        return _atheris(targets[0], args)
    found = False
    for target in targets:
        report = run_fuzz(
            target, seconds=args.seconds, seed=args.seed, time_limit=args.time_limit, out_dir=args.out
        )
        print(report.summary(), flush=True)
        found = found or not report.ok
    return 1 if found else 0


def _atheris(target: fuzz.Target, args: argparse.Namespace) -> int:
    """Hand the target to atheris (libFuzzer): coverage-guided, one process, stops at the first crash."""
    try:
        import atheris
    except ImportError:
        print("conf fuzz: the atheris engine needs `pip install atheris`", file=sys.stderr)
        return 2
    corpus = Path(tempfile.mkdtemp(prefix=f"conf-fuzz-{target.name}-"))
    for index, data in enumerate(target.seeds()):
        (corpus / f"seed-{index}").write_bytes(data)
    args.out.mkdir(parents=True, exist_ok=True)
    atheris.instrument_all()
    flags = [
        f"-max_total_time={max(1, int(args.seconds))}",
        f"-timeout={max(1, int(args.time_limit + 0.999))}",
        f"-max_len={target.max_size}",
        f"-artifact_prefix={args.out}/{target.name}-",
    ]
    if args.seed is not None:
        flags.append(f"-seed={args.seed}")
    atheris.Setup([sys.argv[0], *flags, str(corpus)], target.check)
    atheris.Fuzz()  # exits the process: 0 when time is up, non-zero with the crash saved under --out
    return 0


if __name__ == "__main__":
    sys.exit(main())
