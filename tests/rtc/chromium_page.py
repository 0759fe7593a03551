"""Headless Chromium as the browser check's page, for the network lab: loads a test page that
imports monitor/static/check/rtc.js from the monitor and runs one probe stream with it.

Standalone script, started inside the lab's client namespace (chromedriver and Chromium run
there too, so the browser's traffic takes the lab's path)::

    python chromium_page.py PAGE_URL SECRET SECONDS

Prints one JSON object: ``{"rtc": <what stop() resolved to>}`` or ``{"error": {code, message}}``,
plus the browser console's errors.
"""

from __future__ import annotations

import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def main(page_url: str, secret: str, seconds: float) -> int:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        # The secret goes in the fragment: it never leaves the browser in a request line.
        driver.get(f"{page_url}#secret={secret}&seconds={seconds}")
        deadline = time.monotonic() + seconds + 60
        outcome = None
        while time.monotonic() < deadline:
            outcome = driver.execute_script("return window.rtcOutcome || null")
            if outcome is not None:
                break
            time.sleep(0.2)
        console = [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
        json.dump({**(outcome or {"error": {"code": "timeout", "message": "the page never finished"}}), "console_errors": console}, sys.stdout)
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
