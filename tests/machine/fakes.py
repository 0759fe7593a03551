"""Fakes at the machine probe's seams: the psutil facade, commands, and a recorded file tree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agents.probes.machine.link import CommandFailed, LinkReading
from agents.probes.machine.system import Battery, CpuTimes, Memory, NetIo, ProcessCpu, ProcessKey, SwapIo

DATA = Path(__file__).parent / "data"


def recorded(relative: str) -> str:
    return (DATA / relative).read_text(encoding="utf-8")


@dataclass
class Counters:
    """One sample of everything the probe reads twice. An exception value is raised instead."""

    at_s: float = 0.0
    cpu: CpuTimes | Exception = field(default_factory=lambda: CpuTimes(0.0, 0.0))
    processes: Mapping[ProcessKey, ProcessCpu] | Exception = field(default_factory=dict)
    swap: SwapIo | None | Exception = None
    net: Mapping[str, NetIo] | Exception = field(default_factory=dict)


class FakeSystem:
    """A SystemFacade whose counters are scripted: the first call of each returns ``before``."""

    def __init__(
        self,
        before: Counters,
        after: Counters,
        *,
        memory: Memory | Exception = Memory(8 << 30, 16 << 30),
        battery: Battery | None | Exception = None,
        speeds: Mapping[str, float] | None = None,
    ) -> None:
        self._samples = (before, after)
        self._memory, self._battery, self._speeds = memory, battery, dict(speeds or {})
        self.calls: dict[str, int] = {}
        self.speed_asked: list[str] = []

    def _next(self, name: str) -> object:
        index = self.calls.get(name, 0)
        self.calls[name] = index + 1
        return _value(getattr(self._samples[min(index, 1)], name))

    def monotonic_s(self) -> float:
        return self._next("at_s")  # type: ignore[return-value]

    def cpu_times(self) -> CpuTimes:
        return self._next("cpu")  # type: ignore[return-value]

    def process_cpu(self) -> Mapping[ProcessKey, ProcessCpu]:
        return self._next("processes")  # type: ignore[return-value]

    def swap_io(self) -> SwapIo | None:
        return self._next("swap")  # type: ignore[return-value]

    def net_io(self) -> Mapping[str, NetIo]:
        return self._next("net")  # type: ignore[return-value]

    def memory(self) -> Memory:
        return _value(self._memory)  # type: ignore[return-value]

    def battery(self) -> Battery | None:
        return _value(self._battery)  # type: ignore[return-value]

    def link_speed_mbps(self, interface: str) -> float | None:
        self.speed_asked.append(interface)
        return self._speeds.get(interface)


def _value(value: object) -> object:
    if isinstance(value, Exception):
        raise value
    return value


class FakeLinkProbe:
    """Answers with a fixed interface and reading; ``error`` is raised by default_interface."""

    def __init__(self, interface: str | None, reading: LinkReading = LinkReading("unknown"), error: Exception | None = None) -> None:
        self._interface, self._reading, self._error = interface, reading, error

    def default_interface(self) -> str | None:
        if self._error is not None:
            raise self._error
        return self._interface

    def link_info(self, interface: str) -> LinkReading:
        return self._reading


class FakeRun:
    """``run(argv, timeout_s)`` answering from a table: text, or a CommandFailed reason."""

    def __init__(self, answers: Mapping[tuple[str, ...], str | CommandFailed]) -> None:
        self._answers = dict(answers)
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], timeout_s: float) -> str:
        key = tuple(argv)
        self.calls.append(key)
        answer = self._answers.get(key, CommandFailed(argv, "not installed"))
        if isinstance(answer, CommandFailed):
            raise answer
        return answer


def missing(*argv: str) -> CommandFailed:
    return CommandFailed(argv, "not installed")


class RecordedTree:
    """``read`` and ``exists`` over a directory that stands for ``/`` (tests/machine/data/linux/<name>)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, path: str) -> Path:
        return self._root / path.lstrip("/")

    def read(self, path: str) -> str:
        return self._path(path).read_text(encoding="utf-8")

    def exists(self, path: str) -> bool:
        return self._path(path).exists()
