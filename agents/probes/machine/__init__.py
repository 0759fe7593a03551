"""The machine probe: CPU, memory, swap, battery, the network link and other traffic on it.

``await measure_machine()`` returns a ``MachineResult``. Only its fields go into a report; the
program and interface names a person needs for a fix are in ``result.local_hints``, which is
not a dataclass field (see result.py). docs/machine.md describes every measurement.
"""

from agents.probes.machine.link import CommandFailed, LinkError, LinkProbe, LinkReading, WifiStatus
from agents.probes.machine.linux import LinuxLinkProbe
from agents.probes.machine.macos import MacLinkProbe
from agents.probes.machine.probe import link_probe_for, measure_machine
from agents.probes.machine.result import LinkInfo, LinkType, LocalHints, MachineResult, Problem, ProgramUse
from agents.probes.machine.system import PsutilSystem, SystemFacade
from agents.probes.machine.windows import WindowsLinkProbe
from sessionready.schema import LINK_TYPES

__all__ = [
    "LINK_TYPES",
    "CommandFailed",
    "LinkError",
    "LinkInfo",
    "LinkProbe",
    "LinkReading",
    "LinkType",
    "LinuxLinkProbe",
    "LocalHints",
    "MacLinkProbe",
    "MachineResult",
    "Problem",
    "ProgramUse",
    "PsutilSystem",
    "SystemFacade",
    "WifiStatus",
    "WindowsLinkProbe",
    "link_probe_for",
    "measure_machine",
]
