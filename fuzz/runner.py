"""Running a fuzz target: mutate, run, and keep what crashes or hangs.

Without coverage feedback the corpus grows by *outcome*: an input whose result (the target's short
signature, or the exception type and message with numbers and quoted text blanked) was not seen before
joins the corpus, so inputs that reach a new error path or parse into something new are mutated further.
A crash is any exception the target does not document; crashes are told apart by exception type and the
line that raised. A hang is an input that runs longer than ``time_limit`` seconds of CPU time (a
``SIGVTALRM`` timer interrupts it; this needs the main thread). Each offending input is written to
``out_dir`` with a text file holding the traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fuzz import Target
from fuzz.mutate import Mutator

__all__ = ["Finding", "FuzzReport", "Hang", "fuzz", "replay"]

MAX_CORPUS = 2048
_VARYING = re.compile(r"0x[0-9a-f]+|\d+|'[^']*'|\"[^\"]*\"")  # numbers and quoted text: what the input chose


class Hang(BaseException):
    """Raised inside a target that ran past its time limit (a BaseException, so no parser catches it)."""


@dataclass
class Finding:
    kind: str  # "crash" or "hang"
    key: str  # what tells two findings apart: exception type and where it was raised
    summary: str
    data: bytes
    details: str = ""  # the traceback of a crash
    path: Path | None = None


@dataclass
class FuzzReport:
    target: str
    executions: int = 0
    seconds: float = 0.0
    corpus: int = 0
    outcomes: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        rate = self.executions / self.seconds if self.seconds else 0.0
        head = (
            f"{self.target}: {self.executions} inputs in {self.seconds:.1f} s ({rate:.0f}/s), "
            f"{self.outcomes} outcomes, corpus {self.corpus}"
        )
        lines = [f"{head}, {len(self.findings)} finding(s)"]
        for finding in self.findings:
            where = f" -> {finding.path}" if finding.path else ""
            lines.append(f"  {finding.kind}: {finding.summary}{where}")
        return "\n".join(lines)


@contextlib.contextmanager
def _cpu_alarm(limit: float) -> Iterator[bool]:
    """Let :func:`_arm` interrupt a target after ``limit`` CPU seconds; yields False where it cannot."""
    if limit <= 0 or threading.current_thread() is not threading.main_thread():
        yield False
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Hang()

    previous = signal.signal(signal.SIGVTALRM, interrupt)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def _outcome(result: object) -> str:
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {_VARYING.sub('#', str(result))[:120]}"
    return f"ok {repr(result)[:120]}"  # targets return short signatures of what they parsed


def _crash_key(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


def run_one(target: Target, data: bytes, limit: float, alarm: bool) -> tuple[object, Finding | None]:
    """Run one input; the result (or documented exception) and a finding if it crashed or hung."""
    try:
        if alarm:
            signal.setitimer(signal.ITIMER_VIRTUAL, limit)
        try:
            return target.check(data), None
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_VIRTUAL, 0)
    except Hang:
        return None, Finding("hang", "hang", f"ran longer than {limit:g} s", data)
    except Exception as exc:
        key = _crash_key(exc)
        details = "".join(traceback.format_exception(exc)).strip()
        return None, Finding("crash", key, f"{key}: {str(exc)[:200]}", data, details)


def _save(finding: Finding, out_dir: Path, target: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(finding.data).hexdigest()[:16]
    path = out_dir / f"{target}-{finding.kind}-{digest}.bin"
    path.write_bytes(finding.data)
    path.with_suffix(".txt").write_text(f"{target} {finding.kind}: {finding.summary}\n\n{finding.details}\n")
    finding.path = path


def fuzz(
    target: Target,
    *,
    seconds: float = 10.0,
    max_inputs: int | None = None,
    seed: int | None = None,
    time_limit: float = 1.0,
    out_dir: Path | None = None,
    extra_seeds: list[bytes] | None = None,
) -> FuzzReport:
    """Fuzz ``target`` for ``seconds`` (or ``max_inputs`` inputs); findings are saved under ``out_dir``."""
    rng = random.Random(seed)
    mutator = Mutator(rng, target.max_size)
    corpus = [bytes(s) for s in target.seeds()] + list(extra_seeds or [])
    if not corpus:
        corpus = [b""]
    report = FuzzReport(target.name)
    seen: set[str] = set()
    keys: set[str] = set()
    started = time.monotonic()
    deadline = started + seconds
    with _cpu_alarm(time_limit) as alarm:
        queue = list(corpus)  # the seeds themselves run first
        while True:
            if max_inputs is not None and report.executions >= max_inputs:
                break
            if report.executions % 64 == 0 and time.monotonic() >= deadline:
                break
            data = queue.pop() if queue else mutator.mutate(rng.choice(corpus), corpus)
            result, finding = run_one(target, data, time_limit, alarm)
            report.executions += 1
            if finding is not None:
                if finding.key not in keys:
                    keys.add(finding.key)
                    if out_dir is not None:
                        _save(finding, out_dir, target.name)
                    report.findings.append(finding)
                continue
            outcome = _outcome(result)
            if outcome not in seen:
                seen.add(outcome)
                if len(corpus) < MAX_CORPUS:
                    corpus.append(data)
    report.seconds = time.monotonic() - started
    report.corpus = len(corpus)
    report.outcomes = len(seen)
    return report


def replay(target: Target, data: bytes, time_limit: float = 1.0) -> Finding | None:
    """Run one saved input again: the finding it still causes, or None once it is fixed."""
    with _cpu_alarm(time_limit) as alarm:
        return run_one(target, data, time_limit, alarm)[1]
