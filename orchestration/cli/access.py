"""``registry access grant|revoke|list``: who may see and do what on the dashboards.

The command line stays the coordinator's tool: whoever can run ``registry`` on the server owns the
registry home (0700), so no further check happens here. Every change is one audit line.
"""

from __future__ import annotations

import argparse
import json

from orchestration.cli.common import UserError, home_from_args
from orchestration.registry import access


def _home(args: argparse.Namespace):
    return home_from_args(args).ensure()


def cmd_grant(args: argparse.Namespace) -> int:
    home = _home(args)
    try:
        g = access.grant(home, args.email, args.role, args.site or ())
    except access.AccessError as exc:
        raise UserError(str(exc)) from None
    print(_line(g))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    home = _home(args)
    try:
        g = access.revoke(home, args.email, args.role, args.site or ())
    except access.AccessError as exc:
        raise UserError(str(exc)) from None
    print(_line(g) if g is not None else f"{access.normalise_email(args.email)}: no access")
    return 0


def _line(g: access.Grant) -> str:
    roles = [f"site_staff ({', '.join(sorted(g.sites))})" if r == access.SITE_STAFF else r for r in access.ROLES if r in g.roles]
    return f"{g.email}: {', '.join(roles) if roles else 'no access'}"


def cmd_list(args: argparse.Namespace) -> int:
    home = _home(args)
    try:
        grants = access.load_grants(home)
    except access.AccessError as exc:
        raise UserError(str(exc)) from None
    if args.format == "json":
        print(json.dumps([g.as_dict() for _, g in sorted(grants.items())], ensure_ascii=False))
        return 0
    mode = "sign-in through " + str(access.auth_file(home)) if access.auth_configured(home) else "single-user mode (no config/auth.toml)"
    if not grants:
        print(f"no grants ({mode})")
        return 0
    for _, g in sorted(grants.items()):
        print(_line(g))
    return 0


def register(sub) -> None:
    p = sub.add_parser("access", help="grant, revoke and list who may use the dashboards (roles, sites)")
    s = p.add_subparsers(dest="access_command", required=True, metavar="ACTION")

    g = s.add_parser("grant", help="give EMAIL a role (coordinator, analyst, site_staff --site SITE_ID..., viewer)")
    g.add_argument("email", metavar="EMAIL", help="the user's email, as the identity provider sends it")
    g.add_argument("role", metavar="ROLE", choices=access.ROLES, help=f"one of {', '.join(access.ROLES)}")
    g.add_argument("--site", action="append", metavar="SITE_ID", help="a site of site_staff (repeat for several)")
    g.set_defaults(func=cmd_grant)

    r = s.add_parser("revoke", help="take a role (or every role) from EMAIL")
    r.add_argument("email", metavar="EMAIL")
    r.add_argument("role", metavar="ROLE", nargs="?", choices=access.ROLES, help="omit to revoke every role")
    r.add_argument("--site", action="append", metavar="SITE_ID", help="with site_staff: revoke only these sites")
    r.set_defaults(func=cmd_revoke)

    ls = s.add_parser("list", help="every user with a grant")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    ls.set_defaults(func=cmd_list)
