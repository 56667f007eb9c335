"""Who may see and do what: role grants and the one permission model every page, query and use case asks.

Grants live in the registry home, ``$REGISTRY_HOME/config/access.json`` (0600, replaced atomically
under ``locks/access.lock``), and are read again on every page load, so a grant or a revocation takes
effect on the user's next page load without a restart. Every change is one audit line.

Roles (a user may hold several; their rights add up):

- ``coordinator``: everything: every page, every site's submissions and quarantine, withdrawal,
  the audit log and the access list.
- ``analyst``: every dashboard page over the whole registry (``/analysis`` too), ``/cases`` and ``/sql``; no submission.
- ``site_staff`` (with one or more sites): ``/submit`` for those sites only, ``/cases`` and the
  quarantine of those sites only, and the aggregate pages over the whole registry.
- ``viewer``: the aggregate pages only (``/``, ``/mortality``, ``/organs``, ``/labs``).

Without ``$REGISTRY_HOME/config/auth.toml`` the registry runs in single-user mode: the one local user
(:func:`local_coordinator`) is a coordinator. Identity (sign-in) is the identity provider's business
(Streamlit's ``st.login``); this module only maps an email address to what it may do.
"""

from __future__ import annotations

import getpass
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import orjson

from orchestration.config import Home
from orchestration.registry import audit
from orchestration.registry.fsutil import file_lock, fsync_dir

COORDINATOR, ANALYST, SITE_STAFF, VIEWER = "coordinator", "analyst", "site_staff", "viewer"
ROLES = (COORDINATOR, ANALYST, SITE_STAFF, VIEWER)

# Pages by URL path ("" is the overview).
AGGREGATE_PAGES = frozenset({"", "mortality", "organs", "labs"})
ALL_PAGES = AGGREGATE_PAGES | {"cases", "analysis", "quality", "submit", "sql"}
PAGES_BY_ROLE: dict[str, frozenset[str]] = {
    COORDINATOR: ALL_PAGES,
    ANALYST: AGGREGATE_PAGES | {"cases", "analysis", "quality", "sql"},
    SITE_STAFF: AGGREGATE_PAGES | {"cases", "submit"},
    VIEWER: AGGREGATE_PAGES,
}

SITE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}$")  # the contract's site_id pattern
EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")

LOCAL_USER = "local coordinator"


class AccessError(ValueError):
    """A grant or revocation that cannot be made (one line for the user)."""


class AccessDenied(PermissionError):
    """The user may not do this (one line for the user)."""


def normalise_email(email: str) -> str:
    e = (email or "").strip().lower()
    if not EMAIL_RE.match(e) or len(e) > 254:
        raise AccessError(f"{email!r} is not an email address")
    return e


# --------------------------------------------------------------------------- the user and its permissions


