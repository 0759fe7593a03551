"""The systemd units in systemd/: systemd's own checker accepts them, their sandbox scores
"OK", and the programs they start work inside the unit's seccomp sandbox.

PID 1 on the project's machines is not systemd (a VM/container init), so no unit is started
for real. Instead:
- ``systemd-analyze verify`` (systemd 252, Debian ``systemd``) checks each unit, on a copy
  whose ExecStart points at this virtualenv's ``sessionready`` (verify insists the binary
  exists; the shipped units point at /opt/sessionready/bin/sessionready).
- ``systemd-analyze security --offline=yes`` scores the system units' exposure.
- The unit's seccomp settings (SystemCallFilter=, SystemCallErrorNumber=,
  RestrictAddressFamilies=, MemoryDenyWriteExecute=, and NoNewPrivileges=, which loading a
  filter implies) are rebuilt from the unit file with libseccomp, the library systemd itself
  uses, from the syscall groups ``systemd-analyze syscall-filter`` lists, and applied to a
  real monitor and a real check. The mount, user and capability settings are not emulated.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import Monitor, require_or_fail

REPO = Path(__file__).resolve().parent.parent
UNITS_DIR = REPO / "systemd"
INSTALLED_BINARY = "/opt/sessionready/bin/sessionready"
SYSTEM_UNITS = ("sessionready-monitor.service", "sessionready-dashboard.service", "sessionready-agent-system.service")
USER_UNITS = ("sessionready-agent.service",)
MAX_EXPOSURE = 2.0  # systemd-analyze security: 0 = fully sandboxed, 10 = unsandboxed; "OK" is < 2

# libseccomp's ABI (seccomp.h, libseccomp 2.5).
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7
SHM_EXEC = 0o100000


def scmp_act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


# --- Reading a unit ---------------------------------------------------------------------------

def service_settings(unit: Path) -> dict[str, list[str]]:
    """Every key of the unit's [Service] section (drop-ins not included), values in file order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def syscall_groups() -> dict[str, list[str]]:
    """systemd's syscall groups (``@name`` -> entries, which may name other groups), as the
    installed systemd defines them."""
    listing = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True, text=True, check=True).stdout
    groups: dict[str, list[str]] = {}
    entries: list[str] = []
    for line in listing.splitlines():
        if line.startswith("@"):
            entries = groups.setdefault(line.strip(), [])
        elif line.strip() and not line.strip().startswith("#"):
            entries.append(line.strip())
    return groups


def expand(item: str, groups: dict[str, list[str]]) -> set[str]:
    if not item.startswith("@"):
        return {item}
    return set().union(*(expand(entry, groups) for entry in groups[item]))


def allowed_syscalls(filters: Sequence[str]) -> set[str]:
    """SystemCallFilter= lines as systemd reads them: the first (an allow list) sets the list,
    later "~" lines take syscalls out; @default is always allowed with an allow list."""
    groups = syscall_groups()
    allowed: set[str] = set()
    for index, line in enumerate(filters):
        deny = line.startswith("~")
        names = set().union(*(expand(item, groups) for item in line.lstrip("~").split()))
        if index == 0:
            assert not deny, "these tests expect the units to use an allow list"
            allowed = names | expand("@default", groups)
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


# --- The sandbox: run in a child process, then exec the program ---------------------------------

