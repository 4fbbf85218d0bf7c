"""Drives the gateway's dashboard in a real headless Chromium (Debian's chromium + chromedriver,
through Selenium), for tests/dashboard_browser.rs.

  dashboard_browser.py BASE_URL ADMIN_KEY SCREENSHOT_PATH EXPECTED_ROUTE

Logs in with the admin key, waits until the page has drawn its data and the recent-requests
table shows EXPECTED_ROUTE, checks that every request the browser made went to BASE_URL (Chrome's
performance log, plus the page's own resource list; all other hosts resolve to nothing anyway,
by --host-resolver-rules) and that no Content-Security-Policy violation was reported, then saves
a screenshot (and a dark-mode one next to it). The key table is the gateway's own usage ledger
and budgets, as is every other panel: nothing on the page is injected. Prints one JSON line of what it saw; exits 1
with the reason on any failure.
"""
import json, os, sys, time
from urllib.parse import urlparse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, key, shot, route = sys.argv[1:5]

origin = urlparse(base)

opts = webdriver.ChromeOptions()
opts.binary_location = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1440,1320", "--hide-scrollbars", "--force-device-scale-factor=1",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-default-apps",
            "--disable-extensions", "--disable-features=OptimizationHints,Translate,MediaRouter",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--force-color-profile=srgb", "--lang=en-US"]:
    opts.add_argument(arg)
opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
# The Debian driver, given by path: Selenium Manager (which may download one) never runs.
service = Service(executable_path=os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
driver = webdriver.Chrome(options=opts, service=service)
failures = []
try:
    driver.set_page_load_timeout(30)
    started = time.monotonic()
    driver.get(base + "/dashboard")
    field = WebDriverWait(driver, 15).until(lambda d: d.find_element(By.NAME, "key"))
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 20).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "true")
    loaded_ms = int((time.monotonic() - started) * 1000)
    WebDriverWait(driver, 20).until(lambda d: route in d.find_element(By.ID, "recent").text)
    # Two more polls, so the activity chart has a line and the key table has answered.
    time.sleep(4.5)
    recent = driver.find_element(By.ID, "recent").text
    cards = {c: driver.find_element(By.ID, c).text for c in
             ["c-inflight", "c-queued", "c-procs", "c-sessions", "c-completions", "c-tokens"]}
    quota = driver.find_element(By.ID, "quota").text
    keys = driver.find_element(By.ID, "keys").text

    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [u for u in urls + resources
               if not u.startswith(base + "/") and not u.startswith("data:") and u != "about:blank"]
    if outside:
        failures.append(f"requests left {base}: {outside}")
    if not urls:
        failures.append("the performance log saw no request at all")
    console = driver.get_log("browser")
    violations = [e["message"] for e in console
                  if "Content Security Policy" in e["message"] or e["level"] == "SEVERE"]
    # So is the login form's 401 (nobody was logged in yet).
    violations = [v for v in violations if not v.startswith(base + "/dashboard - ") or "401" not in v]
    if violations:
        failures.append(f"console errors: {violations}")

    os.makedirs(os.path.dirname(shot) or ".", exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    # The whole page, not the window's first screen.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1440, "height": max(900, height), "deviceScaleFactor": 1, "mobile": False})
    time.sleep(0.3)
    driver.save_screenshot(shot)
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    time.sleep(0.3)
    root, ext = os.path.splitext(shot)
    driver.save_screenshot(root + "-dark" + ext)
    print(json.dumps({"loaded_ms": loaded_ms, "requests": len(urls), "distinct": sorted(set(urls)),
                      "cards": cards, "recent": recent, "quota": quota, "keys": keys}))
finally:
    driver.quit()
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
