"""Who may see and do what (issue 11): grants in the registry home, the permission matrix, the
``registry access`` command, audit lines, site scoping of submissions, ``registry serve``'s address
rules and the registry home's file permissions."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import orjson
import pytest

from orchestration.cli import serve as serve_cli
from orchestration.cli.common import UserError
from orchestration.config import REPO_ROOT, Home
from orchestration.registry import access, audit
from orchestration.registry.landing import ACCEPTED, REFUSED, submit
from orchestration.registry.quarantine import quarantine_entries
from tests.support import record


def cli(home: Home, *args: str, umask: int | None = 0o022) -> subprocess.CompletedProcess:
    """The real `registry` command of this tree (run with a permissive umask: it must set its own)."""
    env = {**os.environ, "REGISTRY_HOME": str(home.root), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("REGISTRY_DEBUG", None)

    def pre():
        if umask is not None:
            os.umask(umask)

    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, preexec_fn=pre)


# --------------------------------------------------------------------------- the permission matrix

PAGES = ["", "mortality", "organs", "labs", "cases", "analysis", "quality", "submit", "sql"]
EXPECTED_PAGES = {
    "coordinator": set(PAGES),
    "analyst": {"", "mortality", "organs", "labs", "cases", "analysis", "quality", "sql"},
    "site_staff": {"", "mortality", "organs", "labs", "cases", "submit"},
    "viewer": {"", "mortality", "organs", "labs"},
}


@pytest.mark.parametrize("role", access.ROLES)
def test_pages_per_role(role):
    u = access.User("u@x.org", frozenset({role}), frozenset({"DE-A"}) if role == "site_staff" else frozenset())
    assert {p for p in PAGES if u.may_open(p)} == EXPECTED_PAGES[role]
    assert u.may_open("/sql") == ("sql" in EXPECTED_PAGES[role])


def test_rights_of_each_role():
    coord = access.User("c@x.org", frozenset({"coordinator"}))
    analyst = access.User("a@x.org", frozenset({"analyst"}))
    staff = access.User("s@x.org", frozenset({"site_staff"}), frozenset({"DE-A", "DE-B"}))
    viewer = access.User("v@x.org", frozenset({"viewer"}))
    nobody = access.User("n@x.org")
    # case-level rows
    assert coord.sites_readable() is None and analyst.sites_readable() is None
    assert staff.sites_readable() == {"DE-A", "DE-B"}
    assert viewer.sites_readable() == frozenset() and nobody.sites_readable() == frozenset()
    assert staff.may_read_site("DE-A") and not staff.may_read_site("DE-C") and not staff.may_read_site(None)
    # submission
    assert coord.may_submit("DE-Z") and coord.sites_submittable() is None
    assert staff.may_submit("DE-B") and not staff.may_submit("DE-C") and staff.may_submit()
    assert not analyst.may_submit() and not analyst.may_submit("DE-A") and not viewer.may_submit()
    # quarantine entries: their site is read from the payload
    entry_a = {"payload": json.dumps(record(site_id="DE-A")), "payload_encoding": "json"}
    entry_c = {"payload": json.dumps(record(site_id="DE-C")), "payload_encoding": "json"}
    garbage = {"payload": "bm90IGpzb24=", "payload_encoding": "base64"}
    assert staff.may_correct(entry_a) and not staff.may_correct(entry_c) and not staff.may_correct(garbage)
    assert coord.may_correct(garbage) and not analyst.may_correct(entry_a)
    # coordinator-only
    assert coord.may_withdraw() and coord.may_read_audit()
    assert not any(u.may_withdraw() or u.may_read_audit() for u in (analyst, staff, viewer))
    assert analyst.may_run_sql() and not staff.may_run_sql() and not viewer.may_run_sql()
    assert staff.may_download_case_rows() and not viewer.may_download_case_rows()
    assert not nobody.has_access and nobody.pages() == frozenset()


def test_several_roles_add_up():
    u = access.User("x@x.org", frozenset({"viewer", "site_staff"}), frozenset({"DE-A"}))
    assert u.may_open("submit") and u.may_open("cases") and not u.may_open("sql")
    u2 = access.User("y@x.org", frozenset({"analyst", "site_staff"}), frozenset({"DE-A"}))
    assert u2.sites_readable() is None and u2.sites_submittable() == {"DE-A"} and u2.may_open("sql")


def test_single_user_mode_is_the_local_coordinator(home):
    assert not access.auth_configured(home)
    u = access.local_coordinator()
    assert u.local and u.is_coordinator and all(u.may_open(p) for p in PAGES)


# --------------------------------------------------------------------------- grants in the home


def test_grants_are_stored_privately_and_resolved(home):
    access.grant(home, "Alice@Example.org ", "site_staff", ["DE-A"])
    access.grant(home, "alice@example.org", "site_staff", ["DE-B"])
    access.grant(home, "alice@example.org", "analyst")
    f = access.access_file(home)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert json.loads(f.read_text())["users"]["alice@example.org"] == {"roles": ["analyst", "site_staff"], "sites": ["DE-A", "DE-B"]}
    u = access.resolve(home, "ALICE@example.org")
    assert u.roles == {"analyst", "site_staff"} and u.sites == {"DE-A", "DE-B"}
    assert access.resolve(home, "bob@example.org").roles == frozenset()
    # revoking one site keeps the other; revoking the last site drops site_staff
    access.revoke(home, "alice@example.org", "site_staff", ["DE-A"])
    assert access.resolve(home, "alice@example.org").sites == {"DE-B"}
    access.revoke(home, "alice@example.org", "site_staff", ["DE-B"])
    u = access.resolve(home, "alice@example.org")
    assert u.roles == {"analyst"} and u.sites == frozenset()
    access.revoke(home, "alice@example.org")
    assert access.load_grants(home) == {}


@pytest.mark.parametrize("args, message", [
    (("not-an-email", "viewer"), "not an email"),
    (("a@x.org", "site_staff"), "needs at least one --site"),
    (("a@x.org", "analyst", ["DE-A"]), "site_staff role only"),
    (("a@x.org", "site_staff", ["de a"]), "not a site id"),
    (("a@x.org", "superuser"), "unknown role"),
])
def test_bad_grants_are_refused(home, args, message):
    with pytest.raises(access.AccessError, match=message):
        access.grant(home, *args)
    assert access.load_grants(home) == {}


def test_every_grant_change_is_an_audit_line(home):
    access.grant(home, "c@x.org", "coordinator", by="cli:tester")
    access.revoke(home, "c@x.org", "coordinator", by="cli:tester")
    ev = [e for e in audit.read(home) if e["event"].startswith("access_")]
    assert [(e["event"], e["user"], e["subject"], e["role"]) for e in ev] == [
        ("access_grant", "cli:tester", "c@x.org", "coordinator"), ("access_revoke", "cli:tester", "c@x.org", "coordinator")]
    assert all(e["at"] for e in ev)


def test_access_records_and_recent_accesses(home):
    u = access.User("a@x.org", frozenset({"analyst"}))
    access.record(home, u, "sql_query", query="SELECT 1", rows=1, seconds=0.01)
    submit(home, [("x.json", orjson.dumps(record()))])  # a submission line is not an access
    access.record(home, "v@x.org", "access_refused", page="sql")
    recent = access.recent_accesses(home)
    assert [(e["event"], e["user"]) for e in recent] == [("access_refused", "v@x.org"), ("sql_query", "a@x.org")]
    assert recent[1]["query"] == "SELECT 1" and recent[1]["rows"] == 1


# --------------------------------------------------------------------------- the command line


def test_access_cli_grant_list_revoke_and_audit_filter(home):
    p = cli(home, "access", "grant", "s@x.org", "site_staff", "--site", "DE-A", "--site", "DE-B")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "s@x.org: site_staff (DE-A, DE-B)"
    assert cli(home, "access", "grant", "c@x.org", "coordinator").returncode == 0
    p = cli(home, "access", "list", "--format", "json")
    assert json.loads(p.stdout) == [
        {"email": "c@x.org", "roles": ["coordinator"], "sites": []},
        {"email": "s@x.org", "roles": ["site_staff"], "sites": ["DE-A", "DE-B"]},
    ]
    assert cli(home, "access", "list").stdout.splitlines() == ["c@x.org: coordinator", "s@x.org: site_staff (DE-A, DE-B)"]
    p = cli(home, "access", "revoke", "s@x.org", "site_staff")
    assert p.returncode == 0 and "no access" in p.stdout
    # errors: one line, exit 2, no traceback
    for args, needle in [(("access", "grant", "x@x.org", "site_staff"), "--site"),
                         (("access", "revoke", "nobody@x.org"), "holds no role"),
                         (("access", "grant", "x@x.org", "root"), "invalid choice")]:
        p = cli(home, *args)
        assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    # `registry audit --user` shows the grant changes about (or made by) that user only
    p = cli(home, "audit", "--user", "S@x.org", "--format", "json")
    ev = json.loads(p.stdout)
    assert [e["event"] for e in ev] == ["access_grant", "access_revoke"] and all(e["subject"] == "s@x.org" for e in ev)


def test_home_is_readable_by_its_owner_only(home, tmp_path):
    root = tmp_path / "fresh"
    h = Home(root)
    f = tmp_path / "case.json"
    f.write_text(json.dumps(record()))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(record(case_id="BAD-1", kidney={"status": "sideways"})))
    assert cli(h, "submit", str(f), str(bad)).returncode == 1  # one quarantined
    assert cli(h, "access", "grant", "c@x.org", "coordinator").returncode == 0
    seen_files = 0
    for dirpath, dirnames, filenames in os.walk(root):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        for n in filenames:
            seen_files += 1
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, n)).st_mode) == 0o600, os.path.join(dirpath, n)
    assert seen_files >= 6  # batch, index, quarantine batch and payload, audit log, access.json
    # an existing home made with a lax umask is tightened by ensure()
    lax = Home(tmp_path / "lax")
    (lax.root / "landing").mkdir(parents=True, mode=0o755)
    os.chmod(lax.root, 0o755)
    lax.ensure()
    assert stat.S_IMODE(lax.root.stat().st_mode) == 0o700 and stat.S_IMODE((lax.root / "landing").stat().st_mode) == 0o700


# --------------------------------------------------------------------------- site scoping of submissions


def test_submission_of_another_site_is_refused_not_landed_nor_quarantined(home):
    mine, theirs = record(case_id="A-0001", site_id="DE-A"), record(case_id="C-0001", site_id="DE-C")
    body = b"".join(orjson.dumps(r) + b"\n" for r in (mine, theirs))
    receipts = submit(home, [("batch.jsonl", body)], channel="upload", allowed_sites=frozenset({"DE-A"}), user="s@x.org")
    assert [r.status for r in receipts] == [ACCEPTED, REFUSED]
    err = receipts[1].errors[0]
    assert err.path == "site_id" and "DE-C" in err.message and "DE-A" in err.message
    assert quarantine_entries(home) == []
    landed = b"".join(p.read_bytes() for p in home.landing_batches.glob("*.jsonl"))
    assert b"A-0001" in landed and b"C-0001" not in landed
    ev = list(audit.read(home))
    assert {(e["event"], e.get("case_id"), e.get("user")) for e in ev} == {
        ("submission", "A-0001", "s@x.org"), ("submission_refused", "C-0001", "s@x.org")}
    # accepted + duplicates + quarantined = submitted still holds (the refused record was never submitted)
    counts = audit.submission_counts(home)
    assert counts["submitted"] == counts["accepted"] == 1
    # no restriction (coordinator, command line): any site
    assert submit(home, [("c.json", orjson.dumps(theirs))])[0].status == ACCEPTED


def test_a_new_revision_cannot_move_another_sites_case_to_ones_own_site(home):
    theirs = record(case_id="C-0002", site_id="DE-C")
    assert submit(home, [("c.json", orjson.dumps(theirs))])[0].status == ACCEPTED  # the coordinator lands it
    takeover = record(case_id="C-0002", site_id="DE-A", revision=2)
    (r,) = submit(home, [("t.json", orjson.dumps(takeover))], channel="form", allowed_sites=frozenset({"DE-A"}), user="s@x.org")
    assert r.status == REFUSED and r.errors[0].path == "site_id" and "belongs to another site" in r.errors[0].message
    landed = b"".join(p.read_bytes() for p in home.landing_batches.glob("*.jsonl"))
    assert [ln for ln in landed.splitlines() if b"C-0002" in ln] == [ln for ln in landed.splitlines() if b'"revision":1' in ln and b"C-0002" in ln]
    assert b'"DE-A"' not in landed
    # a case of one's own site still takes its next revision
    own = record(case_id="A-0002", site_id="DE-A")
    assert submit(home, [("a.json", orjson.dumps(own))], allowed_sites=frozenset({"DE-A"}))[0].status == ACCEPTED
    again = record(case_id="A-0002", site_id="DE-A", revision=2, patient={"age_years": 71, "sex": "female"})
    assert submit(home, [("a2.json", orjson.dumps(again))], allowed_sites=frozenset({"DE-A"}))[0].status == ACCEPTED


# --------------------------------------------------------------------------- registry serve


AUTH = """[auth]
redirect_uri = "http://localhost:8501/oauth2callback"
cookie_secret = "a-long-random-secret-for-tests"
client_id = "registry"
client_secret = "s3cret"
server_metadata_url = "http://localhost:9400/.well-known/openid-configuration"
"""


def test_serve_refuses_a_public_address_without_auth(home):
    p = cli(home, "serve", "--no-dagster", "--host", "0.0.0.0")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to listen on 0.0.0.0" in lines[0] and "auth.toml" in lines[0]
    with pytest.raises(UserError, match="refusing"):
        serve_cli.check_auth(home, "10.1.2.3")
    assert serve_cli.check_auth(home, "127.0.0.1") is None and serve_cli.check_auth(home, "localhost") is None
    argv = serve_cli.children(home, port=8600, dagster_port=3000, with_dagster=False)[0].argv
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1" and "--secrets.files" not in argv


def test_serve_hands_auth_toml_to_streamlit(home):
    f = access.auth_file(home)
    f.parent.mkdir(mode=0o700, exist_ok=True)
    f.write_text(AUTH.replace('client_secret = "s3cret"\n', ""))
    with pytest.raises(UserError, match="missing client_secret"):
        serve_cli.check_auth(home, "0.0.0.0")
    f.write_text(AUTH)
    os.chmod(f, 0o644)
    assert serve_cli.check_auth(home, "0.0.0.0") == f
    assert stat.S_IMODE(f.stat().st_mode) == 0o600  # it holds secrets
    child = serve_cli.children(home, port=8600, dagster_port=3000, with_dagster=False, host="0.0.0.0", secrets=f)[0]
    assert child.argv[child.argv.index("--secrets.files") + 1] == str(f)
    assert child.argv[child.argv.index("--server.address") + 1] == "0.0.0.0"
    assert child.health_url == "http://127.0.0.1:8600/_stcore/health"


def test_corrections_of_another_sites_entry_are_refused_by_the_use_case(home):
    from orchestration.services import quarantine as quarantine_service

    bad = [record(case_id="A-9", site_id="DE-A", kidney={"status": "sideways"}),
           record(case_id="C-9", site_id="DE-C", kidney={"status": "sideways"})]
    receipts = submit(home, [("bad.jsonl", b"".join(orjson.dumps(r) + b"\n" for r in bad))])
    qa, qc = (r.quarantine_id for r in receipts)
    mine = frozenset({"DE-A"})
    with pytest.raises(access.AccessDenied, match="not a record of your sites"):
        quarantine_service.correct(home, qc, record(case_id="C-9", site_id="DE-C"), allowed_sites=mine, user="s@x.org")
    with pytest.raises(access.AccessDenied):
        quarantine_service.resolve(home, qc, "not mine", allowed_sites=mine)
    # correcting one's own entry into another site's record is refused too, and the entry stays open
    c = quarantine_service.correct(home, qa, record(case_id="A-9", site_id="DE-C"), allowed_sites=mine, user="s@x.org")
    assert c.receipt.status == REFUSED and c.resolved is None and c.receipt.errors[0].path == "site_id"
    c = quarantine_service.correct(home, qa, record(case_id="A-9", site_id="DE-A"), allowed_sites=mine, user="s@x.org")
    assert c.receipt.status == ACCEPTED and c.resolved == qa
    assert {e["quarantine_id"]: e["resolved_at"] is not None for e in quarantine_entries(home)} == {qa: True, qc: False}


def test_every_upload_format_is_scoped_to_the_users_sites(home):
    from orchestration.contract.formats import xlsx
    from orchestration.services import imports

    book = xlsx.write_workbook([record(case_id="XL-B-1", site_id="DE-B"), record(case_id="XL-A-1", site_id="DE-A")])
    receipts = imports.submit_uploads(home, [("cases.xlsx", book), ("c.json", orjson.dumps(record(case_id="JS-B-1", site_id="DE-B")))],
                                      allowed_sites=frozenset({"DE-A"}), user="s@x.org")
    by_case = {r.case_id: r for r in receipts}
    assert {c: r.status for c, r in by_case.items()} == {"XL-B-1": REFUSED, "XL-A-1": ACCEPTED, "JS-B-1": REFUSED}
    assert all(any("site_id" in (e.path + e.message) for e in by_case[c].errors) for c in ("XL-B-1", "JS-B-1"))
    landed = b"".join(p.read_bytes() for p in home.landing_batches.glob("*.jsonl"))
    assert b"XL-A-1" in landed and b"XL-B-1" not in landed and b"JS-B-1" not in landed
