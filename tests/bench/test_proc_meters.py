"""The bench's CPU and run-queue meters (/proc): a thread is either on a core, waiting for one, or asleep."""

from __future__ import annotations

import os
import time

from conf_cli.bench.proc import ThreadMeter, thread_times, wait_seconds


def test_a_busy_thread_is_running_or_waiting_for_a_core_all_the_time() -> None:
    meter = ThreadMeter()
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass
    cpu, waiting = meter.stop()
    assert waiting is not None
    assert 80 <= cpu + waiting <= 105  # however busy the host: what it did not run, it waited


def test_a_sleeping_thread_neither_runs_nor_waits() -> None:
    meter = ThreadMeter()
    time.sleep(0.3)
    cpu, waiting = meter.stop()
    assert waiting is not None
    assert cpu + waiting < 20


def test_waits_are_read_per_thread_and_per_process() -> None:
    times = thread_times()
    assert times is not None and times[0] > 0 and times[1] >= 0
    waited = wait_seconds(os.getpid())
    assert waited is not None and waited >= times[1]  # the process's threads include this one
    assert wait_seconds(2**22 + 12345) is None  # no such process


def test_a_niced_generator_process_runs_that_much_nicer_than_the_bench() -> None:
    # conf bench --generator-nice N: the generator's processes yield the cores to a server on this machine
    from conf_cli.bench.generator import GeneratorProcess

    base = os.getpriority(os.PRIO_PROCESS, 0)
    plain = GeneratorProcess("conf_cli.bench.worker", None)
    niced = GeneratorProcess("conf_cli.bench.worker", None, nice=7)
    try:
        assert os.getpriority(os.PRIO_PROCESS, plain.process.pid) == base
        assert os.getpriority(os.PRIO_PROCESS, niced.process.pid) == min(19, base + 7)
    finally:
        plain.stop()
        niced.stop()
