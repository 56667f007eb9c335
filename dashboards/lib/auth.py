"""Who is using the dashboards, resolved on every run, and the guard each page calls at its top.

- **Single-user mode** (no ``$REGISTRY_HOME/config/auth.toml``): the one local user is a
  coordinator; every page says so in one discreet line of the sidebar.
- **Sign-in** (``auth.toml`` handed to Streamlit by ``registry serve``): Streamlit's own
  ``st.login`` (OpenID Connect through Authlib) identifies the user by the ``email`` claim; grants
  (``registry access grant``) are read again on every run, so a change applies on the next page load.
  Not signed in: a sign-in page that shows nothing of the registry. Signed in without a grant: a page
  saying so and whom to ask, and nothing else.

The rules are enforced where data is read: :func:`guard` refuses a page the user's roles do not
include (a direct URL too) with one line and an audit line; the queries behind ``/cases`` take the
user's sites (:func:`sites_readable`); submissions and corrections pass :func:`submit_sites` to the
submit use case, which refuses another site's record.
"""

from __future__ import annotations

import os

import streamlit as st

from dashboards.lib import data, public
from orchestration.registry import access

USER_STATE = "registry_user"
ROLES_STATE = "registry_user_roles"  # read by the disclosure rules: a viewer-only user sees suppressed figures
EMAIL_STATE = "registry_user_email"
_SIGNED_IN_STATE = "registry_sign_in_logged"


def _auth_mode() -> str:
    """"oidc", "single-user", or "misconfigured" (auth.toml appeared after the server started
    without it: fail closed until ``registry serve`` is restarted)."""
    started = os.environ.get("REGISTRY_AUTH")
    configured = access.auth_configured(data.home())
    if started == "oidc":
        return "oidc"
    if configured:
        return "misconfigured"
    return "single-user"


_MD = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()<>#+-.!|~:$"})


def md_escape(text: str) -> str:
    """Untrusted text (an email from the identity provider) inside a Markdown caption, shown as text."""
    return "".join(ch for ch in str(text) if ch.isprintable()).translate(_MD)


def _claim(name: str) -> str | None:
    try:
        v = st.user.get(name)
    except Exception:  # noqa: BLE001 - no [auth] configured: st.user has no identity
        return None
    return str(v) if v else None


def resolve() -> access.User | None:
    """The user of this run (``None``: not signed in). Sets the session keys the pages read."""
    mode = _auth_mode()
    if mode == "single-user":
        user = access.local_coordinator()
    elif mode == "misconfigured":
        user = None
    elif not st.user.is_logged_in:
        user = None
    else:
        email = _claim("email") or ""
        user = access.resolve(data.home(), email)
        # one sign_in line per sign-in: Streamlit's identity cookie carries the token's issue time
        key = (user.email, _claim("iat") or st.context.headers.get("Sec-WebSocket-Key", ""))
        if st.session_state.get(_SIGNED_IN_STATE) != key and key not in _signed_in():
            _signed_in().add(key)
            access.record(data.home(), user, "sign_in", roles=sorted(user.roles) or None,
                          sites=sorted(user.sites) or None)
        st.session_state[_SIGNED_IN_STATE] = key
    st.session_state[USER_STATE] = user
    st.session_state[ROLES_STATE] = set(user.roles) if user else set()
    st.session_state[EMAIL_STATE] = user.email if user else None
    return user


@st.cache_resource(show_spinner=False)
def _signed_in() -> set:
    """Sign-ins already written to the audit log by this server process (a reload or a new tab of the
    same sign-in is not a new sign-in)."""
    return set()


def current() -> access.User:
    """The user resolved by ``app.py`` for this run (a page never runs without one). On the public
    dashboard (``public_app.py``: aggregate pages only, under the disclosure policy) an anonymous viewer."""
    if st.session_state.get(public.PUBLIC_STATE):
        return access.User("public", frozenset({access.VIEWER}))
    user = st.session_state.get(USER_STATE) or resolve()  # resolve: a page run on its own (tests)
    if user is None or not user.has_access:  # not signed in, or no grant: refuse
        st.error("Sign in first.", icon=":material/lock:")
        st.stop()
    return user


