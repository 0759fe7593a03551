"""Dashboard users: ``monitor user ...``, ``POST /api/v1/login``/``logout`` and user session tokens,
against real monitor processes on loopback and real SQLite files."""

from __future__ import annotations

import http.client
import json
import statistics
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from monitor.http.users import FAILURE_MEMORY_S, FREE_FAILURES, MAX_WAIT_S, failure_wait_s, pair_hash
from monitor.store.core import SQLiteStore, hash_token
from sessionready import client_address
from tests.conftest import Monitor, run_cli, start_monitor
from tests.stores import StoreFactory

PASSWORD = "correct horse battery staple"
DB = "sessionready.sqlite3"


def create_user(data_dir: Path, username: str, role: str, password: str = PASSWORD, participant: str | None = None):  # noqa: ANN201
    args = ["monitor", "user", "create", "--username", username, "--role", role, "--password-stdin", "--data-dir", str(data_dir)]
    if participant is not None:
        args += ["--participant", participant]
    return run_cli(*args, input=password + "\n")


def add_user(monitor: Monitor, username: str, role: str = "admin", password: str = PASSWORD, participant: str | None = None) -> None:
    result = create_user(monitor.data_dir, username, role, password, participant)
    assert result.returncode == 0, result.stderr


def login(monitor: Monitor, username: str, password: str = PASSWORD) -> tuple[int, dict]:
    return monitor.json("POST", "/api/v1/login", None, {"username": username, "password": password})


def login_from(monitor: Monitor, source: str, username: str, password: str = "not the password", address_header: str | None = None) -> tuple[int, dict, str | None]:
    """A login from another loopback address (127.0.0.0/8 is all ours), to tell the limits apart;
    ``address_header``: a client address header, as a dashboard sends it."""
    url = urllib.parse.urlsplit(monitor.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=(source, 0))
    headers = {"Content-Type": "application/json"}
    if address_header is not None:
        headers[client_address.HEADER] = address_header
    try:
        body = json.dumps({"username": username, "password": password})
        connection.request("POST", "/api/v1/login", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read()), response.getheader("Retry-After")
    finally:
        connection.close()


