"""The dashboard in a real headless browser (Debian's chromium and chromedriver, through
selenium): the login and its CSRF refusal, a job's progress reaching 100 %, an HTML message
of the outbox in its sandboxed frame, where its script does not run and its remote image is
not loaded. Screenshots go to test-artifacts/ (printed by .ci/run when a test fails)."""

import http.server
import json
import os
import threading
import urllib.request
from email.message import EmailMessage

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from ..harness import ROOT, wait_for

KEY = "operator-k3y-browser-0123456789"
ARTIFACTS = os.path.join(ROOT, "test-artifacts")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser(request):
    """A headless chromium; a screenshot of the last page is saved when the test ends."""
    # A missing browser fails the test: .ci/run installs chromium and chromium-driver.
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), (
        "install chromium and chromium-driver (apt-get install chromium chromium-driver)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--disable-dev-shm-usage", "--window-size=1100,800"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        # Chromium's own sandbox cannot run as root; the page's sandbox (iframe) still applies.
        options.add_argument("--no-sandbox")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    os.makedirs(ARTIFACTS, exist_ok=True)
    driver.save_screenshot(os.path.join(ARTIFACTS, f"{request.node.name}.png"))
    driver.quit()


@pytest.fixture
def dashboard_settings(settings):
    settings.update({"emailsvc.dashboard.enabled": "true", "emailsvc.dashboard.operator_key": KEY})
    return settings


def log_in(browser, url):
    browser.get(url + "/dashboard/")
    assert browser.current_url.endswith("/dashboard/login")
    browser.find_element(By.ID, "key").send_keys(KEY)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    assert wait_for(lambda: browser.current_url.endswith("/dashboard/"), timeout=10)


def test_an_operator_logs_in_and_watches_a_job_reach_100_percent(
    dashboard_settings, start_web, start_worker, browser
):
    web = start_web()
    start_worker(concurrency=2)
    # Without its CSRF token the login form is refused, whatever the key.
    browser.get(web.url + "/dashboard/login")
    browser.execute_script("document.querySelector('input[name=csrf_token]').remove()")
    browser.find_element(By.ID, "key").send_keys(KEY)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    assert wait_for(lambda: "CSRF" in browser.page_source, timeout=10), browser.page_source
    log_in(browser, web.url)
    with urllib.request.urlopen(web.url + "/dashboard/", timeout=10) as response:  # noqa: S310
        # Not logged in (no cookie here): the login page, with the strict policy.
        csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp

    recipients = [f"slow{i}@example.org" for i in range(6)] + ["reject@example.org"]
    body = json.dumps({"recipients": recipients, "subject": "Weekly news", "content": "Hi"})
    request = urllib.request.Request(  # noqa: S310
        web.url + "/email", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        job_id = json.loads(response.read())["id"]

    def percent():
        browser.refresh()
        rows = browser.find_elements(By.ID, f"job-{job_id}")
        return rows and rows[0].find_element(By.CLASS_NAME, "percent").text

    assert wait_for(lambda: percent() == "100 %", timeout=60, interval=1), percent()
    row = browser.find_element(By.ID, f"job-{job_id}")
    assert "partially_failed" in row.text and "6 sent · 1 failed · 0 pending of 7" in row.text
    row.find_element(By.CSS_SELECTOR, "a.id").click()
    assert wait_for(lambda: "550" in browser.page_source, timeout=10)
    assert "reject@example.org" in browser.find_element(By.CSS_SELECTOR, "table.errors").text
    # On a phone's width the list fits without scrolling sideways.
    browser.set_window_size(390, 844)
    browser.get(web.url + "/dashboard/")
    width = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert width[0] <= width[1], width
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser.save_screenshot(os.path.join(ARTIFACTS, "dashboard-jobs-phone.png"))
    # The list again, for the screenshot the README shows (docs/dashboard.png is a copy).
    browser.set_window_size(1100, 800)
    browser.get(web.url + "/dashboard/")


class CountingHandler(http.server.BaseHTTPRequestHandler):
    """Counts every request: a remote image the frame must never load."""

    hits = []

    def do_GET(self):
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def remote_server():
    CountingHandler.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, CountingHandler.hits
    server.shutdown()
    server.server_close()


def test_an_html_message_renders_in_its_sandbox_without_running_its_script(
    dashboard_settings, start_web, browser, remote_server
):
    server, hits = remote_server
    dashboard_settings["emailsvc.mail.transport"] = "outbox"
    folder = dashboard_settings["emailsvc.outbox_dir"]
    os.makedirs(folder, exist_ok=True)
    remote = f"http://127.0.0.1:{server.server_address[1]}"
    msg = EmailMessage()
    msg["From"], msg["To"] = "shop@example.org", "ana@example.org"
    msg["Subject"], msg["Date"] = "Your order", "Sun, 22 Nov 2026 07:00:00 +0000"
    msg.set_content("Your order has shipped.")
    msg.add_alternative(
        "<h1 id='title'>Your order has shipped</h1>"
        f"<img src='{remote}/pixel.gif' alt='tracker'>"
        "<script>document.getElementById('title').textContent = 'SCRIPT RAN';"
        f"fetch('{remote}/script-ran');</script>",
        subtype="html",
    )
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="invoice.pdf")
    with open(os.path.join(folder, "order-1@example.org.eml"), "wb") as handle:
        handle.write(msg.as_bytes())
    web = start_web()
    log_in(browser, web.url)
    browser.find_element(By.LINK_TEXT, "Outbox").click()
    browser.find_element(By.LINK_TEXT, "Your order").click()
    frame = browser.find_element(By.CSS_SELECTOR, "iframe.html-part")
    assert frame.get_attribute("sandbox") == ""
    assert (
        "invoice.pdf" in browser.page_source and "Your order has shipped." in browser.page_source
    )
    browser.switch_to.frame(frame)
    title = browser.find_element(By.ID, "title")
    assert title.text == "Your order has shipped"
    browser.switch_to.default_content()
    # Neither the script's request nor the remote image reached the server.
    assert hits == []
    # The part alone carries its own policy: no script, no remote load, a sandbox.
    part_url = frame.get_attribute("src")
    opener = urllib.request.build_opener()
    cookie = browser.get_cookie("emailsvc_dashboard")
    opener.addheaders = [("Cookie", f"emailsvc_dashboard={cookie['value']}")]
    with opener.open(part_url, timeout=10) as response:
        csp = response.headers["Content-Security-Policy"]
    assert "sandbox" in csp and "script-src" not in csp and "img-src data: cid:" in csp
    # Without the operator's session the part is not served: the login page is.
    with urllib.request.urlopen(part_url, timeout=10) as response:  # noqa: S310
        assert response.url.endswith("/dashboard/login")