def exec_in_sandbox(argv: Sequence[str]) -> None:
    """``UNIT -- PROGRAM ARGS...``: load UNIT's seccomp filters into this process, then exec."""
    unit, separator, *program = argv
    assert separator == "--" and program
    settings = service_settings(Path(unit))
    seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
    seccomp.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ScmpArgCmp)]
    seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]

    def rule(context: int, action: int, name: str, *conditions: tuple[int, int, int, int]) -> None:
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        if number < 0:  # not a syscall of this architecture (e.g. the 32-bit *_time64 ones)
            return
        array = (ScmpArgCmp * max(1, len(conditions)))(*(ScmpArgCmp(*condition) for condition in conditions))
        status = seccomp.seccomp_rule_add_array(context, action, number, len(conditions), array)
        if status not in (0, -errno.EEXIST):
            raise OSError(-status, f"seccomp_rule_add {name}")

    def load(context: int) -> None:
        status = seccomp.seccomp_load(context)  # also sets no_new_privs (NoNewPrivileges=)
        if status != 0:
            raise OSError(-status, "seccomp_load")

    restrictions = seccomp.seccomp_init(SCMP_ACT_ALLOW)
    if "RestrictAddressFamilies" in settings:
        families = {getattr(socket, family) for family in settings["RestrictAddressFamilies"][-1].split()}
        for family in range(max(families)):
            if family not in families:  # systemd answers EAFNOSUPPORT, as for an unknown family
                rule(restrictions, scmp_act_errno(errno.EAFNOSUPPORT), "socket", (0, SCMP_CMP_EQ, family, 0))
        rule(restrictions, scmp_act_errno(errno.EAFNOSUPPORT), "socket", (0, SCMP_CMP_GT, max(families), 0))
    if settings.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes":
        write_exec = mmap.PROT_WRITE | mmap.PROT_EXEC
        rule(restrictions, scmp_act_errno(errno.EPERM), "mmap", (2, SCMP_CMP_MASKED_EQ, write_exec, write_exec))
        for name in ("mprotect", "pkey_mprotect"):
            rule(restrictions, scmp_act_errno(errno.EPERM), name, (2, SCMP_CMP_MASKED_EQ, mmap.PROT_EXEC, mmap.PROT_EXEC))
        rule(restrictions, scmp_act_errno(errno.EPERM), "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
    load(restrictions)
    # Last, as systemd does: the allow list may not include the syscalls that load filters.
    if "SystemCallFilter" in settings:
        error = getattr(errno, settings.get("SystemCallErrorNumber", ["EPERM"])[-1])
        allow_list = seccomp.seccomp_init(scmp_act_errno(error))
        for name in sorted(allowed_syscalls(settings["SystemCallFilter"])):
            rule(allow_list, SCMP_ACT_ALLOW, name)
        load(allow_list)
    os.execv(program[0], program)


def sandboxed(unit: str, *program: str) -> list[str]:
    """The command line that runs ``program`` inside ``unit``'s seccomp sandbox."""
    launcher = "import sys, tests.test_systemd as t; t.exec_in_sandbox(sys.argv[1:])"
    return [sys.executable, "-c", launcher, str(UNITS_DIR / unit), "--", *program]


# --- Fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    require_or_fail(path is not None, "systemd-analyze is missing (Debian package systemd)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
    require_or_fail(int(version) >= 252, f"systemd-analyze {version} is older than 252 (no --offline)")
    return path


@pytest.fixture(scope="module")
def units_for_verify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of systemd/ (drop-ins included) whose ExecStart runs this virtualenv's command."""
    binary = Path(sys.executable).parent / "sessionready"
    assert binary.exists(), f"{binary} is missing: install the project into this virtualenv"
    copy = tmp_path_factory.mktemp("units") / "systemd"
    shutil.copytree(UNITS_DIR, copy)
    for unit in copy.glob("*.service"):
        unit.write_text(unit.read_text().replace(INSTALLED_BINARY, str(binary)))
    return copy


def verify(systemd_analyze: str, unit: Path, runtime_dir: Path, *, user: bool) -> subprocess.CompletedProcess:
    # A user manager's verify needs $XDG_RUNTIME_DIR; none exists for root in a container.
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    command = [systemd_analyze, *(["--user"] if user else []), "verify", "--man=no", str(unit)]
    return subprocess.run(command, capture_output=True, text=True, cwd=unit.parent, env={**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}, timeout=60)


def complaints(result: subprocess.CompletedProcess, directory: Path) -> list[str]:
    """Lines of verify's output about our files (other units on the machine may warn too)."""
    ours = (str(directory), *(unit for unit in (*SYSTEM_UNITS, *USER_UNITS)))
    return [line for line in (result.stdout + result.stderr).splitlines() if any(name in line for name in ours)]


# --- Tests --------------------------------------------------------------------------------------------

def test_the_shipped_units_run_the_documented_binary() -> None:
    for name in (*SYSTEM_UNITS, *USER_UNITS):
        settings = service_settings(UNITS_DIR / name)
        assert settings["ExecStart"][0].startswith(f"{INSTALLED_BINARY} "), name
        assert settings["Type"] == ["exec"] and settings["Restart"] == ["on-failure"], name
        assert settings["RestartPreventExitStatus"] == ["3"], f"{name}: a bad config (exit 3) must not restart forever"
    for name in ("sessionready-agent.service", "sessionready-agent-system.service"):
        assert service_settings(UNITS_DIR / name)["ExecReload"] == ["/bin/kill -HUP $MAINPID"], "SIGHUP reloads the agent's config"


def test_every_unit_raises_the_open_file_limit() -> None:
    """Every connection is a file descriptor: at the default 1,024, 1,030 idle connections made
    the monitor refuse real clients (issue 12). The guard caps them per address; the limit
    must leave room for many addresses."""
    units = sorted(path.name for path in UNITS_DIR.glob("*.service"))
    assert set(units) == {*SYSTEM_UNITS, *USER_UNITS}, "a new unit must be added to the lists above"
    for name in units:
        limit = service_settings(UNITS_DIR / name).get("LimitNOFILE", [])
        assert len(limit) == 1 and all(int(part) >= 65536 for part in limit[0].split(":")), f"{name}: LimitNOFILE={limit}"


@pytest.mark.parametrize("name", [*SYSTEM_UNITS, *USER_UNITS])
def test_systemd_analyze_verify_accepts_the_unit(systemd_analyze: str, units_for_verify: Path, tmp_path: Path, name: str) -> None:
    result = verify(systemd_analyze, units_for_verify / name, tmp_path / "runtime", user=name in USER_UNITS)
    assert result.returncode == 0, result.stderr
    assert complaints(result, units_for_verify) == []


def test_verify_would_catch_a_misspelled_setting_and_a_missing_binary(systemd_analyze: str, units_for_verify: Path, tmp_path: Path) -> None:
    """The check above can fail: verify reports a typo in a drop-in, and a binary that is not there."""
    broken = tmp_path / "broken"
    shutil.copytree(units_for_verify, broken)
    dropin = broken / "sessionready-monitor.service.d" / "tls.conf"
    dropin.write_text(dropin.read_text().replace("LoadCredential=tls.key", "LoadCredentail=tls.key"))
    typo = verify(systemd_analyze, broken / "sessionready-monitor.service", tmp_path / "runtime", user=False)
    assert any("LoadCredentail" in line for line in complaints(typo, broken)), typo.stderr
    unit = broken / "sessionready-dashboard.service"
    unit.write_text((UNITS_DIR / unit.name).read_text())  # ExecStart back to /opt/sessionready/...
    missing = verify(systemd_analyze, unit, tmp_path / "runtime", user=False)
    assert missing.returncode != 0 and INSTALLED_BINARY in missing.stderr


@pytest.mark.parametrize("name", SYSTEM_UNITS)
def test_system_units_are_sandboxed_to_an_exposure_of_at_most_2(systemd_analyze: str, units_for_verify: Path, name: str) -> None:
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", "--no-pager", str(units_for_verify / name)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout[-2000:]
    assert float(match.group(1)) <= MAX_EXPOSURE and match.group(2) == "OK", result.stdout


def test_the_monitor_user_comes_from_sysusers(tmp_path: Path) -> None:
    require_or_fail(shutil.which("systemd-sysusers") is not None, "systemd-sysusers is missing (Debian package systemd)")
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(UNITS_DIR / "sysusers.d" / "sessionready.conf")], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    entries = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc" / "passwd").read_text().splitlines()}
    monitor = service_settings(UNITS_DIR / "sessionready-monitor.service")
    user = entries[monitor["User"][0]]
    assert 0 < int(user[2]) < 1000, "a system user"
    assert user[5] == "/var/lib/" + monitor["StateDirectory"][0] and user[6] == "/usr/sbin/nologin"