def user_list(data_dir: Path) -> str:
    result = run_cli("monitor", "user", "list", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[Callable]:
    """Start monitors with a [monitor] config table; all are stopped at the end."""
    started: list[Monitor] = []

    def start(**table: object) -> Monitor:
        config = tmp_path / f"monitor-{len(started)}.toml"
        config.write_text("[monitor]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items()))
        running = start_monitor(tmp_path / f"data-{len(started)}", "--config", str(config))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def test_first_admin_from_the_command_line_logs_in(monitor: Monitor) -> None:
    result = create_user(monitor.data_dir, "first.admin", "admin")
    assert result.returncode == 0, result.stderr
    assert "created admin user first.admin" in result.stdout and PASSWORD not in result.stdout + result.stderr

    status, answer = login(monitor, "First.Admin")  # login names are not case-sensitive
    assert status == 201, answer
    assert answer["token"].startswith("sru1_") and answer["role"] == "admin" and answer["participant_id"] is None
    assert answer["username"] == "first.admin" and answer["idle_timeout_s"] == 3600
    expires = datetime.fromisoformat(answer["expires_at"]).timestamp()
    assert abs(expires - (time.time() + 12 * 3600)) < 120, "the default login lasts 12 hours"

    status, me = monitor.json("GET", "/api/v1/whoami", answer["token"])
    assert status == 200
    assert me["kind"] == "user" and me["role"] == "admin" and me["username"] == "first.admin" and me["agent_id"] is None
    agent = monitor.token("client", "c-who")
    assert monitor.json("GET", "/api/v1/whoami", agent)[1]["kind"] == "agent"

    # /metrics stays for the metrics role: an admin login is not a scraper.
    status, body = monitor.json("GET", "/metrics", answer["token"])
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert monitor.request("GET", "/metrics", monitor.token("metrics", "prom"))[0] == 200


def test_refusals_look_the_same_whatever_the_reason(monitor: Monitor) -> None:
    add_user(monitor, "it.one", "it")
    add_user(monitor, "gone.user", "it")
    assert run_cli("monitor", "user", "disable", "gone.user", "--data-dir", str(monitor.data_dir)).returncode == 0

    def attempt(username: str, password: str) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        status, raw = monitor.request("POST", "/api/v1/login", None, json.dumps({"username": username, "password": password}).encode())
        return status, raw, time.perf_counter() - started

    answers = {
        "wrong password": attempt("it.one", PASSWORD + "x"),
        "unknown user": attempt("no.such.user", PASSWORD),
        "disabled user": attempt("gone.user", PASSWORD),
        "impossible name": attempt("Not A Name!", PASSWORD),
    }
    statuses = {reason: a[0] for reason, a in answers.items()}
    assert set(statuses.values()) == {401}, statuses
    bodies = {a[1] for a in answers.values()}
    assert len(bodies) == 1, "one answer for every reason: no user enumeration"
    assert json.loads(bodies.pop())["error"]["code"] == "invalid_login"

    # About the same time for an unknown name as for a wrong password (a dummy hash is checked).
    known = statistics.median(attempt("it.one", f"wrong password {i}")[2] for i in range(3))
    unknown = statistics.median(attempt(f"nobody{i}", PASSWORD)[2] for i in range(3))
    assert 0.4 < unknown / known < 2.5, (known, unknown)
    assert login(monitor, "it.one")[0] == 201


SECRET = "0123456789abcdef" * 4  # the dashboard's and the monitor's shared secret in these tests


def test_wrong_passwords_from_one_address_do_not_lock_the_owner_out(monitor: Monitor) -> None:
    """The attack: 11 wrong passwords locked a known username for 15 minutes, again and again.
    Now the guesser's own username+address pair waits, and the owner elsewhere does not."""
    add_user(monitor, "th.victim", "therapist", participant="th-victim")
    attacker, owner = "127.0.0.2", "127.0.0.3"
    answers = [login_from(monitor, attacker, "th.victim", f"guess {n}") for n in range(FREE_FAILURES + 3)]
    assert [a[0] for a in answers[:FREE_FAILURES]] == [401] * FREE_FAILURES, answers
    status, body, retry = answers[FREE_FAILURES]
    assert status == 429 and "for this username from this address" in body["error"]["message"] and retry == "1", answers
    # A long guessing run, as the store would hold it after hours (8 more: a 256 s wait):
    # even the right password waits at the guesser's address, answered before argon2 runs.
    store = SQLiteStore(monitor.data_dir / DB)
    try:
        for _ in range(8):
            store.record_login_failure(pair_hash("th.victim", attacker), None, FAILURE_MEMORY_S)
    finally:
        store.close()
    status, _, retry = login_from(monitor, attacker, "th.victim", PASSWORD)
    assert status == 429 and retry is not None and 200 < int(retry) <= 256, retry
    # The owner, from their own address, gets in at once.
    status, answer, _ = login_from(monitor, owner, "th.victim", PASSWORD)
    assert status == 201, answer
    assert "locked" not in user_list(monitor.data_dir)


def test_an_unknown_username_waits_like_a_known_one(monitor: Monitor) -> None:
    """The wait must not tell which usernames exist."""
    add_user(monitor, "it.known", "it")
    for name in ("it.known", "no.such.person"):
        statuses = [login_from(monitor, "127.0.0.4", name)[0] for _ in range(FREE_FAILURES + 1)]
        assert statuses == [401] * FREE_FAILURES + [429], (name, statuses)


def test_the_wait_grows_per_pair_is_bounded_and_ends(stores: StoreFactory) -> None:
    # 5 free, then 1, 2, 4 ... s: the 15th failure would be 2**10 = 1024 s, capped at 900.
    assert [failure_wait_s(n) for n in (0, FREE_FAILURES - 1, FREE_FAILURES, FREE_FAILURES + 1, FREE_FAILURES + 3)] == [0, 0, 1, 2, 8]
    assert failure_wait_s(FREE_FAILURES + 9) == 512 and failure_wait_s(FREE_FAILURES + 10) == MAX_WAIT_S == 900
    now = [1_000_000.0]
    store = stores.open(lambda: now[0])
    try:
        user = store.create_user("th.clock", "therapist", "th-clock", PasswordHasher().hash(PASSWORD))
        here, there = pair_hash("th.clock", "192.0.2.1"), pair_hash("th.clock", "192.0.2.2")
        for _ in range(3):
            store.record_login_failure(here, user.user_id, FAILURE_MEMORY_S)
        now[0] += 10
        assert store.login_failures(here, FAILURE_MEMORY_S) == (3, 10.0)
        assert store.login_failures(there, FAILURE_MEMORY_S) == (0, float("inf")), "another address is another pair"
        assert store.list_users()[0].failed_logins == 3 and store.list_users()[0].state(now[0]) == "active"
        # A correct password from anywhere: the account's count resets; the pair is cleared by the login.
        assert store.start_user_session(user.user_id, hash_token("sru1_a"), 3600, 600) is not None
        assert store.list_users()[0].failed_logins == 0
        store.clear_login_failures(here)
        assert store.login_failures(here, FAILURE_MEMORY_S) == (0, float("inf"))
        # A quiet day: the pair starts again.
        store.record_login_failure(here, user.user_id, FAILURE_MEMORY_S)
        now[0] += FAILURE_MEMORY_S + 1
        assert store.login_failures(here, FAILURE_MEMORY_S) == (0, float("inf"))
        store.record_login_failure(here, user.user_id, FAILURE_MEMORY_S)
        assert store.login_failures(here, FAILURE_MEMORY_S) == (1, 0.0)
        # A new password (user passwd) clears every wait of that account.
        assert store.set_user_password("th.clock", PasswordHasher().hash("another long password"))
        assert store.login_failures(here, FAILURE_MEMORY_S) == (0, float("inf"))
    finally:
        store.close()


def test_login_is_rate_limited_per_address_not_per_username(configured: Callable) -> None:
    monitor = configured(login_attempts_per_minute=3)
    # One address with fresh usernames: the address's budget runs out.
    assert [login_from(monitor, "127.0.0.9", f"someone{n}")[0] for n in range(3)] == [401, 401, 401]
    status, body, retry = login_from(monitor, "127.0.0.9", "someone.else")
    assert status == 429 and "from this address" in body["error"]["message"] and retry == "20"
    # One username from fresh addresses: no budget of the username's runs out (strangers
    # could spend it and keep its owner out); each address pays its own.
    assert [login_from(monitor, f"127.0.0.{n}", "victim")[0] for n in (2, 3, 4, 5, 6)] == [401] * 5
    # Others are not held up.
    assert login_from(monitor, "127.0.0.10", "bystander")[0] == 401


def test_the_dashboards_signed_address_is_the_one_limited(configured: Callable, tmp_path: Path) -> None:
    """The attack: every dashboard login came from the dashboard's address, so 32 wrong logins
    spent everyone's budget. With the shared secret each browser address has its own."""
    secret = tmp_path / "client-address.secret"
    secret.write_text(SECRET + "\n")
    # 5 a minute (the bucket refills one every 12 s), so that the budget runs out within the
    # test however slowly this machine hashes; the default 30 behaves the same, only later.
    monitor = configured(login_attempts_per_minute=5, client_address_secret_file=str(secret))
    add_user(monitor, "th.real", "therapist", participant="th-real")
    dashboard = "127.0.0.20"  # where all these logins come from, as from one dashboard
    signed = lambda address: client_address.sign(SECRET.encode(), address, time.time())  # noqa: E731
    spray = [login_from(monitor, dashboard, f"user{n}", address_header=signed("203.0.113.7"))[0] for n in range(7)]
    assert spray[:5] == [401] * 5 and spray[5:] == [429, 429], spray
    # A real user, through the same dashboard, from another address: in at once.
    status, answer, _ = login_from(monitor, dashboard, "th.real", PASSWORD, address_header=signed("198.51.100.4"))
    assert status == 201, answer
    # The dashboard's own address was never charged: a header-less login from it passes too.
    assert login_from(monitor, dashboard, "th.real", PASSWORD)[0] == 201


def test_an_unsigned_or_forged_address_header_is_ignored(configured: Callable, tmp_path: Path) -> None:
    secret = tmp_path / "client-address.secret"
    secret.write_text(SECRET)
    monitor = configured(login_attempts_per_minute=4, client_address_secret_file=str(secret))
    now = time.time()
    forged = [
        "v1;198.51.100.1;" + str(int(now)) + ";" + "0" * 64,  # unsigned: a made-up MAC
        client_address.sign(b"not the shared secret at all, but long", "198.51.100.2", now),
        client_address.sign(SECRET.encode(), "198.51.100.3", now - 3600),  # an old header, replayed
        "198.51.100.4",  # a bare address, as a proxy would write X-Forwarded-For
    ]
    # Each claims a fresh address; all are charged to the sender's own, whose budget is 4.
    assert [login_from(monitor, "127.0.0.30", "someone", address_header=h)[0] for h in forged] == [401] * 4
    status, body, _ = login_from(monitor, "127.0.0.30", "someone", address_header=client_address.sign(b"x" * 40, "198.51.100.5", now))
    assert status == 429 and "from this address" in body["error"]["message"]
    assert "unsigned client address header" in monitor.logs()


def test_a_correctly_signed_header_means_nothing_to_a_monitor_without_the_secret(configured: Callable) -> None:
    monitor = configured(login_attempts_per_minute=2)
    headers = [client_address.sign(SECRET.encode(), f"198.51.100.{n}", time.time()) for n in range(3)]
    assert [login_from(monitor, "127.0.0.31", "someone", address_header=h)[0] for h in headers] == [401, 401, 429]


def test_a_missing_secret_file_stops_the_monitor_with_one_sentence(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(f'[monitor]\nclient_address_secret_file = "{tmp_path / "absent.secret"}"\n')
    result = run_cli("monitor", "--data-dir", str(tmp_path / "data"), "--port", "0", "--config", str(config), timeout=60)
    assert result.returncode != 0 and "client address secret file" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_logout_ends_the_login_and_only_logins_log_out(monitor: Monitor) -> None:
    add_user(monitor, "admin.out")
    token = login(monitor, "admin.out")[1]["token"]
    other = login(monitor, "admin.out")[1]["token"]
    assert monitor.request("POST", "/api/v1/logout", token)[0] == 204
    status, body = monitor.json("GET", "/api/v1/whoami", token)
    assert status == 401 and body["error"]["code"] == "invalid_token"
    assert monitor.request("POST", "/api/v1/logout", token)[0] == 401
    assert monitor.json("GET", "/api/v1/whoami", other)[0] == 200, "other logins of the same user go on"

    agent = monitor.token("therapist", "th-out")
    status, body = monitor.json("POST", "/api/v1/logout", agent)
    assert status == 403 and "token revoke" in body["error"]["message"]
    assert monitor.json("GET", "/api/v1/whoami", agent)[0] == 200


def test_disabling_a_user_or_changing_the_password_ends_their_logins(monitor: Monitor) -> None:
    add_user(monitor, "it.two", "it")
    add_user(monitor, "it.three", "it")
    two, three = login(monitor, "it.two")[1]["token"], login(monitor, "it.three")[1]["token"]
    assert run_cli("monitor", "user", "disable", "it.two", "--data-dir", str(monitor.data_dir)).returncode == 0
    assert monitor.json("GET", "/api/v1/whoami", two)[0] == 401
    passwd = run_cli("monitor", "user", "passwd", "it.three", "--password-stdin", "--data-dir", str(monitor.data_dir), input="another long password\n")
    assert passwd.returncode == 0, passwd.stderr
    assert monitor.json("GET", "/api/v1/whoami", three)[0] == 401


def test_sessions_expire_absolutely_and_when_idle(stores: StoreFactory) -> None:
    now = [2_000_000.0]
    store = stores.open(lambda: now[0])
    try:
        user = store.create_user("th.idle", "therapist", "th-idle", PasswordHasher().hash(PASSWORD))
        idle, lasting = hash_token("sru1_idle"), hash_token("sru1_lasting")
        assert store.start_user_session(user.user_id, idle, 100, 30)
        assert store.start_user_session(user.user_id, lasting, 100, 30)
        for step in (20, 25):  # used every 20-25 s: the idle limit of 30 s never passes
            now[0] += step
            principal = store.authenticate_user(lasting)
            assert principal is not None and principal.participant_id == "th-idle" and principal.kind == "user"
        assert store.authenticate_user(idle) is None, "unused for 45 s of an allowed 30"
        now[0] += 25
        assert store.authenticate_user(lasting) is not None
        now[0] += 25  # 95 s in: still within the 100 s
        assert store.authenticate_user(lasting) is not None
        now[0] += 6
        assert store.authenticate_user(lasting) is None, "past the absolute lifetime, however busy"
    finally:
        store.close()


def test_configured_lifetimes_reach_the_login(configured: Callable) -> None:
    monitor = configured(user_session_hours=0.5, user_idle_minutes=5)
    add_user(monitor, "it.short", "it")
    status, answer = login(monitor, "it.short")
    assert status == 201 and answer["idle_timeout_s"] == 300
    assert abs(datetime.fromisoformat(answer["expires_at"]).timestamp() - (time.time() + 1800)) < 60
    status, me = monitor.json("GET", "/api/v1/whoami", answer["token"])
    assert abs(datetime.fromisoformat(me["expires_at"]).timestamp() - (time.time() + 300)) < 60, "whoami shows the idle expiry"


def test_a_therapist_login_is_not_a_therapist_agent(monitor: Monitor) -> None:
    add_user(monitor, "th.user", "therapist", participant="th-7")
    token = login(monitor, "th.user")[1]["token"]
    status, me = monitor.json("GET", "/api/v1/whoami", token)
    assert status == 200 and me["role"] == "therapist" and me["participant_id"] == "th-7" and me["kind"] == "user"

    agent = monitor.token("therapist", "th-7")
    agent_id = monitor.json("GET", "/api/v1/whoami", agent)[1]["agent_id"]
    machine_only = [
        ("POST", "/api/v1/checks", b"{}"),
        ("POST", "/api/v1/reports", b"{}"),
        ("GET", f"/api/v1/agents/{agent_id}/checks", None),
        ("GET", "/api/v1/agent/sessions", None),
        ("POST", "/api/v1/probe/session", None),
        ("GET", "/api/v1/probe/download?bytes=1024", None),
        ("POST", "/api/v1/probe/upload", b"x" * 16),
    ]
    for method, path, body in machine_only:
        status, raw = monitor.request(method, path, token, body)
        assert status == 403, (path, status, raw)
        assert json.loads(raw)["error"]["code"] == "forbidden"
    # The therapist's machine still may.
    assert monitor.request("POST", "/api/v1/probe/session", agent)[0] == 200
    # Reading one check is for people too (the dashboard's check page): a check that is not
    # the therapist's nor a client's of theirs is simply not found.
    assert monitor.request("GET", f"/api/v1/checks/{'0' * 32}", token)[0] == 404


def test_no_password_or_token_in_the_log_or_the_store(monitor: Monitor) -> None:
    add_user(monitor, "th.secret", "therapist", participant="th-9")
    status, answer = login(monitor, "th.secret")
    assert status == 201
    token = answer["token"]
    assert monitor.json("GET", "/api/v1/whoami", token)[0] == 200
    login(monitor, "th.secret", "a wrong password typed here")
    login(monitor, "correct horse battery staple typed as a name")
    assert monitor.request("POST", "/api/v1/logout", token)[0] == 204
    assert monitor.stop() == 0

    logs = monitor.logs()
    for secret in (PASSWORD, "a wrong password typed here", token, token.split("_", 1)[1]):
        assert secret not in logs
    entries = [json.loads(line) for line in logs.splitlines() if line.strip()]
    assert any(e.get("message") == "login" for e in entries) and any(e.get("reason") == "wrong_password" for e in entries)

    files = [p for p in monitor.data_dir.iterdir() if p.name.startswith(DB)]
    for path in files:
        raw = path.read_bytes()
        for secret in (PASSWORD, "a wrong password typed here", token, token.split("_", 1)[1]):
            assert secret.encode() not in raw, (path.name, secret[:4])
    store = SQLiteStore(monitor.data_dir / DB)
    try:
        stored = store.user_for_login("th.secret")
    finally:
        store.close()
    assert stored is not None
    assert stored[1].startswith("$argon2id$v=19$m=65536,t=3,p=4$"), stored[1][:32]


def test_an_old_hash_is_replaced_on_login(monitor: Monitor) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    store = SQLiteStore(monitor.data_dir / DB)
    try:
        store.create_user("it.legacy", "it", None, weak)
    finally:
        store.close()
    assert login(monitor, "it.legacy")[0] == 201
    store = SQLiteStore(monitor.data_dir / DB)
    try:
        stored = store.user_for_login("it.legacy")
    finally:
        store.close()
    assert stored is not None and stored[1] != weak and stored[1].startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PasswordHasher().verify(stored[1], PASSWORD)
    assert login(monitor, "it.legacy")[0] == 201


def test_bad_login_requests_get_a_clear_400(monitor: Monitor) -> None:
    for body in (b"not json", b'{"username": "a"}', b'{"username": "abc", "password": 5}', json.dumps({"username": "abc", "password": "x" * 2000}).encode()):
        status, raw = monitor.request("POST", "/api/v1/login", None, body)
        assert status == 400, (body[:30], raw)
        assert json.loads(raw)["error"]["code"] in ("invalid_json", "invalid_field")


BAD_CREATES = [
    (["--username", "th.x", "--role", "therapist"], "a long enough password\n", "needs --participant"),
    (["--username", "it.x", "--role", "it", "--participant", "p1"], "a long enough password\n", "therapists only"),
    (["--username", "ab", "--role", "admin"], "a long enough password\n", "3 to 64"),
    (["--username", "Admin", "--role", "admin"], "a long enough password\n", "lowercase"),
    (["--username", "th.y", "--role", "therapist", "--participant", "Jane Doe"], "a long enough password\n", "pseudonymous"),
    (["--username", "adm.x", "--role", "admin"], "too short\n", "at least 12"),
    (["--username", "adm.y", "--role", "admin"], "", "stdin is empty"),
]


def test_user_create_refuses_bad_input_and_changes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    for args, stdin, message in BAD_CREATES:
        result = run_cli("monitor", "user", "create", *args, "--password-stdin", "--data-dir", str(data_dir), input=stdin)
        assert result.returncode == 3 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert user_list(data_dir).strip().splitlines()[1:] == []


def test_passwords_are_never_taken_from_the_command_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = run_cli("monitor", "user", "create", "--username", "adm.z", "--role", "admin", "--password", "s3cret-in-argv-123", "--data-dir", str(data_dir))
    assert result.returncode == 3 and "never taken on the command line" in result.stderr
    assert "s3cret-in-argv-123" not in result.stderr + result.stdout
    # Without a terminal and without --password-stdin there is nobody to ask.
    result = run_cli("monitor", "user", "create", "--username", "adm.z", "--role", "admin", "--data-dir", str(data_dir), input="")
    assert result.returncode == 3 and "--password-stdin" in result.stderr
    assert create_user(data_dir, "adm.z", "admin").returncode == 0
    duplicate = create_user(data_dir, "adm.z", "it")
    assert duplicate.returncode == 3 and "taken" in duplicate.stderr
    assert run_cli("monitor", "user", "disable", "nobody", "--data-dir", str(data_dir)).returncode == 3
    passwd = run_cli("monitor", "user", "passwd", "nobody", "--password-stdin", "--data-dir", str(data_dir), input="long enough password\n")
    assert passwd.returncode == 3 and "no user named 'nobody'" in passwd.stderr
    listing = user_list(data_dir)
    assert "adm.z" in listing and "$argon2" not in listing
