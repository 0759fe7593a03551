"""A quiet machine for the few tests that time real queues, without stopping the others.

Tests marked ``quiet_machine`` compare timing through real queues with ground truth (iperf3 and
irtt under tbf shaping). Beside other workers on a 2-core machine, a descheduled irtt or iperf3
once made two streams that saw the same queue differ 2:1. Such tests used to wait for every other
test to end and hold new ones back: 3.5 minutes of a run with three workers idle and the CPU 90 %
idle, since the quiet tests themselves are mostly waiting on the queues they time.

Now every other process of the test runs on this machine (each pytest process, each process
a test started, which has pytest's ``PYTEST_CURRENT_TEST`` or xdist's ``PYTEST_XDIST_WORKER`` in
its environment, and everything they started) goes to the ``SCHED_IDLE`` scheduling class while quiet tests run, and back afterwards.
The kernel gives an idle-class thread a CPU only when no normal thread wants it, and a normal
thread that wakes preempts an idle-class one at once (``check_preempt_wakeup_fair`` in
kernel/sched/fair.c), so the quiet test's processes run as on an empty machine while the rest
use the CPU they leave. Threads and processes an idle-class thread creates inherit the class;
a rescan every half second catches the ones created by threads not yet moved.

Scheduling classes only rank threads of one group. With autogroups (``kernel.sched_autogroup_
enabled``, on in Debian's kernels) every session (``setsid``: a monitor started in a new session,
Chromium) is a group of its own, and groups share the CPU by their weight whatever their threads'
class: a group of idle-class threads still took 60 % of a core from a quiet test in another
group. So each autogroup that has only other tests' processes also gets nice 19 (weight 15
against 1024) for the same time; groups shared with the quiet test keep their nice.

And the kernel here is built with ``PREEMPT_NONE``: a thread inside a system call is not
preempted until it leaves it, whatever its class, so the system time of a browser-test load
(30-40 % of the CPU) still delayed the quiet test's wake-ups on the same CPU; beside Chromium
tests, one or two of twelve quiet tests failed in each of four rounds. So the others are also
kept off the first CPU (affinity) while quiet tests run: the quiet test's processes wake there
without waiting for anyone's system call, and can use the other CPUs when they need more.

Moving a thread back from ``SCHED_IDLE`` needs root (or an ``RLIMIT_NICE`` of 20): without it the
old way stays, file locks: every test holds a shared lock, a quiet test an exclusive one, and a
gate gives the exclusive side priority (flock alone would let a stream of shared holders starve
it). Quiet tests always exclude each other, in this run and in any other run on the machine.
"""

from __future__ import annotations

import fcntl
import os
import resource
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

QUIET_LOCKS = Path(tempfile.gettempdir()) / "sessionready-tests-quiet"  # .gate, .lock, .quiet
TEST_PROCESS_MARKS = (b"PYTEST_CURRENT_TEST=", b"PYTEST_XDIST_WORKER=")
RESCAN_S = 0.5


def can_demote() -> bool:
    """Whether this process may move threads to SCHED_IDLE and back again."""
    if os.geteuid() == 0:
        return True
    _, hard = resource.getrlimit(resource.RLIMIT_NICE)
    return hard == resource.RLIM_INFINITY or hard >= 20


