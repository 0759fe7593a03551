"""A three-namespace network lab: client -- router -- monitor.

::

    client ns            router ns                         monitor ns
    c0 10.77.0.1/30 ---- r0 10.77.0.2/30  r1 10.77.0.5/30 ---- m0 10.77.0.6/30

The router forwards between the two links. Shaping lives on the router's egress
interfaces (``r0`` = downstream towards the client, ``r1`` = upstream towards the
monitor): a forwarding hop, so the queue that builds up there is a real bottleneck
queue and not a local qdisc that TCP small queues would keep short on the sender.

Loss is injected with nftables on the *receiving* side's input hook (a drop at the
sender's output would make ``sendto`` fail, which no real network does), and only for
the probe's UDP ports, so TCP throughput is untouched. Each loss rule has two named
counters: ``seen_<dir>`` (packets that reached the hook) and ``drop_<dir>`` (packets
dropped there); drop / seen is the loss that really happened on the path.

Namespace names carry the pid and a per-process counter, so parallel runs and leftovers
of a crashed run never clash. Interfaces are created directly inside the namespaces, so
their names cannot clash with the host's. ``Lab.close()`` kills every process the lab
started (by pid) and deletes the namespaces; it never raises.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

PREFIX = "srlab"
_counter = itertools.count()

CLIENT_ADDR = "10.77.0.1"
ROUTER_CLIENT_ADDR = "10.77.0.2"
ROUTER_MONITOR_ADDR = "10.77.0.5"
MONITOR_ADDR = "10.77.0.6"

REQUIRED_TOOLS = ("ip", "tc", "nft", "irtt", "iperf3")

# The host's list of congestion controls unprivileged sockets and namespaces may choose. A lab
# that asks for one the host does not allow adds it for its lifetime; the first lab to do so
# records the original value, the last one to close writes it back (several labs at once:
# pytest workers). The holders live in a state file, so a crashed run's value is still restored.
ALLOWED_CC = "/proc/sys/net/ipv4/tcp_allowed_congestion_control"
AVAILABLE_CC = "/proc/sys/net/ipv4/tcp_available_congestion_control"
CC_STATE = "/tmp/srlab-allowed-congestion.json"


class LabError(RuntimeError):
    """The lab could not be built or a command inside it failed."""


def missing_requirements() -> list[str]:
    """Why the lab cannot run here (empty when it can): not root, tools missing."""
    problems = []
    if os.geteuid() != 0:
        problems.append("needs root (network namespaces, tc, nftables)")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        problems.append(
            "missing tools: " + ", ".join(missing) + " (apt-get install -y irtt iperf3 nftables iproute2)"
        )
    return problems


def _run(args: Sequence[str], *, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@dataclass(frozen=True)
class Tbf:
    """A token-bucket shaper: ``rate_kbit`` kbit/s, ``burst_bytes`` bucket, ``latency_ms`` queue depth.

    tbf's ``latency`` sets the queue limit to rate * latency + burst: the longest time a packet
    can wait in the queue. A deep queue (hundreds of ms) is bufferbloat; a shallow one drops early.
    """

    rate_kbit: int
    latency_ms: float
    burst_bytes: int | None = None

    def tc_args(self) -> list[str]:
        # The bucket must hold at least a couple of full frames, and with hrtimers about 4 ms
        # of traffic keeps the shaper accurate at these rates.
        burst = self.burst_bytes or max(2 * 1514, self.rate_kbit * 1000 // 8 // 250)
        return ["tbf", "rate", f"{self.rate_kbit}kbit", "burst", str(burst), "latency", f"{self.latency_ms}ms"]


@dataclass
class Namespace:
    name: str

    def cmd(self, args: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, args: Sequence[str], *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return _run(self.cmd(args), check=check, timeout=timeout)

    def nft(self, script: str) -> None:
        proc = subprocess.run(self.cmd(["nft", "-f", "-"]), input=script, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise LabError(f"nft in {self.name} failed: {proc.stderr.strip()}\n{script}")


@contextlib.contextmanager
def _cc_state_locked():
    with open(CC_STATE + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(CC_STATE) as f:
                state = json.load(f)
        except (OSError, ValueError):  # none yet (or a torn file: then nobody holds)
            state = {}
        # Holders whose process is gone (a crashed run) no longer hold anything.
        state["holders"] = [h for h in state.get("holders", []) if _pid_alive(_holder_pid(h))]
        yield state
        if state["holders"]:
            with open(CC_STATE, "w") as f:
                json.dump(state, f)
        else:
            if "original" in state:
                _write_allowed(state["original"])
            with contextlib.suppress(FileNotFoundError):
                os.remove(CC_STATE)


def _holder_pid(holder: str) -> int:
    try:
        return int(holder.split("-")[1])  # a lab's tag: srlab-<pid>-<n>
    except (IndexError, ValueError):
        return -1


def host_allowed_congestion() -> list[str]:
    """The congestion controls this host lets a namespace choose (what the lab's reports say)."""
    with open(ALLOWED_CC) as f:
        return f.read().split()


def _write_allowed(value: str) -> None:
    with open(ALLOWED_CC, "w") as f:
        f.write(value)


def allow_congestion(algorithm: str, holder: str) -> None:
    """Let namespaces choose ``algorithm`` until ``disallow_congestion(holder)``: added to the
    host's allowed list if missing (LabError when the kernel does not have it)."""
    with open(AVAILABLE_CC) as f:
        available = f.read().split()
    if algorithm not in available:
        raise LabError(f"congestion control {algorithm!r} is not available in this kernel (it has: {' '.join(available)})")
    with _cc_state_locked() as state:
        allowed = host_allowed_congestion()
        # The first holder records the host's own list; a crashed run's record stays the one.
        state.setdefault("original", " ".join(allowed))
        if algorithm not in allowed:
            try:
                _write_allowed(" ".join([*allowed, algorithm]))
            except OSError as exc:
                raise LabError(f"cannot add {algorithm} to {ALLOWED_CC} ({exc}); the host allows: {' '.join(allowed)}") from None
        state["holders"].append(holder)


def disallow_congestion(holder: str) -> None:
    """Give up ``holder``'s claim; the last holder restores the host's original allowed list."""
    with _cc_state_locked() as state:
        state["holders"] = [h for h in state["holders"] if h != holder]


@dataclass
class Lab:
    """client -- router -- monitor namespaces with helpers for shaping, loss and processes.

    ``congestion``: the TCP congestion control of the client namespace (the sender of the
    upload), e.g. "cubic" as Linux, Windows and macOS clients run it; None inherits the host's
    default. The monitor namespace keeps the host's default either way.
    """

    client: Namespace
    router: Namespace
    monitor: Namespace
    processes: list[subprocess.Popen] = field(default_factory=list)
    _loss: dict[str, str] = field(default_factory=dict)  # direction -> namespace name
    congestion: str | None = None
    _cc_holder: str | None = None

    @property
    def namespaces(self) -> list[Namespace]:
        return [self.client, self.router, self.monitor]

    # --- construction -------------------------------------------------------------------

    @classmethod
    def create(cls, congestion: str | None = None) -> Lab:
        tag = f"{PREFIX}-{os.getpid()}-{next(_counter)}"
        lab = cls(Namespace(f"{tag}-c"), Namespace(f"{tag}-r"), Namespace(f"{tag}-m"), congestion=congestion)
        try:
            lab._build()
            if congestion is not None:
                lab._set_congestion(congestion, tag)
        except BaseException:
            lab.close()
            raise
        return lab

    def _build(self) -> None:
        for ns in self.namespaces:
            _run(["ip", "netns", "add", ns.name])
            ns.run(["ip", "link", "set", "lo", "up"])
        c, r, m = self.client.name, self.router.name, self.monitor.name
        _run(["ip", "link", "add", "c0", "netns", c, "type", "veth", "peer", "name", "r0", "netns", r])
        _run(["ip", "link", "add", "r1", "netns", r, "type", "veth", "peer", "name", "m0", "netns", m])
        self.client.run(["ip", "addr", "add", f"{CLIENT_ADDR}/30", "dev", "c0"])
        self.router.run(["ip", "addr", "add", f"{ROUTER_CLIENT_ADDR}/30", "dev", "r0"])
        self.router.run(["ip", "addr", "add", f"{ROUTER_MONITOR_ADDR}/30", "dev", "r1"])
        self.monitor.run(["ip", "addr", "add", f"{MONITOR_ADDR}/30", "dev", "m0"])
        for ns, dev in ((self.client, "c0"), (self.router, "r0"), (self.router, "r1"), (self.monitor, "m0")):
            ns.run(["ip", "link", "set", dev, "up"])
        self.client.run(["ip", "route", "add", "default", "via", ROUTER_CLIENT_ADDR])
        self.monitor.run(["ip", "route", "add", "default", "via", ROUTER_MONITOR_ADDR])
        self.router.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])

    def _set_congestion(self, algorithm: str, tag: str) -> None:
        # A namespace may only default to an algorithm the host allows ("Operation not
        # permitted" otherwise): allow it for the lab's lifetime, then set it in the namespace.
        self._cc_holder = tag
        allow_congestion(algorithm, tag)
        self.client.run(["sysctl", "-qw", f"net.ipv4.tcp_congestion_control={algorithm}"])
        if self.congestion_control != algorithm:
            raise LabError(f"the client namespace runs {self.congestion_control}, not {algorithm}")

    @property
    def congestion_control(self) -> str:
        """TCP congestion control of the client namespace (the upload's sender).

        It decides how deep a shaper's queue gets under load (cubic fills it, BBR mostly
        keeps it short), so reports carry it.
        """
        out = self.client.run(["sysctl", "-n", "net.ipv4.tcp_congestion_control"], check=False)
        return out.stdout.strip() or "unknown"

    def congestion_report(self) -> dict[str, object]:
        """What the reports say about congestion control: per namespace, and what the host allows."""
        monitor = self.monitor.run(["sysctl", "-n", "net.ipv4.tcp_congestion_control"], check=False).stdout.strip()
        return {"client": self.congestion_control, "monitor": monitor or "unknown", "host_allowed": host_allowed_congestion()}

    # --- shaping ------------------------------------------------------------------------

    def shape(self, direction: str, tbf: Tbf) -> None:
        """Shape ``down`` (router -> client) or ``up`` (router -> monitor) with a tbf."""
        dev = {"down": "r0", "up": "r1"}[direction]
        self.router.run(["tc", "qdisc", "replace", "dev", dev, "root", *tbf.tc_args()])

    def qdisc_stats(self, direction: str) -> str:
        dev = {"down": "r0", "up": "r1"}[direction]
        return self.router.run(["tc", "-s", "qdisc", "show", "dev", dev]).stdout

    # --- loss ---------------------------------------------------------------------------

    def add_loss(
        self, direction: str, percent: float, ports: Sequence[int], udp_length: tuple[int, int] | None = None, *, per_port: bool = False
    ) -> None:
        """Drop ``percent`` % of the probe's UDP packets at random, at the receiver's input.

        ``up``: at the monitor, UDP to one of ``ports`` (the reflector's, or irtt's server).
        ``down``: at the client, UDP from one of ``ports`` (the reflector's or the relay's).
        ``percent`` has a resolution of 0.01 %. ``udp_length`` (UDP header included, inclusive)
        narrows the rule and its counters to packets of that size: inside an encrypted WebRTC
        flow the probes are the only packets of their length, while handshakes, SCTP
        acknowledgements and ICE checks share their ports. ``per_port``: each port gets its own
        rule and counters as well (``seen_<dir>_<port>``, ``drop_<dir>_<port>``), for flows told
        apart by the monitor's port (one WebRTC stream per port).
        """
        if direction not in ("up", "down"):
            raise ValueError(direction)
        ns = self.monitor if direction == "up" else self.client
        match = "dport" if direction == "up" else "sport"
        port_set = "{ " + ", ".join(str(p) for p in ports) + " }"
        if udp_length is not None:
            port_set += f" udp length {udp_length[0]}-{udp_length[1]}"
        threshold = round(percent * 100)
        table = f"srlab_{direction}"
        length = "" if udp_length is None else f" udp length {udp_length[0]}-{udp_length[1]}"
        selectors = [(port_set, direction)]
        if per_port:
            selectors = [(f"{port}{length}", f"{direction}_{port}") for port in ports]
        counters = "\n".join(f"counter seen_{name} {{ }}\ncounter drop_{name} {{ }}" for _, name in selectors)
        rules = []
        for selector, name in selectors:
            rules.append(f'iifname != "lo" udp {match} {selector} counter name "seen_{name}"')
            rules.append(f'iifname != "lo" udp {match} {selector} numgen random mod 10000 < {threshold} counter name "drop_{name}" drop')
        ns.nft(
            f"""
            table inet {table} {{
                {counters}
                chain input {{
                    type filter hook input priority 0; policy accept;
                    {chr(10).join(rules)}
                }}
            }}
            """
        )
        self._loss[direction] = ns.name

    def loss_counters(self, direction: str, port: int | None = None) -> tuple[int, int]:
        """(packets seen, packets dropped) at the receiver's input for ``direction`` (of one
        port's flow, for a rule made with ``per_port``)."""
        values = self.all_loss_counters(direction)
        if port is None and f"seen_{direction}" not in values:  # per-port rules: their sum
            return tuple(sum(v for k, v in values.items() if k.startswith(f"{kind}_{direction}_")) for kind in ("seen", "drop"))  # type: ignore[return-value]
        name = direction if port is None else f"{direction}_{port}"
        return values[f"seen_{name}"], values[f"drop_{name}"]

    def all_loss_counters(self, direction: str) -> dict[str, int]:
        """Every counter of ``direction``'s loss table, by name (packets)."""
        ns = self.monitor if direction == "up" else self.client
        out = ns.run(["nft", "-j", "list", "counters", "table", "inet", f"srlab_{direction}"]).stdout
        values = {}
        for item in json.loads(out)["nftables"]:
            counter = item.get("counter")
            if counter:
                values[counter["name"]] = counter["packets"]
        return values

    def reset_loss_counters(self) -> None:
        for direction in self._loss:
            ns = self.monitor if direction == "up" else self.client
            for name in self.all_loss_counters(direction):
                ns.run(["nft", "reset", "counter", "inet", f"srlab_{direction}", name])

    # --- processes ----------------------------------------------------------------------

    def start(self, ns: Namespace, args: Sequence[str], *, log_path: str | None = None, **kwargs) -> subprocess.Popen:
        """Start a long-running process inside ``ns``; the lab stops it on close."""
        if log_path is not None:
            out = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed below
            kwargs.setdefault("stdout", out)
            kwargs.setdefault("stderr", subprocess.STDOUT)
        try:
            proc = subprocess.Popen(ns.cmd(args), start_new_session=True, **kwargs)
        finally:
            if log_path is not None:
                out.close()
        self.processes.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 5) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        return proc.returncode

    # --- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process the lab started and delete its namespaces. Never raises."""
        for proc in reversed(self.processes):
            try:
                self.stop(proc, timeout=3)
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
        for ns in self.namespaces:
            # Anything still running inside one of our namespaces was started by this lab
            # (a child of a child): end it by pid so the namespace really goes away.
            try:
                pids = _run(["ip", "netns", "pids", ns.name], check=False).stdout.split()
            except Exception:  # noqa: BLE001
                pids = []
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            try:
                _run(["ip", "netns", "del", ns.name], check=False)
            except Exception:  # noqa: BLE001
                pass
        if self._cc_holder is not None:
            try:
                disallow_congestion(self._cc_holder)
            except Exception:  # noqa: BLE001
                pass
            self._cc_holder = None


