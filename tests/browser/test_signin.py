"""Sign-in, roles and site scoping in a real browser against a real OpenID Connect provider (issue 11).

``oidc-provider-mock`` serves a local provider (any client id and secret; on its authorization form
one types the ``sub``, which becomes the ``email`` claim). ``registry serve --no-dagster`` runs with
``config/auth.toml`` pointing at it, on a registry of two sites (DE-A, DE-B). Headless Debian
chromium signs in as each role and tries every page, allowed and refused, direct URLs included;
every access must leave its audit line. Screenshots: ``tests/artifacts/screenshots/signin-*.png``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dashboards import measure
from orchestration.config import REPO_ROOT, Home
from orchestration.registry import access, audit
from orchestration.synthetic.generate import generate_records
from tests.support import ARTIFACTS, record, write_jsonl

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("signin")]

if not measure.CHROMIUM.exists():
    pytest.skip(f"{measure.CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)",
                allow_module_level=True)

SHOTS = ARTIFACTS / "screenshots"
SITES = ("DE-A", "DE-B")
USERS = {
    "coordinator": "coord@example.org",
    "analyst": "analyst@example.org",
    "site_staff": "staff@example.org",  # DE-A only
    "viewer": "viewer@example.org",
}
NOBODY = "nobody@example.org"
PAGES = ["", "mortality", "organs", "labs", "cases", "analysis", "quality", "submit", "sql"]
TITLES = {"": "Calciphylaxis Registry", "mortality": "Mortality", "organs": "Organs", "labs": "Labs", "cases": "Cases", "analysis": "Analysis",
          "quality": "Data quality", "submit": "Submit cases", "sql": "SQL"}
ALLOWED = {
    "coordinator": set(PAGES),
    "analyst": {"", "mortality", "organs", "labs", "cases", "analysis", "quality", "sql"},
    "site_staff": {"", "mortality", "organs", "labs", "cases", "submit"},
    "viewer": {"", "mortality", "organs", "labs"},
}


def cli(*args: str, home: Home, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "REGISTRY_HOME": str(home.root), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600, **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Home:
    """A registry of two sites: 120 synthetic cases split between DE-A and DE-B, and one quarantined record each."""
    home = Home(tmp_path_factory.mktemp("signin") / "home").ensure()
    d = home.root.parent
    cases = [dict(r, site_id=SITES[i % 2]) for i, r in enumerate(generate_records(120, seed=5))]
    write_jsonl(d / "cohort.jsonl", cases)
    write_jsonl(d / "bad.jsonl", [record(case_id="BAD-A-1", site_id="DE-A", kidney={"status": "sideways"}),
                                  record(case_id="BAD-B-1", site_id="DE-B", kidney={"status": "sideways"})])
    p = cli("submit", str(d / "cohort.jsonl"), str(d / "bad.jsonl"), home=home)
    assert p.returncode == 1, p.stderr  # the two bad records are quarantined
    p = cli("build", home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    for role, email in USERS.items():
        args = ["access", "grant", email, role] + (["--site", "DE-A"] if role == "site_staff" else [])
        assert cli(*args, home=home).returncode == 0
    return home


@pytest.fixture(scope="module")
def case_ids(built) -> dict[str, list[str]]:
    from orchestration.warehouse import snapshot

    con = snapshot.connect(built)
    try:
        rows = con.execute("SELECT site_id, case_id FROM dim_cases ORDER BY case_id").fetchall()
    finally:
        con.close()
    out: dict[str, list[str]] = {s: [] for s in SITES}
    for s, c in rows:
        out[s].append(c)
    return out


@pytest.fixture(scope="module")
def provider():
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread() as srv:
        yield f"http://localhost:{srv.server_port}"


@pytest.fixture(scope="module")
def server(built, provider):
    port = measure.free_port()
    access.auth_file(built).parent.mkdir(mode=0o700, exist_ok=True)
    access.auth_file(built).write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        'cookie_secret = "a-cookie-secret-only-for-these-tests-0123456789"\n'
        'client_id = "calciphylaxis-registry"\n'
        'client_secret = "any-secret-will-do"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
    )
    with _serve(built, port, "signin_serve.log") as base:
        yield base


class _serve:
    def __init__(self, home: Home, port: int, log: str, *extra: str):
        self.home, self.port, self.log, self.extra = home, port, ARTIFACTS / log, extra

    def __enter__(self) -> str:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.out = open(self.log, "w")
        env = {**os.environ, "REGISTRY_HOME": str(self.home.root), "PYTHONPATH": str(REPO_ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "serve", "--no-dagster", "--port", str(self.port),
                                      *self.extra], env=env, stdout=self.out, stderr=subprocess.STDOUT)
        base = f"http://localhost:{self.port}"
        measure.wait_healthy(base, proc=self.proc)
        return base

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.out.close()


SETTLED_JS = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  return !!document.querySelector("[data-testid='stMain'] h1, [data-testid='stMain'] [data-testid='stAlert']");
}"""


