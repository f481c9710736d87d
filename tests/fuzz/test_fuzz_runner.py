"""The fuzz harness: it finds crashes and hangs, saves and replays them, and its CLI works."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

import fuzz
from conf_cli.errors import ProtocolError
from fuzz.mutate import Mutator
from fuzz.runner import fuzz as run_fuzz
from fuzz.runner import replay


def _fragile(data: bytes) -> object:
    """Refuses short input properly, but indexes past the end of longer input with a 0xFF byte."""
    if len(data) < 4:
        raise ProtocolError("too short")
    if data[3] == 0xFF:
        return data[data[2] + 1000]  # IndexError: a crash
    if data[:2] == b"\x00\x00":
        while True:  # a hang
            pass
    return len(data)


def test_mutator_is_reproducible_and_bounded() -> None:
    corpus = [bytes(range(40)), b"\x80\x60" + bytes(20)]
    first, again = Mutator(random.Random(5), 64), Mutator(random.Random(5), 64)
    outputs = [first.mutate(corpus[0], corpus) for _ in range(2000)]
    assert outputs == [again.mutate(corpus[0], corpus) for _ in range(2000)]
    assert all(len(out) <= 64 for out in outputs)
    assert len(set(outputs)) > 1000
    assert Mutator(random.Random(9), 64).mutate(b"") != b""


def test_finds_saves_and_replays_a_crash_and_a_hang(tmp_path: Path) -> None:
    target = fuzz.Target("fragile", _fragile, lambda: [b"\x01\x02\x03\x04\x05"], max_size=64)
    report = run_fuzz(target, seconds=30, max_inputs=4000, seed=1, time_limit=0.05, out_dir=tmp_path)
    kinds = sorted(finding.kind for finding in report.findings)
    assert kinds == ["crash", "hang"], report.summary()
    crash = next(f for f in report.findings if f.kind == "crash")
    assert crash.key.startswith("IndexError at test_fuzz_runner.py:")
    assert crash.path is not None and crash.path.read_bytes() == crash.data
    assert "IndexError" in crash.path.with_suffix(".txt").read_text()
    assert len(list(tmp_path.glob("fragile-*.bin"))) == 2  # one file per distinct finding
    replayed = replay(target, crash.data)
    assert replayed is not None and replayed.key == crash.key
    assert replay(target, b"\x01\x02\x03\x04") is None
    assert "2 finding(s)" in report.summary()


@pytest.mark.parametrize("name", fuzz.names())
def test_smoke_every_target(name: str, tmp_path: Path) -> None:
    """A few thousand mutated inputs per target; long runs are on demand (-m slow, or the CLI)."""
    report = run_fuzz(fuzz.get(name), seconds=20, max_inputs=3000, seed=0, out_dir=tmp_path)
    assert report.ok, report.summary()
    assert report.executions == 3000


@pytest.mark.slow
@pytest.mark.parametrize("name", fuzz.names())
def test_long_run_every_target(name: str, tmp_path: Path) -> None:
    report = run_fuzz(fuzz.get(name), seconds=60, out_dir=tmp_path)
    assert report.ok, report.summary()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fuzz", *args],
        cwd=Path(__file__).resolve().parents[2],  # the fuzzers live in the repository, not the package
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_runs_a_target_and_lists_them(tmp_path: Path) -> None:
    listed = _cli("--list")
    assert listed.returncode == 0
    assert {line.split()[0] for line in listed.stdout.splitlines()} == set(fuzz.names())
    run = _cli("--target", "rtp", "--seconds", "1", "--seed", "3", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("rtp: ") and "0 finding(s)" in run.stdout
    unknown = _cli("--target", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().startswith("conf fuzz: no fuzz target 'nope'; known: control")
    saved = tmp_path / "input.bin"
    saved.write_bytes(b"\x80\x60\x00\x01")
    replayed = _cli("--target", "rtp", "--replay", str(saved))
    assert (replayed.returncode, replayed.stdout.strip()) == (0, "rtp: no crash or hang")


@pytest.mark.slow  # instrumenting every loaded module takes half a minute
def test_atheris_engine_runs_a_target(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    run = _cli("--target", "stun", "--engine", "atheris", "--seconds", "2", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Done" in run.stderr  # libFuzzer's closing line: it ran to its time limit without a crash