def test_the_sandbox_really_filters(tmp_path: Path) -> None:
    """The emulation is not a no-op: inside the monitor's sandbox W+X memory, raw packet
    sockets, privileged calls (chroot, even as root) and @resources (setpriority) are refused;
    ordinary memory and Internet sockets are not."""
    probe = (
        "import mmap, os, socket, errno\n"
        "mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE).close()\n"
        "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()\n"
        "try:\n    mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)\nexcept OSError as e:\n    print('wx', errno.errorcode[e.errno])\n"
        "try:\n    socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)\nexcept OSError as e:\n    print('packet', errno.errorcode[e.errno])\n"
        "try:\n    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)\nexcept OSError as e:\n    print('netlink', errno.errorcode[e.errno])\n"
        "for name, call in (('chroot', lambda: os.chroot('/')), ('setpriority', lambda: os.setpriority(os.PRIO_PROCESS, 0, 0))):\n"
        "    try:\n        call()\n    except OSError as e:\n        print(name, errno.errorcode[e.errno])\n"
    )
    if os.geteuid() == 0:  # the control: outside the sandbox root may do all of it
        plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
        assert plain.returncode == 0 and plain.stdout == "", plain.stdout + plain.stderr
    monitor = subprocess.run(sandboxed("sessionready-monitor.service", sys.executable, "-c", probe), capture_output=True, text=True, cwd=REPO, timeout=60)
    assert monitor.returncode == 0, monitor.stderr
    # No "wx": the monitor's WebRTC peers need writable and executable memory (the unit says why).
    assert monitor.stdout.splitlines() == ["packet EAFNOSUPPORT", "netlink EAFNOSUPPORT", "chroot EPERM", "setpriority EPERM"]
    agent = subprocess.run(sandboxed("sessionready-agent-system.service", sys.executable, "-c", probe), capture_output=True, text=True, cwd=REPO, timeout=60)
    assert agent.returncode == 0, agent.stderr
    assert agent.stdout.splitlines() == ["wx EPERM", "packet EAFNOSUPPORT", "chroot EPERM", "setpriority EPERM"], "the system agent may open netlink sockets"


