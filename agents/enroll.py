"""``sessionready enroll``: trade a one-time code for this machine's token and write the agent config.

Afterwards ``sessionready check`` finds the monitor and the token by itself: the config file
gets ``[monitor] url`` and ``token_file``; the token goes into its own file, readable only by
its owner, never into the config.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sessionready.terms import EXIT_CANNOT_RUN, EXIT_OK

ENROLL_EPILOG = """\
The code comes from whoever runs the monitor ('sessionready monitor enroll create'). It works
once and expires; letters may be typed in either case, dashes may be left out.

exit codes: 0 enrolled; 3 could not enroll (one sentence on stderr says why)
"""


def add_enroll_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "enroll",
        help="connect this computer to a monitor with a one-time code",
        description="Redeem a one-time enrollment code with the monitor and save the monitor's address and "
        "this computer's token, so that 'sessionready check' needs neither --monitor nor --token.",
        epilog=ENROLL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("code", metavar="CODE", help="the enrollment code, e.g. K7Q2-9XMD-4TRB-WN3F")
    parser.add_argument("--monitor", metavar="URL", required=True, help="the monitor's URL, e.g. https://monitor.example.org:8470")
    parser.add_argument("--config", metavar="FILE", type=Path, help="where to write the agent config (default: $SESSIONREADY_CONFIG, else the platform's default)")
    parser.add_argument("--ca-file", metavar="FILE", help="CA certificate(s) to trust for an https:// monitor with a private certificate")
    parser.add_argument("--allow-insecure-http", action="store_true", help="allow plain http:// to a monitor that is not on this machine (the token then travels unencrypted)")
    parser.add_argument("--force", action="store_true", help="replace an existing config and token file")
    parser.set_defaults(run=run_enroll_command)


class EnrollError(Exception):
    """Enrollment could not be done. The message is one sentence for a person."""


@dataclass(frozen=True)
class Enrollment:
    token: str
    agent_id: str
    role: str
    participant_id: str


def _fail(message: str) -> int:
    print(f"sessionready enroll: {message}", file=sys.stderr)
    return EXIT_CANNOT_RUN


def lookup_config_path() -> Path:
    """Where ``sessionready check`` looks when given no --config (see agents.config.load_agent_config)."""
    from agents.config import default_config_path

    configured = os.environ.get("SESSIONREADY_CONFIG")
    return Path(configured) if configured else default_config_path()


def token_path_for(config_path: Path) -> Path:
    """The token file next to the config: agent.toml -> agent.token."""
    candidate = config_path.with_suffix(".token")
    return candidate if candidate != config_path else config_path.with_name(config_path.name + ".token")


def run_enroll_command(args: argparse.Namespace) -> int:
    import asyncio

    from agents.client import MonitorError, UsageError, monitor_url

    try:
        url = monitor_url(args.monitor, allow_insecure_http=args.allow_insecure_http)
    except UsageError as error:
        return _fail(str(error))
    code = args.code.strip()
    if not code:
        return _fail("the code is empty: type the code you were given, e.g. K7Q2-9XMD-4TRB-WN3F")
    ca_file = str(Path(args.ca_file).absolute()) if args.ca_file else None
    if ca_file is not None and not Path(ca_file).is_file():
        return _fail(f"the CA file {args.ca_file} does not exist")
    config_path = (args.config or lookup_config_path()).absolute()
    token_path = token_path_for(config_path)
    # Everything that can be checked is checked before the code is used up: it works only once.
    try:
        _prepare(config_path, token_path, force=args.force)
    except EnrollError as error:
        return _fail(str(error))
    try:
        enrollment = asyncio.run(redeem(url, code, ca_file))
    except MonitorError as error:
        return _fail(error.message)
    except EnrollError as error:
        return _fail(str(error))
    try:
        write_agent_files(config_path, token_path, enrollment.token, str(url), ca_file, args.allow_insecure_http, force=args.force)
    except OSError as error:
        what = error.filename or config_path
        return _fail(
            f"enrolled as agent {enrollment.agent_id}, but could not write {what} ({error.strerror or error}); "
            "the code is now used up: ask for a new one (and for agent "
            f"{enrollment.agent_id}'s token to be revoked)"
        )
    if config_path == lookup_config_path().absolute():
        next_step = "'sessionready check' now needs no --monitor or --token"
    else:
        next_step = f"run 'sessionready check --config {config_path}' (no --monitor or --token needed)"
    print(
        f"enrolled this computer as {enrollment.role} agent {enrollment.agent_id} for participant "
        f"{enrollment.participant_id}; config saved to {config_path}: {next_step}"
    )
    return EXIT_OK


def _prepare(config_path: Path, token_path: Path, *, force: bool) -> None:
    if not force:
        for path in (config_path, token_path):
            if path.exists() or path.is_symlink():
                raise EnrollError(f"{path} already exists: pass --force to replace it")
    directory = config_path.parent
    if not directory.exists():
        try:
            # 0700: the directory holds the token file. Only the last level is created this
            # way; directories above it are ordinary ones (like ~/.config).
            directory.mkdir(parents=True, mode=0o700)
        except OSError as error:
            raise EnrollError(f"cannot create the directory {directory}: {error.strerror or error}") from None
    if not directory.is_dir():
        raise EnrollError(f"{directory} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise EnrollError(f"cannot write to {directory} (permission denied)")


async def redeem(url, code: str, ca_file: str | None, timeout_s: float = 15.0) -> Enrollment:  # noqa: ANN001 - a yarl URL
    """POST the code to the monitor's public enroll endpoint; MonitorError in one sentence otherwise."""
    import aiohttp

    from agents.client import USER_AGENT, MonitorError, UsageError, error_from_response, tls_context, transport_error

    context: ssl.SSLContext | bool = True
    if url.scheme == "https":
        try:
            context = tls_context(ca_file)
        except UsageError as error:  # an unreadable or invalid CA file, in one sentence
            raise EnrollError(str(error)) from None
    endpoint = url.with_path(url.path.rstrip("/") + "/api/v1/enroll")
    try:
        async with aiohttp.ClientSession(
            headers={"User-Agent": USER_AGENT}, connector=aiohttp.TCPConnector(ssl=context), timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as session:
            async with session.post(endpoint, json={"code": code}) as response:
                status, text = response.status, (await response.read()).decode("utf-8", errors="replace")
    except (aiohttp.ClientError, TimeoutError) as error:
        raise transport_error(error, url) from None
    if status == 401:
        raise MonitorError("the monitor did not accept the code: it is mistyped, expired, already used or revoked; ask for a new one", status)
    if status == 429:
        raise MonitorError("too many enrollment attempts from this computer's address: wait a minute and try again", status)
    if status != 201:
        raise error_from_response(status, text, url)
    try:
        data = json.loads(text)
        enrollment = Enrollment(str(data["token"]), str(data["agent_id"]), str(data["role"]), str(data["participant_id"]))
    except (ValueError, KeyError, TypeError):
        raise MonitorError("the monitor's enrollment answer was not understood (version mismatch?)") from None
    if not enrollment.token or "\n" in enrollment.token:
        raise MonitorError("the monitor's enrollment answer was not understood (version mismatch?)")
    return enrollment


def agent_config_text(url: str, token_path: Path, ca_file: str | None, allow_insecure_http: bool) -> str:
    # json.dumps gives a valid TOML basic string (same escapes), also for Windows paths.
    lines = [
        f"# Written by 'sessionready enroll' on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "# The token is in token_file (readable only by its owner), never in this file.",
        "[monitor]",
        f"url = {json.dumps(url)}",
    ]
    if ca_file:
        lines.append(f"ca_file = {json.dumps(ca_file)}")
    if allow_insecure_http:
        lines.append("allow_insecure_http = true")
    lines.append(f"token_file = {json.dumps(str(token_path))}")
    return "\n".join(lines) + "\n"


def write_agent_files(
    config_path: Path, token_path: Path, token: str, url: str, ca_file: str | None, allow_insecure_http: bool, *, force: bool
) -> None:
    """The token file, then the config that points to it; both mode 0600 from their first byte."""
    created_token = False
    try:
        write_private(token_path, token + "\n", replace=force)
        created_token = not force
        write_private(config_path, agent_config_text(url, token_path, ca_file, allow_insecure_http), replace=force)
    except BaseException:
        if created_token:
            token_path.unlink(missing_ok=True)  # without its config the token file is only a stray secret
        raise


def write_private(path: Path, text: str, *, replace: bool) -> None:
    """Write a file only its owner can read. It is created 0600 (never world-readable, even
    briefly). Without ``replace`` an existing file (or a symlink) is an error; with it, the
    new content is written to a temporary file beside it that then takes its place at once."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
    target = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp") if replace else path
    fd = os.open(target, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(target, path)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
