"""Drives the gateway's dashboard in a real headless Chromium (Debian's chromium + chromedriver,
through Selenium), for tests/dashboard_browser.rs.

  dashboard_browser.py BASE_URL ADMIN_KEY SCREENSHOT_PATH EXPECTED_ROUTE

Logs in with the admin key, waits until the page has drawn its data and the recent-requests
table shows EXPECTED_ROUTE, checks that every request the browser made went to BASE_URL (Chrome's
performance log, plus the page's own resource list; all other hosts resolve to nothing anyway,
by --host-resolver-rules) and that no Content-Security-Policy violation was reported, then saves
a screenshot (and a dark-mode one next to it). Prints one JSON line of what it saw; exits 1
with the reason on any failure.
"""
import json, os, sys, time
from urllib.parse import urlparse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, key, shot, route = sys.argv[1:5]

# The usage ledger's contract (GET /v1/usage?group_by=key, GET /v1/budgets), for the key table.
USAGE = {"object": "list", "from": 0, "to": 0, "group_by": ["key"], "data": [
    {"key": "alice", "requests": 42, "input_tokens": 51200, "output_tokens": 9100, "cached_input_tokens": 0,
     "cost_usd": 1.2034, "duration_ms": 81234, "ttft_ms_avg": 412},
    {"key": "batch", "requests": 310, "input_tokens": 1250000, "output_tokens": 88000, "cached_input_tokens": 0,
     "cost_usd": 4.61, "duration_ms": 912000, "ttft_ms_avg": 655}]}
BUDGETS = {"object": "list", "data": [
    {"key": "alice", "budgets": [{"metric": "usd", "window": "day", "limit": 5.0, "used": 1.2, "remaining": 3.8,
                                  "resets_at": 0}]},
    {"key": "batch", "budgets": [{"metric": "usd", "window": "day", "limit": 5.0, "used": 4.61, "remaining": 0.39,
                                  "resets_at": 0}]}]}
LEDGER_STUB = (
    "(() => { const real = window.fetch; const answers = { '/v1/usage': %s, '/v1/budgets': %s };"
    " window.fetch = (url, opts) => { const path = String(url).split('?')[0];"
    " if (answers[path]) return Promise.resolve(new Response(JSON.stringify(answers[path]),"
    " { status: 200, headers: { 'content-type': 'application/json' } }));"
    " return real(url, opts); }; })();" % (json.dumps(USAGE), json.dumps(BUDGETS)))
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
    # The key table reads the ledger's endpoints; their 404 (ledger off) is expected.
    violations = [v for v in violations if "/v1/usage" not in v and "/v1/budgets" not in v]
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
    # The key table with a usage ledger: the contract's answers stand in for /v1/usage and
    # /v1/budgets (a script injected before the page's own wraps fetch; nothing leaves either).
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": LEDGER_STUB})
    driver.get(base + "/dashboard")
    WebDriverWait(driver, 20).until(lambda d: "alice" in d.find_element(By.ID, "keys").text)
    time.sleep(2.5)
    keys_with_ledger = driver.find_element(By.ID, "keys").text
    driver.save_screenshot(root + "-ledger" + ext)
    print(json.dumps({"loaded_ms": loaded_ms, "requests": len(urls), "distinct": sorted(set(urls)),
                      "cards": cards, "recent": recent, "quota": quota, "keys": keys,
                      "keys_with_ledger": keys_with_ledger}))
finally:
    driver.quit()
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