def settle(page, timeout_ms: float = 60_000) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(SETTLED_JS, timeout=timeout_ms)
    page.wait_for_timeout(200)
    page.wait_for_function(SETTLED_JS, timeout=timeout_ms)


def main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()


def sign_in(browser, base: str, email: str):
    """A fresh browser context signed in as ``email`` through the provider's authorization form."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    page.goto(base + "/")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("input[name=sub]", timeout=30_000)
    page.fill("input[name=sub]", email)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(base + "/**", timeout=30_000)
    settle(page)
    return page


@pytest.fixture(scope="module")
def pages(browser, server):
    """One signed-in browser context per role (signed in once)."""
    out = {role: sign_in(browser, server, email) for role, email in USERS.items()}
    yield out
    for p in out.values():
        p.context.close()


def open_path(page, base: str, path: str) -> str:
    page.goto(f"{base}/{path}")
    settle(page)
    return main_text(page)


def events(home: Home, kind: str, user: str | None = None) -> list[dict]:
    return [e for e in audit.read(home) if e.get("event") == kind and (user is None or e.get("user") == user)]


# --------------------------------------------------------------------------- not signed in, no grant


def test_the_sign_in_page_shows_nothing_of_the_registry(browser, server, built):
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    for path in ("", "cases?case=BAD-A-1", "sql", "submit"):
        text = open_path(page, server, path)
        assert "Sign in" in text
        for leak in ("Cohort", "cases", "Snapshot", "DE-A", "BAD-A-1", "SELECT", "Mortality"):
            assert leak not in text and leak not in page.locator("[data-testid='stSidebar']").all_inner_texts().__str__(), leak
        assert page.locator("[data-testid='stSidebarNav']").count() == 0
        assert page.locator("[data-testid='stPlotlyChart'], [data-testid='stDataFrame']").count() == 0
    measure.screenshot(page, SHOTS / "signin-sign-in-page.png")
    ctx.close()


def test_a_user_without_a_grant_sees_only_whom_to_ask(browser, server, built):
    page = sign_in(browser, server, NOBODY)
    text = main_text(page)
    assert "no access" in text and USERS["coordinator"] in text
    for path in ("sql", "cases", "mortality"):
        text = open_path(page, server, path)
        assert "no access" in text
        assert page.locator("[data-testid='stPlotlyChart'], [data-testid='stDataFrame'], [data-testid='stSidebarNav']").count() == 0
    measure.screenshot(page, SHOTS / "signin-no-access.png")
    page.context.close()
    assert events(built, "sign_in", NOBODY)
    assert events(built, "access_refused", NOBODY)


# --------------------------------------------------------------------------- the matrix of pages


@pytest.mark.parametrize("role", list(USERS))
def test_pages_allowed_and_refused(pages, server, built, role):
    page, email = pages[role], USERS[role]
    assert events(built, "sign_in", email), "the sign-in left no audit line"
    nav = page.locator("[data-testid='stSidebarNav'] a").all_inner_texts()
    assert sorted(t.strip().splitlines()[-1] for t in nav) == sorted(
        {"": "Overview", "mortality": "Mortality", "organs": "Organs", "labs": "Labs", "cases": "Cases", "analysis": "Analysis", "quality": "Data quality",
         "submit": "Submit", "sql": "SQL"}[p] for p in ALLOWED[role])
    for path in PAGES:
        text = open_path(page, server, path)
        h1 = page.locator("[data-testid='stMain'] h1").all_inner_texts()
        if path in ALLOWED[role]:
            assert "does not include" not in text, (role, path)
            assert TITLES[path] in h1, (role, path, h1)
            assert page.locator("[data-testid='stException']").count() == 0, (role, path)
        else:
            assert f"does not include /{path}" in text, (role, path, text[:300])
            assert TITLES[path] not in h1, (role, path)
            assert page.locator("[data-testid='stPlotlyChart'], [data-testid='stDataFrame'], textarea").count() == 0, (role, path)
            assert any(e.get("page") == f"/{path}" for e in events(built, "access_refused", email)), (role, path)
    # one sign-in, one sign_in line: opening eight pages (eight sessions) did not add more
    assert len(events(built, "sign_in", email)) == 1
    # the identity line names the user
    assert email in page.locator("[data-testid='stSidebar']").inner_text()


# --------------------------------------------------------------------------- case-level data


def _matching(page) -> int:
    import re

    m = re.search(r"([\d,]+) matching cases", main_text(page))
    assert m, main_text(page)[:500]
    return int(m.group(1).replace(",", ""))


def test_site_staff_read_only_their_own_sites_cases(pages, server, built, case_ids):
    page, email = pages["site_staff"], USERS["site_staff"]
    open_path(page, server, "cases?synthetic=true")
    assert _matching(page) == len(case_ids["DE-A"])
    measure.screenshot(page, SHOTS / "signin-site-staff-cases.png")
    open_path(page, server, "cases?q=DE-B")
    assert _matching(page) == 0
    own, other = case_ids["DE-A"][0], case_ids["DE-B"][0]
    text = open_path(page, server, f"cases?case={other}")
    assert f"Case {other}" not in text and other in text  # the refusal names what was asked for, nothing more
    assert any(e.get("case_id") == other for e in events(built, "access_refused", email))
    text = open_path(page, server, f"cases?case={own}")
    assert f"Case {own}" in text
    assert any(e.get("case_id") == own for e in events(built, "case_view", email))


def test_every_case_view_is_audited(pages, server, built, case_ids):
    page, email = pages["analyst"], USERS["analyst"]
    cid = case_ids["DE-B"][1]
    text = open_path(page, server, f"cases?case={cid}")
    assert f"Case {cid}" in text
    assert any(e.get("case_id") == cid and e.get("at") for e in events(built, "case_view", email))


# --------------------------------------------------------------------------- /submit for site staff


def test_site_staff_cannot_land_another_sites_record_nor_see_its_quarantine(pages, server, built, tmp_path):
    page, email = pages["site_staff"], USERS["site_staff"]
    open_path(page, server, "submit")
    page.get_by_role("tab", name="Quarantine").click()
    page.wait_for_selector("text=Quarantined records of your sites", timeout=30_000)
    settle(page)
    text = main_text(page)
    assert "BAD-A-1" in text and "BAD-B-1" not in text
    page.get_by_role("tab", name="Batch upload").click()
    f = write_jsonl(tmp_path / "other-site.jsonl", [record(case_id="SNEAK-B-1", site_id="DE-B"), record(case_id="OWN-A-1", site_id="DE-A")])
    page.locator("input[type=file]").set_input_files(str(f))
    page.get_by_role("button", name="Submit 1 file").click()
    page.wait_for_selector("text=refused (neither landed nor quarantined)", timeout=60_000)
    text = main_text(page)
    assert "site_id" in text and "DE-B" in text
    measure.screenshot(page, SHOTS / "signin-site-staff-submit-refused.png")
    landed = b"".join(p.read_bytes() for p in built.landing_batches.glob("*.jsonl"))
    assert b"OWN-A-1" in landed and b"SNEAK-B-1" not in landed
    assert not any(e.get("case_id") == "SNEAK-B-1" for e in events(built, "submission"))
    assert any(e.get("case_id") == "SNEAK-B-1" for e in events(built, "submission_refused", email))


# --------------------------------------------------------------------------- SQL and downloads


def test_sql_queries_are_audited_with_their_text_and_row_count(pages, server, built):
    page, email = pages["analyst"], USERS["analyst"]
    open_path(page, server, "sql")
    q = "SELECT site_id, count(*) AS n FROM dim_cases GROUP BY site_id ORDER BY site_id"
    page.locator("textarea").first.fill(q)
    page.get_by_role("button", name="Run").click()
    page.wait_for_selector("text=2 rows", timeout=60_000)
    ev = [e for e in events(built, "sql_query", email) if e.get("query") == q]
    assert ev and ev[-1]["rows"] == 2 and ev[-1]["seconds"] >= 0


def test_downloads_are_audited(pages, server, built):
    page, email = pages["coordinator"], USERS["coordinator"]
    open_path(page, server, "cases")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download CSV").first.click()
    body = Path(dl.value.path()).read_text()
    rows = body.count("\n") - 1
    time.sleep(0.5)
    ev = events(built, "download", email)
    assert ev and ev[-1]["rows"] == rows and ev[-1]["what"]


# --------------------------------------------------------------------------- coordinators see recent accesses


def test_quality_shows_recent_accesses_to_coordinators_only(pages, server):
    text = open_path(pages["coordinator"], server, "quality")
    assert "Recent accesses" in text and "Access list" in text
    text = open_path(pages["analyst"], server, "quality")
    assert "Recent accesses" not in text and "Access list" not in text


# --------------------------------------------------------------------------- single-user mode


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    out = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            parts = ln.split()
            addr, p = parts[1].rsplit(":", 1)
            if int(p, 16) == port and parts[3] == "0A":  # LISTEN
                out.add(addr)
    return out


def test_single_user_mode_listens_on_loopback_only_and_says_so(tmp_path, browser):
    home = Home(tmp_path / "home").ensure()
    p = cli("serve", "--no-dagster", "--host", "0.0.0.0", home=home)
    assert p.returncode == 2 and "refusing" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    port = measure.free_port()
    with _serve(home, port, "signin_single_user.log") as base:
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
        page = browser.new_context().new_page()
        for path in ("", "sql"):
            page.goto(f"{base}/{path}")
            page.wait_for_function(SETTLED_JS, timeout=60_000)
            assert "Single-user mode" in page.locator("[data-testid='stSidebar']").inner_text()
        page.context.close()