def start_sandboxed_monitor(state_dir: Path, config: Path) -> Monitor:
    """The monitor as its unit starts it: --config, the store in $STATE_DIRECTORY, sandboxed."""
    unit = service_settings(UNITS_DIR / "sessionready-monitor.service")
    arguments = unit["ExecStart"][0].split()[1:]
    arguments[arguments.index("/etc/sessionready/monitor.toml")] = str(config)
    log = state_dir.parent / "monitor.log"
    process = subprocess.Popen(
        sandboxed("sessionready-monitor.service", sys.executable, "-m", "sessionready.cli", *arguments),
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True, cwd=REPO, env={**os.environ, "STATE_DIRECTORY": str(state_dir)},
    )
    line = process.stdout.readline() if process.stdout else ""
    if "listening on" not in line:
        process.kill()
        raise AssertionError(f"the monitor did not start in its sandbox: {line!r} {log.read_text()}")
    url = line.split("listening on ")[1].split(" ")[0]
    udp_port = int(line.split("UDP reflector on port ")[1].split(")")[0])
    return Monitor(process, url, udp_port, state_dir, log)


@pytest.mark.slow
def test_monitor_serves_a_check_inside_its_units_sandbox(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"  # systemd creates StateDirectory= before the start
    state_dir.mkdir(mode=0o700)
    config = tmp_path / "monitor.toml"
    config.write_text('[monitor]\nhost = "127.0.0.1"\nport = 0\n')
    monitor = start_sandboxed_monitor(state_dir, config)
    try:
        assert any(state_dir.iterdir()), "the store lives in $STATE_DIRECTORY"
        token = monitor.token("client", "c-sandbox")
        # The agent's probes, inside the system agent's sandbox, against the sandboxed monitor.
        check = subprocess.run(
            sandboxed(
                "sessionready-agent-system.service", sys.executable, "-m", "sessionready.cli", "check", "--monitor", monitor.url, "--json",
                "--no-audio", "--udp-seconds", "1", "--load-seconds", "1", "--streams", "2",
            ),
            capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, "SESSIONREADY_TOKEN": token},
        )
        assert check.returncode in (0, 1, 2), check.stderr
        report = json.loads(check.stdout)
        assert report["submitted"] is True and report["network"]["packets"]["received"] > 0
        assert report["network"]["throughput_mbps"]["down"] > 0 and report["network"]["throughput_mbps"]["up"] > 0
        assert report["machine"] is not None
        status, stored = monitor.json("GET", f"/api/v1/checks/{report['check_id']}", token)
        assert status == 200 and stored["report"]["network"] == report["network"]
        # The user agent's sandbox too (the room is not measured: no microphone here).
        quick = subprocess.run(
            sandboxed("sessionready-agent.service", sys.executable, "-m", "sessionready.cli", "check", "--monitor", monitor.url, "--json", "--no-audio", "--no-throughput", "--udp-seconds", "1"),
            capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, "SESSIONREADY_TOKEN": token},
        )
        assert quick.returncode in (0, 1, 2), quick.stderr
        assert json.loads(quick.stdout)["submitted"] is True
        assert "Traceback" not in monitor.logs()
    finally:
        code = monitor.stop()
    assert code == 0, f"SIGTERM must stop the monitor cleanly: {monitor.logs()[-2000:]}"



def wait_for_log(path: Path, predicate, timeout_s: float) -> dict:  # noqa: ANN001 - a callable on one JSON log record
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if predicate(record):
                return record
        time.sleep(0.2)
    raise AssertionError(f"no such log line within {timeout_s} s: {path.read_text(errors='replace')[-3000:]}")


