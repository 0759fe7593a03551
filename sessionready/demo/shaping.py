"""A shaped, lossy link for the demo's client agent: a network namespace behind a veth pair,
a tbf rate limit each way and nftables random loss on the client's receiving side.

::

    this machine (monitor, therapist's agent, dashboard)      namespace srdemo-<pid>
    srdemo<pid> 198.18.N.1/30  ---- veth, tbf 8 Mbit/s each way ----  c0 198.18.N.2/30 (client's agent)

The addresses come from 198.18.0.0/15, the block reserved for network benchmarks (RFC 2544),
so they do not clash with a real network; a /30 that a route or address on this machine
already covers is skipped. The monitor listens on the host side of the veth only, never on a
public interface. Loss is dropped on the client's input hook (a drop at the sender would make
``sendto`` fail, which no real network does), for UDP from the monitor's port only: the
probe streams lose packets, HTTP keeps working. The rule's counters, ``seen`` and
``dropped``, are the truth about what the link did.

Everything lives in the namespace or on the veth, so deleting the namespace (``close``) undoes
it all; a namespace left by a demo that was killed is removed at the next start.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PREFIX = "srdemo"
TOOLS = ("ip", "tc", "nft", "openssl")
RATE_MBIT = 8
LOSS_PERCENT = 5
QUEUE_MS = 50  # tbf's queue depth: a modest home router
CLIENT_IF = "c0"
SUBNETS = ipaddress.ip_network("198.18.0.0/15")


class ShapingError(RuntimeError):
    """A command that builds the link failed; the message is one sentence."""


def unavailable(requested: bool) -> str | None:
    """Why the link cannot be shaped here, as the end of a sentence; None when it can."""
    if not requested:
        return "--no-shaping was given"
    if not sys.platform.startswith("linux"):
        return "it needs Linux network namespaces"
    if os.geteuid() != 0:
        return "it needs root (network namespaces, tc and nftables); run the demo as root to see a risky session"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found (Debian: apt-get install iproute2 nftables openssl)"
    return None


@dataclass
class ShapedLink:
    namespace: str
    host_interface: str
    host_address: str  # where the monitor listens
    client_address: str
    log_path: Path

    @classmethod
    def create(cls, monitor_port: int, log_path: Path) -> ShapedLink:
        """Build the namespace, veth, shapers and loss rule; on any failure undo it all and
        raise ShapingError."""
        pid = os.getpid()
        subnet = _free_subnet()
        host, client = (str(address) for address in list(subnet.hosts())[:2])
        link = cls(f"{PREFIX}-{pid}", f"{PREFIX}{pid}", host, client, log_path)
        try:
            link._build(subnet.prefixlen, monitor_port)
        except BaseException:
            link.close()
            raise
        return link

    def _build(self, prefix_len: int, monitor_port: int) -> None:
        ns, host_if = self.namespace, self.host_interface
        shaper = ["tbf", "rate", f"{RATE_MBIT}mbit", "burst", str(_burst_bytes()), "latency", f"{QUEUE_MS}ms"]
        self._run(["ip", "netns", "add", ns])
        self._run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", CLIENT_IF, "netns", ns])
        self._run(["ip", "addr", "add", f"{self.host_address}/{prefix_len}", "dev", host_if])
        self._run(["ip", "link", "set", host_if, "up"])
        self._run(["tc", "qdisc", "replace", "dev", host_if, "root", *shaper])  # towards the client
        self._run(self.command(["ip", "link", "set", "lo", "up"]))
        self._run(self.command(["ip", "addr", "add", f"{self.client_address}/{prefix_len}", "dev", CLIENT_IF]))
        self._run(self.command(["ip", "link", "set", CLIENT_IF, "up"]))
        # A default route, so the agent's machine sampler finds its link (and its traffic) on c0.
        self._run(self.command(["ip", "route", "add", "default", "via", self.host_address]))
        self._run(self.command(["tc", "qdisc", "replace", "dev", CLIENT_IF, "root", *shaper]))  # towards the monitor
        self._run(self.command(["nft", "-f", "-"]), input=_loss_rules(monitor_port))

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` run inside the client's namespace."""
        return ["ip", "netns", "exec", self.namespace, *args]

    def summary(self) -> str:
        return f"namespace {self.namespace}, {RATE_MBIT} Mbit/s each way, {LOSS_PERCENT} % of the probe packets to it lost"

    def close(self) -> None:
        """Delete the namespace (its veth, shapers and rules go with it). Never raises."""
        _delete_namespace(self.namespace)

    def _run(self, args: list[str], input: str | None = None) -> None:
        process = subprocess.run(args, input=input, capture_output=True, text=True, timeout=30, check=False)
        with self.log_path.open("a") as log:
            log.write(f"$ {' '.join(args)}\n{process.stdout}{process.stderr}")
        if process.returncode != 0:
            problem = (process.stderr.strip() or process.stdout.strip() or f"exit status {process.returncode}").splitlines()[0]
            raise ShapingError(f"'{' '.join(args[:4])} ...' failed ({problem})")


def _burst_bytes() -> int:
    # At least two full frames, and about 4 ms of traffic so tbf stays accurate (tests/lab).
    return max(2 * 1514, RATE_MBIT * 1_000_000 // 8 // 250)


def _loss_rules(monitor_port: int) -> str:
    threshold = LOSS_PERCENT * 10  # numgen mod 1000: a resolution of 0.1 %
    match = f'iifname "{CLIENT_IF}" udp sport {monitor_port}'
    return f"""
    table inet {PREFIX} {{
        counter seen {{ }}
        counter dropped {{ }}
        chain input {{
            type filter hook input priority 0; policy accept;
            {match} counter name "seen"
            {match} numgen random mod 1000 < {threshold} counter name "dropped" drop
        }}
    }}
    """


def _free_subnet() -> ipaddress.IPv4Network:
    """The first /30 of 198.18.0.0/15 that no route or address on this machine overlaps."""
    taken = []
    for args in (["ip", "-j", "-4", "route", "show", "table", "all"], ["ip", "-j", "-4", "addr", "show"]):
        output = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False).stdout
        for entry in json.loads(output or "[]"):
            if entry.get("dst") not in (None, "default"):
                taken.append(ipaddress.ip_network(entry["dst"], strict=False))
            for address in entry.get("addr_info", []):
                taken.append(ipaddress.ip_network(f"{address['local']}/{address['prefixlen']}", strict=False))
    for subnet in SUBNETS.subnets(new_prefix=30):
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise ShapingError("no free /30 left in 198.18.0.0/15 for the demo's link")


def _delete_namespace(name: str) -> None:
    """End whatever still runs in the namespace (only the demo's own children are ever there),
    then delete it. Never raises."""
    try:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=10, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def remove_stale() -> list[str]:
    """Delete ``srdemo-<pid>`` namespaces whose demo is gone (killed before it could clean up).
    Nothing to do, and nothing tried, where namespaces cannot be managed (not root, no ``ip``)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("ip") is None:
        return []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False).stdout
    removed = []
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        owner = name.removeprefix(f"{PREFIX}-")
        if owner == name or not owner.isdigit() or _demo_alive(int(owner)):
            continue
        _delete_namespace(name)
        removed.append(name)
    return removed


def _demo_alive(pid: int) -> bool:
    """Whether ``pid`` is a running ``sessionready demo`` (not a new process that reused the pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"demo" in command and any(b"sessionready" in part for part in command)