def existing_lab_namespaces() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX + "-")]


def remove_stale_namespaces() -> list[str]:
    """Delete lab namespaces left behind by runs whose process is gone; returns their names."""
    removed = []
    for name in existing_lab_namespaces():
        try:
            pid = int(name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        _run(["ip", "netns", "del", name], check=False)
        removed.append(name)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; LabError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


_LINK_POLLER = r"""
import sys, time
devs = sys.argv[1:]
files = [open(f"/sys/class/net/{d}/statistics/tx_bytes", "rb", buffering=0) for d in devs]
while True:
    values = []
    for f in files:
        f.seek(0)
        values.append(f.read().strip().decode())
    print(time.time_ns(), *values, flush=True)
    time.sleep(0.05)
"""


@dataclass
class LinkPoller:
    """Samples the router's transmit byte counters every 50 ms (wall-clock ns, per device).

    Tells when bulk traffic really flowed in each direction, to line up a product's load
    phases with a reference measurement running at the same time.
    """

    lab: Lab
    proc: subprocess.Popen | None = None
    devices: tuple[str, ...] = ("r0", "r1")

    def start(self, python: str) -> None:
        self.proc = self.lab.start(
            self.lab.router, [python, "-c", _LINK_POLLER, *self.devices], stdout=subprocess.PIPE, text=True
        )

    def stop(self) -> dict[str, list[tuple[int, int]]]:
        assert self.proc is not None
        self.lab.stop(self.proc)
        out = self.proc.stdout.read() if self.proc.stdout else ""
        series: dict[str, list[tuple[int, int]]] = {d: [] for d in self.devices}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) != 1 + len(self.devices):
                continue
            for device, value in zip(self.devices, parts[1:]):
                series[device].append((int(parts[0]), int(value)))
        return series