def who_to_ask() -> str:
    coords = access.coordinators(data.home())
    return ("the coordinator: " + ", ".join(coords)) if coords else "the registry's coordinator"


def guard(page: str) -> access.User:
    """Called at the top of every page: refuses (one line, one audit line) when the user's roles do
    not include ``page``; returns the user otherwise."""
    user = current()
    if not user.may_open(page):
        access.record(data.home(), user, "access_refused", page="/" + page)
        st.error(f"Your access does not include /{page}. Ask {who_to_ask()}.", icon=":material/block:")
        st.stop()
    return user


def sites_readable() -> frozenset[str] | None:
    """Sites whose case-level rows this user may read (None: every site)."""
    return current().sites_readable()


def site_scope() -> tuple[str, ...] | None:
    """:func:`sites_readable` as the hashable argument the case-level queries take."""
    s = sites_readable()
    return None if s is None else tuple(sorted(s))


def submit_sites() -> frozenset[str] | None:
    """Sites this user may submit and correct records for (None: every site)."""
    return current().sites_submittable()


def current_email() -> str:
    user = st.session_state.get(USER_STATE)
    return user.email if user else "anonymous"


def audit(kind: str, *, user: str | None = None, **fields) -> None:
    """One audit line for an access of the current user (case_view, sql_query, download, ...)."""
    access.record(data.home(), user or current_email(), kind, **fields)


def recent_accesses(limit: int = 200) -> list[dict]:
    if not current().may_read_audit():
        return []
    return access.recent_accesses(data.home(), limit)


def access_list() -> list[dict]:
    """Every grant (coordinators only): email, roles, sites."""
    if not current().may_read_audit():
        return []
    return [g.as_dict() for _, g in sorted(access.load_grants(data.home()).items())]


def audit_case_view(case_id: str) -> None:
    """One ``case_view`` line each time this session opens a case's detail (not on every rerun of the same case)."""
    if st.session_state.get("registry_case_viewed") != case_id:
        st.session_state["registry_case_viewed"] = case_id
        audit("case_view", case_id=case_id)


# --------------------------------------------------------------------------- what is shown instead of a page


def sign_in_page() -> None:
    """Shown to anyone not signed in: nothing of the registry's data."""
    st.title("Calciphylaxis Registry")
    st.write("Sign in with your institution's account to continue.")
    st.button("Sign in", type="primary", icon=":material/login:", on_click=st.login, key="sign_in")


def no_access_page(user: access.User) -> None:
    st.title("No access")
    st.text(f"You are signed in as {user.email}, but you have no access to this registry.")
    st.text(f"Ask {who_to_ask()} to grant you a role.")
    st.button("Sign out", icon=":material/logout:", on_click=st.logout, key="sign_out")


def misconfigured_page() -> None:
    st.title("Calciphylaxis Registry")
    st.error("Sign-in was configured (config/auth.toml) after the server started: restart `registry serve`.",
             icon=":material/lock:")


def refuse_run(user: access.User | None) -> None:
    """Draw the page that replaces every page for a user who may not use the registry, and stop."""
    if _auth_mode() == "misconfigured":
        misconfigured_page()
    elif user is None:
        sign_in_page()
    else:
        if not st.session_state.get("registry_no_access_logged"):
            st.session_state["registry_no_access_logged"] = True
            access.record(data.home(), user, "access_refused", page="(no grant)")
        no_access_page(user)
    st.stop()


def identity_line(user: access.User) -> None:
    """One discreet line in the sidebar: who is using the registry (and a sign-out button)."""
    with st.sidebar:
        if user.local:
            st.caption(":material/person: Single-user mode: you are the local coordinator (no sign-in configured).")
        else:
            st.caption(f":material/person: {md_escape(user.describe())}")
            st.button("Sign out", icon=":material/logout:", on_click=st.logout, key="sign_out", type="tertiary")
