"""The recorder processes' edge, with real processes that misbehave as a recorder might: one that never
gets into the meeting (killed at the start timeout: 504), one that fails at once (502 with its own
error line), one that ignores SIGTERM (killed at the stop timeout, and still reported)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from conf_cli.errors import RequestRefused
from conf_cli.plugin.registry import registry
from conf_cli.server.edge import Server
from conf_cli.server.hub import Hub
from conf_cli.server.recorders import Recorders
from conf_cli.server.recordings import Recordings
from conf_cli.server.tokens import TokenKey


def recorders(tmp_path: Path, program: str, *, limit: float = 1.0) -> Recorders:
    hub = Hub(token_key=TokenKey.generate())
    hub.journal.enabled = True
    return Recorders(
        Server(registry(), hub),
        tmp_path,
        url="tcp://127.0.0.1:9",
        fingerprint=None,
        registry=Recordings(start_timeout=limit),
        command=[sys.executable, "-c", program],  # conf's own arguments follow, as for conf record
        stop_timeout=limit,
    )


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_a_recorder_that_never_gets_in_is_stopped_at_the_start_timeout(tmp_path: Path) -> None:
    edge = recorders(tmp_path, "import time; time.sleep(120)")
    begun = time.monotonic()
    with pytest.raises(RequestRefused) as refused:
        await edge.start("k7m-q2xw-9fd")
    assert refused.value.code == "recorder_timeout" and "within 1 s" in str(refused.value)
    assert time.monotonic() - begun < 10
    assert edge.running == {} and edge.registry.active == {}  # the slot is free again
    assert edge.server.hub.journal.take() == []  # it never recorded: no recording_finished
    await edge.close()


async def test_a_recorder_that_fails_at_once_says_why(tmp_path: Path) -> None:
    program = "import sys; print('conf: cannot reach tcp://127.0.0.1:9', file=sys.stderr); sys.exit(1)"
    edge = recorders(tmp_path, program, limit=20.0)
    with pytest.raises(RequestRefused) as refused:
        await edge.start("k7m-q2xw-9fd")
    assert refused.value.code == "recorder_failed" and "cannot reach tcp://127.0.0.1:9" in str(refused.value)
    await edge.close()


async def test_a_recorder_ignoring_sigterm_is_killed_at_the_stop_timeout_and_reported(
    tmp_path: Path,
) -> None:
    program = (
        "import json, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print(json.dumps({'type': 'joined', 'name': 'server admin (recorder)'}), flush=True)\n"
        "time.sleep(120)\n"
    )
    edge = recorders(tmp_path, program, limit=10.0)
    edge.stop_timeout = 1.0
    inside, view = await edge.start("k7m-q2xw-9fd", fmt="hls", layout="speaker", chosen="board")
    assert inside and view["state"] == "recording" and view["file"] == "recordings/board"
    pid = view["pid"]
    begun = time.monotonic()
    done = await edge.stop("k7m-q2xw-9fd")
    assert time.monotonic() - begun < 8 and gone(pid)
    assert done["reason"] == "stopped" and done["file"] == "recordings/board" and done["bytes"] == 0
    [happened] = edge.server.hub.journal.take()
    assert happened.event == "recording_finished" and happened.fields == {
        k: v for k, v in done.items() if k != "meeting"
    }
    with pytest.raises(RequestRefused) as refused:
        await edge.stop("k7m-q2xw-9fd")
    assert refused.value.code == "not_recording"
    await edge.close()


async def test_closing_stops_every_recorder_by_its_pid(tmp_path: Path) -> None:
    program = "import json, time\nprint(json.dumps({'type': 'joined'}), flush=True)\ntime.sleep(120)\n"
    edge = recorders(tmp_path, program, limit=10.0)
    pids = [(await edge.start(meeting))[1]["pid"] for meeting in ("aaa-aaaa-aaa", "bbb-bbbb-bbb")]
    await edge.close()
    await asyncio.sleep(0)
    assert all(gone(pid) for pid in pids)
    reasons = [h.fields["reason"] for h in edge.server.hub.journal.take()]
    assert reasons == ["server_stopped", "server_stopped"]