def busy_intervals(
    samples: list[tuple[int, int]], threshold_bps: float, *, merge_gap_s: float = 0.3, min_length_s: float = 0.5
) -> list[tuple[int, int]]:
    """Wall-clock (start_ns, end_ns) spans in which a byte counter grew faster than ``threshold_bps``.

    Spans closer than ``merge_gap_s`` are one span (a queue that empties for a moment); spans
    shorter than ``min_length_s`` are dropped (the last few segments of a closed connection).
    """
    raw: list[list[int]] = []
    for (t0, b0), (t1, b1) in zip(samples, samples[1:]):
        if t1 > t0 and (b1 - b0) * 8 / ((t1 - t0) / 1e9) > threshold_bps:
            if raw and t0 - raw[-1][1] <= merge_gap_s * 1e9:
                raw[-1][1] = t1
            else:
                raw.append([t0, t1])
    return [(a, b) for a, b in raw if b - a >= min_length_s * 1e9]


def rate_between(samples: list[tuple[int, int]], start_ns: int, end_ns: int) -> float | None:
    """Average bit/s of a byte counter between two wall-clock instants (nearest samples inside)."""
    inside = [(t, b) for t, b in samples if start_ns <= t <= end_ns]
    if len(inside) < 2 or inside[-1][0] == inside[0][0]:
        return None
    (t0, b0), (t1, b1) = inside[0], inside[-1]
    return (b1 - b0) * 8 / ((t1 - t0) / 1e9)
