"""Network namespaces for tests: hosts behind NATs (iptables MASQUERADE) on one machine.

A :class:`NetLab` makes namespaces, veth links between them, routes and NAT rules, runs conf processes
inside them, and deletes every namespace it made when it closes (its rules go with them). Names carry
the test process's PID, so that tests running at the same time never meet. It needs root, ``ip`` and
``iptables``: :func:`netns_unavailable` says why not, for a ``skipif``.

:func:`two_nats` builds the usual picture: a server on a "public" network, and clients each behind its
own NAT router.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conf_cli.testing.processes import ConfProcess, Event, conf_command, test_home

TIMEOUT = 10.0


@functools.cache
def netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None if they can: one is really made and
    deleted, since listing them succeeds without the privileges that making one needs."""
    if not shutil.which("ip") or not shutil.which("iptables"):
        return "ip or iptables is not installed"
    name = f"confprobe{os.getpid()}"
    made = subprocess.run(
        ["ip", "netns", "add", name], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip() or 'ip netns add failed'}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=TIMEOUT, check=False)
    return None


def run(*args: str) -> None:
    """Run a command that must succeed; its stderr is in the error if it does not."""
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")


def inside(ns: str, *args: str) -> list[str]:
    """A command line that runs ``args`` inside network namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *args]


def conf_in(ns: str, args: Sequence[str], env: dict[str, str] | None = None) -> ConfProcess:
    """Start ``conf ARGS`` inside network namespace ``ns`` with the tests' temporary ``CONF_HOME``; the
    caller stops it (by PID, ``stop()``)."""
    process = subprocess.Popen(
        inside(ns, *conf_command(), *args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "CONF_HOME": test_home(), **(env or {})},
    )
    return ConfProcess(process)


@dataclass
class NetLab:
    """Namespaces made for one test; use it as a context manager (everything goes at the end)."""

    prefix: str = field(default_factory=lambda: f"conf{os.getpid()}")
    namespaces: list[str] = field(default_factory=list)
    processes: list[ConfProcess] = field(default_factory=list)
    etc: list[Path] = field(default_factory=list)
    """Folders under /etc/netns made for the namespaces (their own /etc/hosts), removed at close."""

    def __enter__(self) -> NetLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ns(self, short: str) -> str:
        """Make namespace ``short`` (its loopback up); return its full name."""
        name = f"{self.prefix}-{short}"
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=TIMEOUT, check=False)
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def link(self, a: str, a_dev: str, a_addr: str, b: str, b_dev: str, b_addr: str) -> None:
        """A veth pair between namespaces ``a`` and ``b``, with addresses (CIDR), both ends up."""
        run("ip", "link", "add", a_dev, "netns", a, "type", "veth", "peer", "name", b_dev, "netns", b)
        for ns, dev, addr in ((a, a_dev, a_addr), (b, b_dev, b_addr)):
            run("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")

    def hosts(self, ns: str, lines: Sequence[str]) -> None:
        """Give ``ns`` an /etc/hosts of its own, ``ADDRESS NAME`` ``lines`` after localhost: names for the
        lab's addresses without DNS (``ip netns exec`` mounts /etc/netns/NS/hosts over /etc/hosts)."""
        folder = Path("/etc/netns") / ns
        folder.mkdir(parents=True, exist_ok=True)
        self.etc.append(folder)
        (folder / "hosts").write_text("127.0.0.1 localhost\n" + "".join(f"{line}\n" for line in lines))

    def route(self, ns: str, *args: str) -> None:
        run("ip", "-n", ns, "route", "add", *args)

    def forward(self, ns: str) -> None:
        """Make ``ns`` a router."""
        run(*self.inside(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"))

    def masquerade(self, ns: str, out_dev: str) -> None:
        """Make ``ns`` a NAT: what leaves by ``out_dev`` takes that interface's address."""
        self.forward(ns)
        self.iptables(ns, "-t", "nat", "-A", "POSTROUTING", "-o", out_dev, "-j", "MASQUERADE")

    def iptables(self, ns: str, *args: str) -> None:
        run(*self.inside(ns, "iptables", *args))

    @staticmethod
    def inside(ns: str, *args: str) -> list[str]:
        return inside(ns, *args)

    def conf(self, ns: str, args: Sequence[str], env: dict[str, str] | None = None) -> ConfProcess:
        """Start ``conf ARGS`` in ``ns`` (machine mode is the caller's to ask); stopped at close."""
        started = conf_in(ns, args, env)
        self.processes.append(started)
        return started

    def python(self, ns: str, args: Sequence[str]) -> ConfProcess:
        """Start ``python ARGS`` (this interpreter) in ``ns``, e.g. ``-m conf_cli.testing.ssdp``; its stdout
        lines are JSON events as a conf process's are; stopped at close."""
        process = subprocess.Popen(
            inside(ns, sys.executable, *args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        started = ConfProcess(process)
        self.processes.append(started)
        return started

    def close(self) -> None:
        try:
            for process in self.processes:
                process.stop()
        finally:
            for ns in self.namespaces:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=TIMEOUT, check=False)
            self.namespaces.clear()
            for folder in self.etc:
                shutil.rmtree(folder, ignore_errors=True)
            self.etc.clear()


@dataclass(frozen=True)
class NatPicture:
    """What :func:`two_nats` built: namespace names and addresses."""

    server: str
    server_ip: str
    wan: str
    clients: tuple[str, ...]
    routers: tuple[str, ...]
    public_ips: tuple[str, ...]  # each router's address on the public side


def two_nats(lab: NetLab, count: int = 2) -> NatPicture:
    """A server on a public network and ``count`` clients, each behind its own MASQUERADE router.

    A ``wan`` namespace routes between the server's network (10.88.0.0/24, server 10.88.0.2) and each
    router's public network (10.88.1N.0/24, router 10.88.1N.1); client N sits at 10.88.2N.2 behind
    router N (10.88.2N.1). Rules added to the ``wan``'s FORWARD chain cut paths between the NATs.
    """
    wan = lab.ns("wan")
    server = lab.ns("srv")
    lab.forward(wan)
    lab.link(wan, "w0", "10.88.0.1/24", server, "s0", "10.88.0.2/24")
    lab.route(server, "default", "via", "10.88.0.1")
    clients, routers, public = [], [], []
    for n in range(1, count + 1):
        router, client = lab.ns(f"r{n}"), lab.ns(f"c{n}")
        lab.link(wan, f"w{n}", f"10.88.1{n}.254/24", router, "up0", f"10.88.1{n}.1/24")
        lab.link(router, "down0", f"10.88.2{n}.1/24", client, "eth0", f"10.88.2{n}.2/24")
        lab.route(router, "default", "via", f"10.88.1{n}.254")
        lab.route(client, "default", "via", f"10.88.2{n}.1")
        lab.masquerade(router, "up0")
        clients.append(client)
        routers.append(router)
        public.append(f"10.88.1{n}.1")
    return NatPicture(server, "10.88.0.2", wan, tuple(clients), tuple(routers), tuple(public))


def call_across_nats(
    lab: NetLab, picture: NatPicture, share: Sequence[str]
) -> tuple[ConfProcess, ConfProcess, ConfProcess, Event]:
    """``conf server`` (stats twice a second) in the picture's server namespace, bob behind the second NAT
    listening and accepting (``conf call --listen --accept``), then ada behind the first calling him,
    each sharing what ``share`` says (``--share pattern ...``): the server, ada, bob and bob's ``online``
    (the address the server saw him at)."""
    server = lab.conf(
        picture.server,
        ["server", "--json", "--host", picture.server_ip, "--port", "0", "--stats-interval", "0.5"],
    )
    url = server.expect("server_started")["urls"][0]
    common = ["--json", "--server", url, *share]
    bob = lab.conf(picture.clients[1], ["call", "--listen", "--accept", "--name", "bob", *common])
    online = bob.expect("online", timeout=20)
    ada = lab.conf(picture.clients[0], ["call", "bob", "--name", "ada", *common])
    return server, ada, bob, online
