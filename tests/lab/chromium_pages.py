"""Many pages at once in one headless Chromium, each in a window of its own, for the network lab.

Standalone script, started inside the lab's client namespace (chromedriver and Chromium run there
too). Reads one JSON object from stdin, so that no secret is on a command line::

    {"url": "http://.../c/test/rtc.html", "secrets": ["...", ...], "seconds": 15, "timeout_s": 120}

opens ``url#secret=S&seconds=N`` for each secret, one window each (timers in a background window
are not throttled: the flags below), then waits for every page's ``window.rtcOutcome``. Prints one
JSON object: ``{"pages": [{"outcome", "opened_wall_ns"}...], "console_errors": [...]}``.
"""

from __future__ import annotations

import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARGUMENTS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    # Every window's probe stream keeps its 20 ms rhythm, as a person's single tab in front would.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
)  # fmt: skip


def main() -> int:
    job = json.load(sys.stdin)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ARGUMENTS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        handles, opened = [], []
        for index, secret in enumerate(job["secrets"]):
            if index:
                driver.switch_to.new_window("window")
            handles.append(driver.current_window_handle)
            opened.append(time.time_ns())
            driver.get(f"{job['url']}#secret={secret}&seconds={job['seconds']}")
        outcomes: list[dict | None] = [None] * len(handles)
        deadline = time.monotonic() + job["timeout_s"]
        while time.monotonic() < deadline and any(o is None for o in outcomes):
            for index, handle in enumerate(handles):
                if outcomes[index] is None:
                    driver.switch_to.window(handle)
                    outcomes[index] = driver.execute_script("return window.rtcOutcome || null")
            time.sleep(0.5)
        console = []
        for handle in handles:
            driver.switch_to.window(handle)
            console += [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
        pages = [
            {"outcome": o or {"error": {"code": "timeout", "message": "the page never finished"}}, "opened_wall_ns": t}
            for o, t in zip(outcomes, opened, strict=True)
        ]
        json.dump({"pages": pages, "console_errors": console}, sys.stdout)
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