@contextmanager
def machine_share(exclusive: bool, locks: Path = QUIET_LOCKS) -> Iterator[None]:
    """The lock fallback: a shared hold for an ordinary test, an exclusive one for a quiet test."""
    with locks.with_suffix(".gate").open("a") as gate, locks.with_suffix(".lock").open("a") as lock:
        if exclusive:
            fcntl.flock(gate, fcntl.LOCK_EX)  # no new test starts...
            fcntl.flock(lock, fcntl.LOCK_EX)  # ...and the running ones finish
        else:
            fcntl.flock(gate, fcntl.LOCK_SH)
            fcntl.flock(lock, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(gate, fcntl.LOCK_UN)


@contextmanager
def quiet_turn(locks: Path = QUIET_LOCKS) -> Iterator[None]:
    """One quiet test at a time on this machine, whichever run it belongs to."""
    with locks.with_suffix(".quiet").open("a") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(turn, fcntl.LOCK_UN)


def _processes() -> dict[int, int]:
    """pid -> parent pid of every process now."""
    parents = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # ended meanwhile
        # The command name is in parentheses and may contain anything: split after its end.
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def _environment(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []  # ended, or someone else's


def _is_test_process(pid: int) -> bool:
    """A pytest process (a run's main process; its xdist workers are its children), or one a
    test started: pytest and xdist set their variables at run time, so a process sees them in
    its initial environment only if a test started it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if any(b"pytest" in arg for arg in f.read().split(b"\0")):
                return True
    except OSError:
        return False
    return any(variable.startswith(mark) for variable in _environment(pid) for mark in TEST_PROCESS_MARKS)


# --- Tests that keep real time: never demoted ---------------------------------------------------
#
# The audio lab's tests capture sound as it plays (PulseAudio, the room probe): starved of the
# CPU for a few hundred ms, the capture has a gap ("The microphone stopped sending sound") and
# the levels are wrong. While one runs, its worker, everything the worker started and every
# process carrying the worker's id (PulseAudio, which daemonizes away from the worker) stay as
# they are; a marker file per worker says so to the quiet test's rescans.


def _exempt_dir(locks: Path) -> Path:
    return locks.with_suffix(".exempt")


def _exempt(locks: Path, parents: dict[int, int]) -> set[int]:
    """The processes of workers running a real-time test now."""
    pids, workers = set(), set()
    try:
        markers = list(_exempt_dir(locks).iterdir())
    except OSError:
        return set()
    for marker in markers:
        try:
            pid, worker = int(marker.name), marker.read_text().strip()
        except (OSError, ValueError):
            continue
        if pid in parents:  # a crashed worker's marker names nobody
            pids.add(pid)
            if worker:
                workers.add(f"PYTEST_XDIST_WORKER={worker}".encode())
    found = _subtree(pids, parents)
    if workers:
        found |= {pid for pid in parents if workers.intersection(_environment(pid))}
    return found


def _restore(pids: set[int]) -> None:
    """Normal class, every CPU and nice 0 for ``pids``, whatever a quiet test had done to them."""
    every_cpu = set(range(os.cpu_count() or 1))
    for pid in pids:
        for tid in _threads(pid):
            try:
                if os.sched_getscheduler(tid) == os.SCHED_IDLE:
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                if os.sched_getaffinity(tid) != every_cpu:
                    os.sched_setaffinity(tid, every_cpu)
            except OSError:
                pass  # ended meanwhile
        group = _autogroup(pid)
        if group is not None and group[1] == 19:
            _set_autogroup_nice(pid, 0)


@contextmanager
def realtime_test(locks: Path = QUIET_LOCKS) -> Iterator[None]:
    """A test that must keep real time beside a quiet one: never demoted, and put back at once
    if its worker was demoted when it starts."""
    directory = _exempt_dir(locks)
    directory.mkdir(exist_ok=True)
    marker = directory / str(os.getpid())
    marker.write_text(os.environ.get("PYTEST_XDIST_WORKER", ""))
    try:
        _restore(_exempt(locks, _processes()))  # this worker's among them, now that its marker is there
        yield
    finally:
        marker.unlink(missing_ok=True)


def _subtree(roots: set[int], parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, stack = set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    return found


def _ancestors(pid: int, parents: dict[int, int]) -> set[int]:
    found = set()
    while pid in parents and pid not in found:
        found.add(pid)
        pid = parents[pid]
    return found


def others(own: int) -> set[int]:
    """The other test processes on this machine and their descendants: neither ``own``'s
    subtree nor its ancestors (its own run's main process, make, the CI script)."""
    parents = _processes()
    tests = {pid for pid in parents if _is_test_process(pid)}
    return _subtree(tests, parents) - _subtree({own}, parents) - _ancestors(own, parents)


def _threads(pid: int) -> list[int]:
    try:
        return [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _set_cpus(tid: int, cpus: set[int]) -> set[int] | None:
    """Restrict a thread to ``cpus``; its CPUs before, or None if unchanged or gone."""
    try:
        before = os.sched_getaffinity(tid)
        if before == cpus:
            return None
        os.sched_setaffinity(tid, cpus)
        return before
    except OSError:
        return None


def _set_policy(tid: int, policy: int) -> bool:
    try:
        if os.sched_getscheduler(tid) == policy:
            return False
        if policy == os.SCHED_IDLE and os.sched_getscheduler(tid) != os.SCHED_OTHER:
            return False  # real-time or batch threads (e.g. the lab's relay) keep their class
        os.sched_setscheduler(tid, policy, os.sched_param(0))
        return True
    except (ProcessLookupError, PermissionError, OSError):
        return False


def _autogroup(pid: int) -> tuple[str, int] | None:
    """(group, nice) of a process's autogroup, from "/autogroup-25 nice 0"; None if none."""
    try:
        with open(f"/proc/{pid}/autogroup") as f:
            name, _, nice = f.read().split()
        return name, int(nice)
    except (OSError, ValueError):
        return None


def _set_autogroup_nice(pid: int, nice: int) -> bool:
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
        return True
    except OSError:
        return False


class Demotion:
    """The other test processes in SCHED_IDLE, on every CPU but the first, and their own
    autogroups at nice 19, from ``start`` to ``stop``."""

    def __init__(self, own: int | None = None, locks: Path = QUIET_LOCKS) -> None:
        self.own = own if own is not None else os.getpid()
        self.locks = locks
        self.demoted: set[int] = set()  # thread ids we moved
        # All CPUs but the first for the others (none kept aside on a single CPU).
        self.all_cpus = os.sched_getaffinity(0)
        self.their_cpus = self.all_cpus - {min(self.all_cpus)} if len(self.all_cpus) > 1 else self.all_cpus
        self.pinned: dict[int, set[int]] = {}  # thread id -> its CPUs before
        self.groups: dict[str, tuple[int, list[int]]] = {}  # autogroup -> (its nice before, members seen)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan(self) -> int:
        moved = 0
        parents = _processes()
        tests = {pid for pid in parents if _is_test_process(pid)}
        ours = _subtree({self.own}, parents) | _ancestors(self.own, parents)
        theirs = _subtree(tests, parents) - ours - _exempt(self.locks, parents)
        for pid in theirs:
            for tid in _threads(pid):
                if _set_policy(tid, os.SCHED_IDLE):
                    self.demoted.add(tid)
                    moved += 1
                if tid not in self.pinned and (before := _set_cpus(tid, self.their_cpus)) is not None:
                    self.pinned[tid] = before
        shared = {group[0] for pid in ours if (group := _autogroup(pid)) is not None}
        for pid in theirs:
            group = _autogroup(pid)
            if group is None or group[0] in shared:
                continue
            name, nice = group
            if name in self.groups:
                self.groups[name][1].append(pid)
            elif _set_autogroup_nice(pid, 19):
                self.groups[name] = (nice, [pid])
        return moved

    def start(self) -> None:
        self.scan()
        self._thread = threading.Thread(target=self._rescan, name="quiet-demotion", daemon=True)
        self._thread.start()

    def _rescan(self) -> None:
        while not self._stop.wait(RESCAN_S):
            self.scan()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        # Back to normal: what we moved, and what those threads created meanwhile (they
        # inherited the class). Nothing of the tests' own asks for SCHED_IDLE.
        for pid in others(self.own):
            for tid in _threads(pid):
                try:
                    if os.sched_getscheduler(tid) == os.SCHED_IDLE:
                        os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                    if tid not in self.pinned and os.sched_getaffinity(tid) == self.their_cpus:
                        os.sched_setaffinity(tid, self.all_cpus)  # created meanwhile, inherited the pin
                except OSError:
                    pass  # ended meanwhile
        for tid, cpus in self.pinned.items():
            _set_cpus(tid, cpus)
        self.pinned.clear()
        for tid in self.demoted:
            try:
                if os.sched_getscheduler(tid) == os.SCHED_IDLE:
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            except OSError:
                pass  # ended, or its id now belongs to a thread that never was ours
        self.demoted.clear()
        for name, (nice, members) in self.groups.items():
            for pid in members:  # any member still there; the group ends with its last one
                group = _autogroup(pid)
                if group is not None and group[0] == name and _set_autogroup_nice(pid, nice):
                    break
        self.groups.clear()


@contextmanager
def quiet_machine(locks: Path = QUIET_LOCKS) -> Iterator[None]:
    """The machine as quiet as the tests can make it, for one quiet test or a chain of them."""
    with ExitStack() as stack:
        stack.enter_context(quiet_turn(locks))
        if can_demote():
            demotion = Demotion(locks=locks)
            demotion.start()
            stack.callback(demotion.stop)
        else:
            stack.enter_context(machine_share(exclusive=True, locks=locks))
        yield


@contextmanager
def ordinary_test(locks: Path = QUIET_LOCKS) -> Iterator[None]:
    """What an ordinary test holds: nothing when quiet tests demote it, else the shared lock."""
    if can_demote():
        yield
    else:
        with machine_share(exclusive=False, locks=locks):
            yield