@pytest.mark.slow
def test_system_agent_runs_reloads_and_stops_inside_its_units_sandbox(tmp_path: Path) -> None:
    """ExecStart, ExecReload (SIGHUP) and stop (SIGTERM) of sessionready-agent-system.service,
    with the spool in $STATE_DIRECTORY and the token from a LoadCredential-style file."""
    state_dir = tmp_path / "monitor-state"
    state_dir.mkdir(mode=0o700)
    monitor_config = tmp_path / "monitor.toml"
    monitor_config.write_text('[monitor]\nhost = "127.0.0.1"\nport = 0\n')
    monitor = start_sandboxed_monitor(state_dir, monitor_config)
    agent_state = tmp_path / "agent-state"
    agent_state.mkdir(mode=0o700)
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "token").write_text(monitor.token("client", "c-daemon") + "\n")
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[monitor]\nurl = "{monitor.url}"\ntoken_file = "{credentials / "token"}"\n[room]\nmicrophone = false\n'
        "[agent]\nmachine_interval_s = 1\nbackground_interval_s = 2\nburst_seconds = 0.5\nsessions_poll_s = 1\nnotify = false\n"
    )
    unit = service_settings(UNITS_DIR / "sessionready-agent-system.service")
    arguments = unit["ExecStart"][0].split()[1:]
    arguments[arguments.index("/etc/sessionready/agent.toml")] = str(config)
    log = tmp_path / "agent.log"
    agent = subprocess.Popen(
        sandboxed("sessionready-agent-system.service", sys.executable, "-m", "sessionready.cli", *arguments),
        stdout=subprocess.DEVNULL, stderr=log.open("w"), cwd=REPO,
        env={**os.environ, "STATE_DIRECTORY": str(agent_state), "CREDENTIALS_DIRECTORY": str(credentials)},
    )
    try:
        started = wait_for_log(log, lambda record: record.get("message") == "agent started", 60)
        assert Path(started["spool"]).parent == agent_state, "the spool lives in $STATE_DIRECTORY"
        wait_for_log(log, lambda record: record.get("message") == "machine sample spooled", 60)
        wait_for_log(log, lambda record: record.get("message") == "network sample spooled", 60)
        agent.send_signal(signal.SIGHUP)  # what ExecReload= sends
        time.sleep(2)
        assert agent.poll() is None, f"SIGHUP must reload, not stop: {log.read_text()[-2000:]}"
        agent.send_signal(signal.SIGTERM)  # what 'systemctl stop' sends
        code = agent.wait(timeout=float(unit["TimeoutStopSec"][0].rstrip("s")))
        assert code == 0, log.read_text()[-2000:]
        assert "Traceback" not in log.read_text()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        monitor.stop()


@pytest.mark.slow
def test_webrtc_probe_stream_inside_the_monitors_sandbox(tmp_path: Path) -> None:
    """aiortc (and the av library it loads) under the unit's seccomp filter, no W^X memory and
    only AF_INET/AF_INET6/AF_UNIX sockets; with a wildcard host, the candidate is the address the
    page reached, found without the netlink socket the unit does not allow."""
    import asyncio

    from tests.rtc.page_client import run_stream

    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    config = tmp_path / "monitor.toml"
    config.write_text('[monitor]\nhost = "0.0.0.0"\nport = 0\nrtc_port_min = 21430\nrtc_port_max = 21439\n')
    monitor = start_sandboxed_monitor(state_dir, config)
    try:
        staff = monitor.token("it", "it-sandbox")  # only a check link's holder starts a stream
        assert monitor.json("POST", "/api/v1/participants", staff, {"participant_id": "c-sandbox", "role": "client"})[0] == 201
        status, link = monitor.json("POST", "/api/v1/check-links", staff, {"participant_id": "c-sandbox"})
        assert status == 201, link
        url = monitor.url.replace("0.0.0.0", "127.0.0.1")
        result = asyncio.run(run_stream(url, f"Link {link['secret']}", seconds=2.0))
        assert result["sent"] >= 50 and len(result["echoes"]) == result["sent"] and result["bad_echo_lengths"] == 0
        candidates = [line.split()[4:6] for line in result["answer_sdp"].splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(host == "127.0.0.1" and 21430 <= int(port) <= 21439 for host, port in candidates), candidates
        assert "Traceback" not in monitor.logs()
    finally:
        code = monitor.stop()
    assert code == 0, f"SIGTERM must stop the monitor cleanly, its peers closed: {monitor.logs()[-2000:]}"