@dataclass(frozen=True)
class User:
    """A resolved user: an email, its roles and (for site_staff) its sites."""

    email: str
    roles: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    local: bool = False  # the one user of single-user mode

    @property
    def has_access(self) -> bool:
        return bool(self.roles)

    @property
    def is_coordinator(self) -> bool:
        return COORDINATOR in self.roles

    def pages(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for r in self.roles:
            out |= PAGES_BY_ROLE.get(r, frozenset())
        return out

    def may_open(self, page: str) -> bool:
        return page.strip("/") in self.pages()

    def sites_readable(self) -> frozenset[str] | None:
        """Sites whose case-level rows the user may read: ``None`` means every site, an empty set none."""
        if self.roles & {COORDINATOR, ANALYST}:
            return None
        if SITE_STAFF in self.roles:
            return self.sites
        return frozenset()

    def sites_submittable(self) -> frozenset[str] | None:
        """Sites the user may submit and correct records for: ``None`` every site, empty none."""
        if COORDINATOR in self.roles:
            return None
        if SITE_STAFF in self.roles:
            return self.sites
        return frozenset()

    def may_read_site(self, site_id: str | None) -> bool:
        s = self.sites_readable()
        return s is None or (site_id is not None and site_id in s)

    def may_submit(self, site_id: str | None = None) -> bool:
        """May submit at all (``site_id`` None), or for this site."""
        s = self.sites_submittable()
        if s is None:
            return True
        return bool(s) if site_id is None else site_id in s

    def may_correct(self, entry: Mapping[str, Any]) -> bool:
        """May see and correct this quarantine entry (a dict of ``quarantine_entries`` with its payload)."""
        s = self.sites_submittable()
        if s is None:
            return True
        site = entry_site(entry)
        return site is not None and site in s

    def may_read_cases(self) -> bool:
        return self.may_open("cases")

    def may_run_sql(self) -> bool:
        return self.may_open("sql")

    def may_download_case_rows(self) -> bool:
        return self.may_read_cases()

    def may_withdraw(self) -> bool:
        return self.is_coordinator

    def may_read_audit(self) -> bool:
        return self.is_coordinator

    def describe(self) -> str:
        if self.local:
            return "single-user mode: you are the local coordinator"
        parts = []
        for r in ROLES:
            if r in self.roles:
                parts.append(f"{r} ({', '.join(sorted(self.sites))})" if r == SITE_STAFF else r)
        return f"{self.email}: " + (", ".join(parts) if parts else "no access")


def local_coordinator() -> User:
    return User(LOCAL_USER, frozenset({COORDINATOR}), frozenset(), local=True)


def entry_site(entry: Mapping[str, Any]) -> str | None:
    """The ``site_id`` of a quarantined record, read from its payload (``None`` when unknown:
    an unparseable file, a payload that was withheld, or a record without a valid site id)."""
    if entry.get("site_id"):
        return str(entry["site_id"])
    payload = entry.get("payload")
    if entry.get("payload_encoding") != "json" or not isinstance(payload, str):
        return None
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    site = obj.get("site_id") if isinstance(obj, dict) else None
    return site if isinstance(site, str) and SITE_RE.match(site) else None


# --------------------------------------------------------------------------- grants in the registry home


@dataclass
class Grant:
    email: str
    roles: set[str] = field(default_factory=set)
    sites: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {"email": self.email, "roles": [r for r in ROLES if r in self.roles], "sites": sorted(self.sites)}


def access_file(home: Home):
    return home.config_dir / "access.json"


def auth_file(home: Home):
    return home.config_dir / "auth.toml"


def auth_configured(home: Home) -> bool:
    """True when sign-in through an identity provider is configured (otherwise single-user mode)."""
    return auth_file(home).is_file()


def load_grants(home: Home) -> dict[str, Grant]:
    f = access_file(home)
    if not f.exists():
        return {}
    try:
        raw = orjson.loads(f.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise AccessError(f"{f} is not valid JSON ({exc}); fix or remove it") from None
    out: dict[str, Grant] = {}
    for email, g in (raw.get("users") or {}).items():
        roles = {r for r in g.get("roles", []) if r in ROLES}
        sites = {s for s in g.get("sites", []) if isinstance(s, str) and SITE_RE.match(s)}
        if roles:
            out[email] = Grant(email, roles, sites if SITE_STAFF in roles else set())
    return out


def _write_grants(home: Home, grants: Mapping[str, Grant]) -> None:
    """Replace access.json atomically, created 0600 (whatever the umask)."""
    f = access_file(home)
    f.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {"version": 1, "users": {e: {k: v for k, v in g.as_dict().items() if k != "email"} for e, g in sorted(grants.items())}}
    data = orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"
    tmp = f.parent / f".{f.name}.{uuid.uuid4().hex}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, f)
    fsync_dir(f.parent)


def resolve(home: Home, email: str) -> User:
    """The user behind a signed-in email (no roles when it holds no grant)."""
    try:
        e = normalise_email(email)
    except AccessError:
        return User(str(email or ""), frozenset(), frozenset())
    g = load_grants(home).get(e)
    if g is None:
        return User(e)
    return User(e, frozenset(g.roles), frozenset(g.sites))


def coordinators(home: Home) -> list[str]:
    return sorted(e for e, g in load_grants(home).items() if COORDINATOR in g.roles)


def cli_actor() -> str:
    """Who changed a grant from the command line: the operating-system account."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no name for this uid (containers)
        return f"cli:uid{os.getuid()}"


def grant(home: Home, email: str, role: str, sites: Iterable[str] = (), *, by: str | None = None) -> Grant:
    e = normalise_email(email)
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    sites = sorted(set(sites))
    bad = [s for s in sites if not SITE_RE.match(s)]
    if bad:
        raise AccessError(f"--site {bad[0]!r} is not a site id (2 to 32 capital letters, digits, '_' or '-')")
    if role == SITE_STAFF and not sites:
        raise AccessError("site_staff needs at least one --site SITE_ID")
    if role != SITE_STAFF and sites:
        raise AccessError("--site applies to the site_staff role only")
    with file_lock(home.locks / "access.lock"):
        grants = load_grants(home)
        g = grants.setdefault(e, Grant(e))
        g.roles.add(role)
        g.sites.update(sites)
        _write_grants(home, grants)
    audit.event(home, "access_grant", user=by or cli_actor(), subject=e, role=role, sites=sites or None)
    return g


def revoke(home: Home, email: str, role: str | None = None, sites: Iterable[str] = (), *, by: str | None = None) -> Grant | None:
    """Revoke one role (or, with ``sites``, only those sites of site_staff), or every role when ``role`` is None."""
    e = normalise_email(email)
    if role is not None and role not in ROLES:
        raise AccessError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    sites = sorted(set(sites))
    if sites and role != SITE_STAFF:
        raise AccessError("--site applies to the site_staff role only")
    with file_lock(home.locks / "access.lock"):
        grants = load_grants(home)
        g = grants.get(e)
        if g is None or (role is not None and role not in g.roles):
            raise AccessError(f"{e} holds no {role or 'role'}")
        if role is None:
            g.roles.clear()
        elif sites:
            missing = [s for s in sites if s not in g.sites]
            if missing:
                raise AccessError(f"{e} is not site_staff of {missing[0]}")
            g.sites.difference_update(sites)
            if not g.sites:
                g.roles.discard(SITE_STAFF)
        else:
            g.roles.discard(role)
        if SITE_STAFF not in g.roles:
            g.sites.clear()
        if not g.roles:
            del grants[e]
        _write_grants(home, grants)
    audit.event(home, "access_revoke", user=by or cli_actor(), subject=e, role=role or "all", sites=sites or None)
    return grants.get(e)


# --------------------------------------------------------------------------- audit of access


def record(home: Home, user: User | str, kind: str, **fields: Any) -> None:
    """One audit line of an access: ``sign_in``, ``access_refused``, ``case_view``, ``sql_query``, ``download``."""
    email = user.email if isinstance(user, User) else str(user)
    audit.event(home, kind, user=email, **fields)


ACCESS_EVENTS = ("sign_in", "sign_out", "access_refused", "case_view", "sql_query", "download", "access_grant", "access_revoke")


def recent_accesses(home: Home, limit: int = 200) -> list[dict[str, Any]]:
    """The newest access events, newest first (for coordinators on /quality). Read set-based, as
    ``audit.submission_counts`` does: the log of a large registry is mostly submission lines."""
    import duckdb  # heavy: only the /quality page of a coordinator needs it

    if not home.audit_log.exists() or home.audit_log.stat().st_size == 0:
        return []
    con = duckdb.connect(":memory:", config={"memory_limit": "512MB"})
    try:
        rows = con.execute(
            "SELECT json FROM read_ndjson_objects(?) WHERE json->>'event' IN (SELECT unnest(?))",
            [str(home.audit_log), list(ACCESS_EVENTS)],
        ).fetchall()
    finally:
        con.close()
    return [orjson.loads(r[0]) for r in rows[-limit:]][::-1]


def matches_user(e: Mapping[str, Any], email: str) -> bool:
    em = email.strip().lower()
    return str(e.get("user") or "").lower() == em or str(e.get("subject") or "").lower() == em
