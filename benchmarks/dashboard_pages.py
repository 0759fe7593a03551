"""The dashboard's pages timed in a real browser, with 90 days × 200 agents of history loaded.

    python -m benchmarks.dashboard_pages [--data-dir DIR] [--days 90] [--agents 200] [--interval-s 3600]
                                         [--runs 5] [--output docs/benchmarks.md | --no-write]

What it does:
- starts a real monitor on ``--data-dir`` (``risk_horizon_minutes = 1440``, so its risk engine
  assesses all of today's sessions) and loads it with ``benchmarks/load_history.py`` through the
  ingest API: ``--days`` × ``--agents``, one background sample per agent every ``--interval-s``
  (3600 by default: the trends rollups a request reads have as many rows as at the agents'
  300 s, docs/trends.md; 300 loads the full 5.2 M samples in about 52 minutes), the historic
  sessions, and today's day (100 sessions in a zone where it is early afternoon, fresh checks,
  risk evaluated by the running monitor). A ``--data-dir`` that already holds a load is reused:
  only today's sessions and checks are refreshed, so a rerun takes about a minute;
- starts the real dashboard (``sessionready dashboard --monitor URL --port 0``) and logs in as
  an it user made with ``sessionready monitor user create --password-stdin`` (disabled at the
  end), in Debian's Chromium driven by Selenium through ``/usr/bin/chromedriver``, headless,
  with the browser's time zone set to the data's;
- times each view in the page itself (``performance.now()``; a script installed before every
  document starts watches the DOM): **navigation** is a Dash in-app move (``history.pushState``
  and the event ``dcc.Link`` sends) from a light page (a "Check not found", reached untimed)
  until the view is drawn; a **full load**
  is a new document, from the navigation's start (``performance.timeOrigin``) until drawn;
  a **filter change** is the click on a Trends dropdown's choice until the new data is drawn.
  "Drawn" is the DOM condition below and then the next animation frame:
  Today: ``#today-subtitle`` says "updated" and ``#today-list`` holds ``.session-card``s or
  ``#today-empty``; Trends: ``#trends-status`` says "Showing" (with the view's period and
  filter), nothing in ``#trends-page`` is loading, and every graph there has drawn its traces.
- reference, measured the same way in the same run: the "Page not found" view, which makes no
  call to the monitor (only the dashboard's router callback);
- where the time goes, per view: the time a Dash callback request was in flight (the browser's
  Resource Timing), and the monitor's own handling time for the calls made meanwhile (its JSON
  access log, ``duration_s``).

Writes its section of docs/benchmarks.md (replacing only that section) and prints it. ``make
bench`` runs it too (``benchmarks.run``, name ``dashboard``), loading afresh into its temporary
directory (6 to 11 minutes for the load on the project's 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from benchmarks.core import BenchmarkError, Context, Section, spread, table
from benchmarks.load_history import SUMMARY_FILE, read_tokens
from benchmarks.processes import PYTHON, SESSIONREADY, Server, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TITLE = "Dashboard pages in the browser: Today and Trends"
WAIT_S = 60.0  # a view not drawn by then is a failure, not a number
RISK_PASS_S = 15.0  # the monitor's risk_interval_s (its default)
MONITOR_CONFIG = f"[monitor]\nrisk_horizon_minutes = 1440\nrisk_interval_s = {RISK_PASS_S}\n"
THERAPIST = "bt-001"  # the filtered Trends view

# Installed before every document starts (Page.addScriptToEvaluateOnNewDocument): the ready
# conditions, a DOM watcher, and the in-app navigation. Times are performance.now() values,
# milliseconds since the document's navigation started.
PROBE_JS = r"""
(() => {
  const text = (selector) => (document.querySelector(selector) || {}).textContent || '';
  const ready = {
    notfound: () => text('#shell-page h1').trim() === 'Page not found',
    check: () => !!document.querySelector('#check-not-found, #check-forbidden, #check-result'),
    today: () => {
      const list = document.querySelector('#today-list');
      return !!list && text('#today-subtitle').includes('updated') && !!list.querySelector('.session-card, #today-empty');
    },
    trends: () => {
      const page = document.querySelector('#trends-page');
      if (!page || !text('#trends-status').startsWith('Showing') || page.querySelector('[data-dash-is-loading="true"]')) return false;
      const graphs = [...page.querySelectorAll('.dash-graph')];
      return graphs.length > 0 && graphs.every((graph) => {
        const plot = graph.querySelector('.js-plotly-plot');
        return !!plot && !!plot.querySelector('.main-svg') && Array.isArray(plot.data) && plot.data.length > 0;
      });
    },
  };
  const signal = { notfound: '#shell-page', check: '#shell-page', today: '#today-subtitle', trends: '#trends-status' };
  const isReady = (view, expect) => ready[view]() && expect.every((part) => text(signal[view]).includes(part));

  function waitFor(view, expect, timeoutMs) {
    return new Promise((resolve) => {
      let settled = false;
      const stop = () => { settled = true; observer.disconnect(); clearInterval(poll); clearTimeout(limit); };
      const check = () => {
        if (settled || !isReady(view, expect)) return;
        stop();
        const domMs = performance.now();
        requestAnimationFrame(() => setTimeout(() => resolve({ dom_ms: domMs, drawn_ms: performance.now() })));
      };
      const observer = new MutationObserver(check);
      observer.observe(document, { childList: true, subtree: true, attributes: true, characterData: true });
      const poll = setInterval(check, 20);
      const limit = setTimeout(() => { stop(); resolve(null); }, timeoutMs);
      check();
    });
  }

  function requests(sinceMs) {
    return performance.getEntriesByType('resource').filter((e) => e.startTime >= sinceMs).map((e) => ({
      path: new URL(e.name).pathname, start_ms: e.startTime, end_ms: e.responseEnd,
    }));
  }

  function measured(startMs, view, expect, timeoutMs) {
    return waitFor(view, expect, timeoutMs).then((at) => at && { start_ms: startMs, ...at, requests: requests(startMs) });
  }

  window.__srBench = {
    navigate(path, view, expect, timeoutMs) {
      performance.clearResourceTimings();
      const startMs = performance.now();
      history.pushState({}, '', path);
      window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'));
      return measured(startMs, view, expect, timeoutMs);
    },
    afterNextPointerDown(view, expect, timeoutMs) {
      performance.clearResourceTimings();
      return new Promise((resolve) => {
        document.addEventListener('pointerdown', (event) => resolve(event.timeStamp), { capture: true, once: true });
      }).then((startMs) => measured(startMs, view, expect, timeoutMs));
    },
  };
  performance.setResourceTimingBufferSize(2000);
  const cold = sessionStorage.getItem('srBenchFullLoad');
  if (cold) {
    sessionStorage.removeItem('srBenchFullLoad');
    const { view, expect, timeoutMs } = JSON.parse(cold);
    window.__srBenchFullLoad = measured(0, view, expect, timeoutMs);
  }
})();
"""


@dataclass(frozen=True)
class View:
    """One thing a person opens: where, which ready condition, and what it must say when drawn."""

    key: str
    label: str
    path: str
    ready: str  # notfound | check | today | trends
    expect: tuple[str, ...] = ()
    target_s: float | None = None


@dataclass(frozen=True)
class Timing:
    """One measured view, in seconds: the whole wait, and the parts of it we can attribute."""

    total_s: float
    callbacks_s: float  # some Dash callback request in flight (dashboard + monitor + network)
    callbacks: int
    monitor_s: float  # the monitor's own handling time, summed over its calls meanwhile
    monitor_calls: int


def views_for(zone: str, now_s: float) -> dict[str, View]:
    today = datetime.fromtimestamp(now_s, ZoneInfo(zone)).date()
    first90 = (today - timedelta(days=89)).isoformat()
    period90 = f"from={first90}&to={today.isoformat()}"
    return {
        view.key: view
        for view in (
            View("notfound", "Reference: “Page not found” (no data of its own)", "/benchmark-no-such-page", "notfound"),
            View("today", "Today (it: every session of the day)", "/", "today", target_s=1.0),
            View("trends28", "Trends, default (28 days, everyone)", "/trends", "trends", ("(28 days)",), 2.0),
            View("trends90", "Trends, 90 days, everyone", f"/trends?{period90}", "trends", ("(90 days)",), 2.0),
            View("trends90wifi", "Trends, 90 days, link type wifi", f"/trends?{period90}&link_type=wifi", "trends", ("(90 days)", "wifi"), 2.0),
            View("trends90therapist", f"Trends, 90 days, therapist {THERAPIST}", f"/trends?{period90}&therapist={THERAPIST}", "trends", ("(90 days)", THERAPIST), 2.0),
        )
    }


# Every timed navigation starts on this light page, reached untimed, so that no view pays for
# taking down the one before it (a Dash app re-renders a page only when the path changes): a
# check that does not exist, which looks unlike every view timed.
START = View("start", "“Check not found”", "/check/" + "0" * 32, "check")
ROUND = ("notfound", "today", "trends28", "trends90", "trends90wifi", "trends90therapist")
FULL_LOADS = ("notfound", "today", "trends28", "trends90")


# --- the monitor, its data, the dashboard ----------------------------------------------------


def start_monitor(data_dir: Path, workdir: Path, env: dict[str, str]) -> Server:
    config = workdir / "monitor.toml"
    config.write_text(MONITOR_CONFIG)
    command = [*SESSIONREADY, "monitor", "--config", str(config), "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", "0"]
    return start_server("the monitor", command, workdir / "monitor.log", env)


def load_data(monitor: Server, data_dir: Path, days: int, agents: int, interval_s: float, env: dict[str, str]) -> tuple[dict, float | None]:
    """Load history and today (or only today, on a loaded ``data_dir``) with load_history; its
    summary, and the wall time of a fresh load (None when reused)."""
    reused = (data_dir / SUMMARY_FILE).exists()
    command = [PYTHON, "-m", "benchmarks.load_history", "--monitor", monitor.url, "--data-dir", str(data_dir)]
    command += ["--today-only"] if reused else ["--days", str(days), "--agents", str(agents), "--interval-s", str(interval_s)]
    print(f"dashboard_pages: {'reusing the load in' if reused else 'loading'} {data_dir}", file=sys.stderr, flush=True)
    started = time.monotonic()
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env, check=False)  # progress on our stderr
    if result.returncode != 0:
        raise BenchmarkError(f"loading the data failed (load_history exit {result.returncode}); see its messages above")
    return json.loads(result.stdout), None if reused else time.monotonic() - started


def wait_for_risk(monitor: Server, data_dir: Path, today: dict) -> dict[str, int]:
    """Wait for the engine's next passes over today's new checks; the day's session states."""
    time.sleep(RISK_PASS_S + 5)
    _, it_token = read_tokens(data_dir)
    query = urllib.parse.urlencode({"day": today["day"], "tz": today["zone"], "limit": "1000"})
    request = urllib.request.Request(f"{monitor.url}/api/v1/sessions?{query}", headers={"Authorization": f"Bearer {it_token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        sessions = json.load(response)["sessions"]
    states: dict[str, int] = {}
    for s in sessions:
        state = "over" if s["state"] == "ended" else (s.get("risk") or {}).get("state") or "not assessed"
        states[state] = states.get(state, 0) + 1
    return states


@contextmanager
def it_user(data_dir: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A fresh it user for this run (name and password), disabled afterwards."""
    username, password = f"bench.dash.{secrets.token_hex(3)}", secrets.token_urlsafe(18)

    def cli(*args: str, stdin: str | None = None) -> None:
        result = subprocess.run([*SESSIONREADY, "monitor", "user", *args, "--data-dir", str(data_dir)], input=stdin, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise BenchmarkError(f"sessionready monitor user {args[0]} failed: {result.stderr.strip()}")

    cli("create", "--username", username, "--role", "it", "--password-stdin", stdin=password + "\n")
    try:
        yield username, password
    finally:
        cli("disable", username)


def start_dashboard(monitor: Server, workdir: Path, env: dict[str, str]) -> Server:
    state = workdir / "dashboard-state"
    state.mkdir(exist_ok=True)
    command = [*SESSIONREADY, "dashboard", "--monitor", monitor.url, "--host", "127.0.0.1", "--port", "0"]
    return start_server("the dashboard", command, workdir / "dashboard.log", {**env, "STATE_DIRECTORY": str(state)})


# --- the browser ---------------------------------------------------------------------------


class Browser:
    """Chromium through the system chromedriver, with the probe script in every document."""

    def __init__(self, url: str, zone: str, monitor_log: Path) -> None:
        if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
            raise BenchmarkError("Debian's chromium and chromium-driver are not installed (make system-deps)")
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        options = Options()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000"):  # fmt: skip
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_script_timeout(WAIT_S + 10)
        self.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": zone})
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE_JS})
        self.url = url
        self.monitor_log = monitor_log

    def close(self) -> None:
        self.driver.quit()

    def log_in(self, username: str, password: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(self.url + "/login")
        self.driver.find_element(By.CSS_SELECTOR, "#login-username").send_keys(username)
        self.driver.find_element(By.CSS_SELECTOR, "#login-password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "#login-submit").click()
        WebDriverWait(self.driver, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#today-list .session-card, #today-list #today-empty"))

    def navigate(self, view: View) -> Timing:
        """An in-app move to ``view`` from the page shown now."""
        return self._timed(view, lambda: self.driver.execute_async_script(_await("__srBench.navigate(arguments[0], arguments[1], arguments[2], arguments[3])"), view.path, view.ready, list(view.expect), WAIT_S * 1000))

    def full_load(self, view: View) -> Timing:
        """A new document for ``view``, timed from its navigation start (browser cache warm)."""

        def load() -> dict:
            plan = json.dumps({"view": view.ready, "expect": list(view.expect), "timeoutMs": WAIT_S * 1000})
            self.driver.execute_script("sessionStorage.setItem('srBenchFullLoad', arguments[0])", plan)
            self.driver.get(self.url + view.path)
            return self.driver.execute_async_script(_await("window.__srBenchFullLoad"))

        return self._timed(view, load)

    def change_filter(self, view: View, dropdown: str, choice: str) -> Timing:
        """Pick ``choice`` in the Trends dropdown ``dropdown``, as a person does."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        def change() -> dict:
            self.driver.find_element(By.CSS_SELECTOR, f"#trends-{dropdown}").click()
            option = WebDriverWait(self.driver, 10).until(lambda d: next((o for o in d.find_elements(By.CSS_SELECTOR, ".dash-dropdown-options .dash-dropdown-option") if o.text.strip() == choice), None))
            self.driver.execute_script("window.__srBenchFilter = __srBench.afterNextPointerDown(arguments[0], arguments[1], arguments[2])", view.ready, list(view.expect), WAIT_S * 1000)
            option.click()
            return self.driver.execute_async_script(_await("window.__srBenchFilter"))

        return self._timed(view, change)

    def renderer_version(self) -> str:
        """``4.4.1`` from the renderer's script address (``dash_renderer.v4_4_1m….min.js``)."""
        sources = self.driver.execute_script("return [...document.scripts].map((s) => s.src)")
        found = next((s for s in sources if "/dash_renderer.v" in s), "")
        return found.split("/dash_renderer.v")[1].split("m")[0].replace("_", ".") if found else "unknown"

    def console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.driver.get_log("browser") if entry.get("level") == "SEVERE"]

    def _timed(self, view: View, act: Callable[[], dict]) -> Timing:
        log_from = self.monitor_log.stat().st_size
        at = self._result(act(), view.label)
        time.sleep(0.05)  # the monitor writes its access log line just after answering
        monitor_s, monitor_calls = monitor_time(self.monitor_log, log_from)
        callbacks = [(r["start_ms"], r["end_ms"]) for r in at["requests"] if r["path"].endswith("/_dash-update-component")]
        return Timing((at["drawn_ms"] - at["start_ms"]) / 1000, busy_ms(callbacks, at["drawn_ms"]) / 1000, len(callbacks), monitor_s, monitor_calls)

    @staticmethod
    def _result(at: dict | None, what: str) -> dict:
        if not at:
            raise BenchmarkError(f"{what}: not drawn within {WAIT_S:.0f} s")
        return at


def _await(promise: str) -> str:
    """An async WebDriver script that hands ``promise``'s value back (null on a failure)."""
    return f"const done = arguments[arguments.length - 1]; Promise.resolve({promise}).then(done, () => done(null));"


def busy_ms(intervals: list[tuple[float, float]], until_ms: float) -> float:
    """How long at least one of the intervals was open (overlaps counted once), up to ``until_ms``."""
    busy, reached = 0.0, float("-inf")
    for start, end in sorted(intervals):
        end = min(end, until_ms)
        if end > max(start, reached):
            busy += end - max(start, reached)
        reached = max(reached, end)
    return busy


def monitor_time(log: Path, offset: int) -> tuple[float, int]:
    """The monitor's handling time (s) and number of its HTTP requests logged after ``offset``."""
    with log.open("rb") as file:
        file.seek(offset)
        lines = file.read().decode(errors="replace").splitlines()
    total, count = 0.0, 0
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("message") == "request" and "duration_s" in entry:
            total += float(entry["duration_s"])
            count += 1
    return total, count


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    navigations: dict[str, list[Timing]]
    full_loads: dict[str, list[Timing]]
    filter_changes: list[Timing]
    console_errors: list[str]
    renderer: str  # the Dash renderer's version, as the browser loaded it


def measure(browser: Browser, views: dict[str, View], runs: int) -> Results:
    def from_start(view: View) -> Timing:
        browser.navigate(START)
        time.sleep(0.2)  # the start page's own monitor call reaches the access log before timing
        return browser.navigate(view)

    for key in ROUND:  # warm-up, not counted: the first Trends loads plotly.js into the page
        from_start(views[key])
    navigations: dict[str, list[Timing]] = {key: [] for key in views}
    for run in range(runs):
        print(f"dashboard_pages: round {run + 1} of {runs}", file=sys.stderr, flush=True)
        for key in ROUND:
            navigations[key].append(from_start(views[key]))
    filter_changes = []
    for _ in range(runs):
        from_start(views["trends90"])
        filter_changes.append(browser.change_filter(views["trends90wifi"], "link_type", "wifi"))
    full_loads: dict[str, list[Timing]] = {key: [] for key in FULL_LOADS}
    for _ in range(runs):
        for key in FULL_LOADS:
            full_loads[key].append(browser.full_load(views[key]))
    return Results(navigations, full_loads, filter_changes, browser.console_errors(), browser.renderer_version())


def median_of(timings: list[Timing], field: str) -> float:
    return statistics.median(getattr(t, field) for t in timings)


def run_benchmark(data_dir: Path, workdir: Path, env: dict[str, str], days: int, agents: int, interval_s: float, runs: int) -> tuple[Results, dict, dict[str, int], float | None, dict[str, View]]:
    with start_monitor(data_dir, workdir, env) as monitor:
        summary, load_s = load_data(monitor, data_dir, days, agents, interval_s, env)
        today = summary["today"]
        states = wait_for_risk(monitor, data_dir, today)
        views = views_for(today["zone"], time.time())
        with it_user(data_dir, env) as (username, password), start_dashboard(monitor, workdir, env) as dashboard:
            results = measure_in_browser(dashboard.url, today["zone"], monitor.log_path, (username, password), views, runs)
    return results, summary, states, load_s, views


def measure_in_browser(url: str, zone: str, monitor_log: Path, login: tuple[str, str], views: dict[str, View], runs: int) -> Results:
    try:
        from selenium.common.exceptions import WebDriverException
    except ImportError:
        raise BenchmarkError("selenium is not installed (the test extra: pip install -e '.[test]')") from None
    try:
        browser = Browser(url, zone, monitor_log)
        try:
            browser.log_in(*login)
            return measure(browser, views, runs)
        finally:
            browser.close()
    except WebDriverException as error:
        raise BenchmarkError(f"the browser failed: {(error.msg or type(error).__name__).strip().splitlines()[0]}") from error


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the table: a view, how it was reached, its timings, and what it is held to."""

    label: str
    how: str
    timings: list[Timing]
    target_s: float | None
    reference_s: float

    @property
    def median_s(self) -> float:
        return median_of(self.timings, "total_s")

    @property
    def missed(self) -> bool:
        return self.target_s is not None and self.median_s >= self.target_s

    def cells(self) -> list[object]:
        browser = statistics.median(t.total_s - t.callbacks_s for t in self.timings)
        return [
            self.label, self.how, len(self.timings), spread([t.total_s for t in self.timings], 3), f"{self.median_s / self.reference_s:.1f}",
            f"< {self.target_s:.0f} s" if self.target_s else "", "" if self.target_s is None else "**no**" if self.missed else "yes",
            f"{median_of(self.timings, 'callbacks_s'):.3f} ({statistics.median(t.callbacks for t in self.timings):.0f})",
            f"{median_of(self.timings, 'monitor_s'):.3f} ({statistics.median(t.monitor_calls for t in self.timings):.0f})",
            f"{browser:.3f}",
        ]  # fmt: skip


HEADERS = ["View", "How", "Runs", "Seconds, median (min–max)", "× reference", "Target", "Met",
           "Callback requests in flight, s (requests)", "Monitor's own time, s (calls)", "Browser's own work, s"]  # fmt: skip


def table_rows(results: Results, views: dict[str, View]) -> list[Row]:
    reference = median_of(results.navigations["notfound"], "total_s")
    reference_full = median_of(results.full_loads["notfound"], "total_s")
    rows = [Row(views[key].label, "navigation", results.navigations[key], views[key].target_s, reference) for key in views]
    rows.append(Row("Trends, 90 days: link type all → wifi", "filter change", results.filter_changes, views["trends90wifi"].target_s, reference))
    rows += [Row(views[key].label, "full load", results.full_loads[key], views[key].target_s, reference_full) for key in FULL_LOADS]
    return rows


def report(results: Results, summary: dict, states: dict[str, int], load_s: float | None, views: dict[str, View], runs: int, quick: bool) -> str:
    rows = table_rows(results, views)
    today = summary["today"]
    loaded = (
        f"The dashboard against a monitor holding {summary['days']} days × {summary['agents']} agents, one background sample per"
        f" agent every {summary['interval_s']:.0f} s, up to {summary['history_until']}, loaded by `benchmarks/load_history.py` through"
        f" the ingest API ({summary['path']}): {summary['samples_stored']:,} samples in {summary['sample_seconds']:.0f} s"
        f" ({summary['samples_per_s']:,} samples/s), {summary['sessions']:,} historic sessions with their outcomes in"
        f" {summary['session_seconds']:.0f} s, tokens in {summary['token_seconds']:.1f} s."
        + (f" The whole load took {load_s:.0f} s." if load_s is not None else " This run reused that load (`--data-dir`).")
        + f" Today ({today['day']} in {today['zone']}): {today['sessions']} sessions ("
        + ", ".join(f"{count} {state.replace('_', ' ')}" for state, count in sorted(states.items()))
        + "), checks posted just before the run, risk evaluated by the monitor's engine."
    )
    text = [
        loaded,
        "",
        f"Timed in Chromium (headless; Selenium with the system chromedriver; Dash renderer {results.renderer}), logged in"
        " as an it user, in the page itself: **navigation** = an in-app move from another page (`history.pushState`,"
        " as a `dcc.Link` click does) until the view is drawn; **filter change** = the click on a dropdown choice until"
        " the new data is drawn; **full load** = a new document, from its navigation start, browser cache warm."
        " Drawn = the content is in the DOM (Today: the session cards; Trends: `#trends-status` says “Showing …” for"
        " that period and filter, and every graph has drawn its traces) and the next frame is out. Every navigation"
        " starts on a light page (“Check not found”, reached untimed), so none pays for taking down the page before;"
        " leaving it, the app repeats that page's lookup (`GET /api/v1/checks/{id}`, a 404 in a few ms): the monitor"
        " call in the reference's navigation row, and one of the calls in every other navigation row."
        f" Median of {runs} runs each, after a warm-up pass. **Reference**: the “Page not found”"
        " view, which asks the monitor nothing; “× reference” divides by its median for the same kind of move.",
        "",
        "Where the time goes: **callback requests in flight** = time with at least one Dash callback request open"
        " (Resource Timing: the dashboard's work, its calls to the monitor, loopback); **monitor's own time** = the"
        " monitor's handling time for the calls made meanwhile (its access log, `duration_s`, summed); **browser's own"
        " work** = the rest: Dash's renderer, React, Plotly drawing, layout.",
        "",
        table(HEADERS, [row.cells() for row in rows]),
        "",
    ]
    missed = [row for row in rows if row.missed]
    if missed:
        text.append("**Targets missed** (< 1 s Today, < 2 s Trends): " + "; ".join(f"{row.label}, {row.how}: {row.median_s:.2f} s" for row in missed) + ".")
    else:
        text.append("**Targets met**: every Today view under 1 s and every Trends view under 2 s (medians).")
    text.append(f"Browser console errors during the run: {len(results.console_errors)}.")
    if quick:
        text.append("**Quick run: a small data set, one run each; not the acceptance numbers.**")
    return "\n".join(text) + "\n"


def replace_section(document: str, title: str, body: str) -> str:
    """``document`` with the section titled ``title`` (``## N. title``) replaced by ``body``, or
    added before "Adding a benchmark" with the next number; other sections are left as they are."""
    lines = document.splitlines()
    headings = [i for i, line in enumerate(lines) if line.startswith("## ")]
    mine = next((i for i in headings if line_title(lines[i]) == title), None)
    if mine is not None:
        number = lines[mine][3:].split(".", 1)[0]
        end = next((i for i in headings if i > mine), len(lines))
    else:
        numbered = [int(n) for i in headings if (n := lines[i][3:].split(".", 1)[0]).isdigit()]
        number = str(max(numbered, default=0) + 1)
        mine = end = next((i for i in headings if lines[i] == "## Adding a benchmark"), len(lines))
    return "\n".join([*lines[:mine], f"## {number}. {title}", "", body.rstrip("\n"), "", *lines[end:]]) + "\n"


def line_title(heading: str) -> str:
    number, _, title = heading[3:].partition(". ")
    return title if number.isdigit() else heading[3:]


def dashboard_pages(context: Context) -> Section:
    """``make bench``: a fresh load in the benchmark's own directory (small with ``--quick``)."""
    days, agents, runs = (7, 20, 1) if context.quick else (90, 200, 5)
    results, summary, states, load_s, views = run_benchmark(context.workdir / "monitor", context.workdir, context.env, days, agents, 3600.0, runs)
    return Section(TITLE, report(results, summary, states, load_s, views, runs, context.quick))


def main(argv: list[str] | None = None) -> int:
    from benchmarks.run import DEFAULT_OUTPUT, machine, product_env

    parser = argparse.ArgumentParser(prog="python -m benchmarks.dashboard_pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="the monitor's data directory; reused when already loaded (default: a temporary one)")
    parser.add_argument("--days", type=int, default=90, help="days of history for a new load (default 90)")
    parser.add_argument("--agents", type=int, default=200, help="agents for a new load (default 200)")
    parser.add_argument("--interval-s", type=float, default=3600.0, help="seconds between background samples for a new load (default 3600; 300 = 5.2 M samples, ~52 min)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each view (default 5)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the document whose section to replace (default docs/benchmarks.md)")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 50:
        parser.error("--runs 1-50")
    started_at, started, at_start = datetime.now(timezone.utc), time.monotonic(), machine()
    with tempfile.TemporaryDirectory(prefix="sessionready-bench-dashboard-") as workdir:
        data_dir = args.data_dir or Path(workdir) / "monitor"
        try:
            results, summary, states, load_s, views = run_benchmark(data_dir, Path(workdir), product_env(Path(workdir)), args.days, args.agents, args.interval_s, args.runs)
        except BenchmarkError as error:
            print(f"dashboard_pages: {error}", file=sys.stderr)
            return 1
    body = report(results, summary, states, load_s, views, args.runs, quick=False)
    body += (
        f"\nRun on its own (`python -m benchmarks.dashboard_pages`) on {started_at:%Y-%m-%d %H:%M UTC}, took"
        f" {time.monotonic() - started:.0f} s, on:\n\n{at_start}\n"
    )
    print(body)
    if not args.no_write:
        existing = args.output.read_text() if args.output.exists() else ""
        args.output.write_text(replace_section(existing, TITLE, body))
        print(f"dashboard_pages: wrote its section of {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
