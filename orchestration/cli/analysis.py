"""``registry analysis table1|cox|cif|wounds`` and ``registry report``: the registry's standard
analyses on a filtered cohort of the published snapshot (the figures of the /analysis page).

    registry analysis table1 --by kidney_status [--filter sex=female ...] [--format json|csv]
    registry analysis cox --covariates age_years,kidney_status,warfarin [--reference kidney_status=ckd] [--filter ...]
                          [--format json|text]
    registry analysis cif [--filter ...] [--format json|csv]
    registry analysis wounds [--filter ...] [--format json]
    registry report OUT.html|OUT.pdf [--filter ...] [--public]

``registry report`` is the coordinator's tool: exact figures, unless ``--public`` applies the home's
disclosure policy (``registry disclosure show``; docs/disclosure.md) for a report that leaves the registry.

``--filter COLUMN=CODE`` may be repeated (AND); see ``orchestration.services.cohort``.
Exit codes: 0 ok; 1 the analysis cannot be computed for this cohort (one line says why);
2 usage (unknown column, code, covariate or file type; nothing published).
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from orchestration.analytics import names as variables
from orchestration.analytics.errors import AnalysisError
from orchestration.cli.common import UserError, home_from_args

__all__ = ["register"]


@functools.cache
def _m() -> SimpleNamespace:
    """The analysis modules, imported on first use: they load pandas, scipy, lifelines and
    matplotlib, which every other ``registry`` command (e.g. ``submit``) must not wait for."""
    from orchestration.analytics import competing_risks, cox, disclosure, table1, wounds  # heavy: lifelines, scipy (see above)
    from orchestration.services import cohort as cohort_service  # heavy: duckdb, pandas
    from orchestration.services import report as report_service  # heavy: matplotlib
    from orchestration.warehouse import snapshot

    return SimpleNamespace(competing_risks=competing_risks, cox=cox, disclosure=disclosure, table1=table1, wounds=wounds,
                           cohort_service=cohort_service, report_service=report_service, snapshot=snapshot)


def _clean(x: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    return x


def _dump(obj: Any) -> None:
    sys.stdout.write(json.dumps(_clean(obj), ensure_ascii=True, allow_nan=False) + "\n")


def _cell(v: Any) -> Any:
    """A CSV cell that a spreadsheet never reads as a formula."""
    v = _clean(v)
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return "" if v is None else v


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    sys.stdout.write(buf.getvalue())


def _cohort(args: argparse.Namespace, **kw: Any) -> Any:
    home = home_from_args(args)
    try:
        return _m().cohort_service.load_cohort(home, args.filter or [], **kw)
    except _m().cohort_service.CohortError as e:
        raise UserError(str(e)) from None
    except _m().snapshot.NoSnapshot as e:
        raise UserError(str(e)) from None


def _run(fn):
    """Wrap a handler: an analysis the cohort cannot support is one line and exit 1."""
    def handler(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except AnalysisError as e:
            print(f"registry {args.command}: {e}", file=sys.stderr)
            return 1
    handler.__name__ = fn.__name__
    return handler


# ----------------------------------------------------------------------------- commands


def cmd_table1(args: argparse.Namespace) -> int:
    if args.by not in variables.GROUPINGS:
        raise UserError(f"--by: cannot group by {args.by!r} (choose one of: {', '.join(variables.GROUPINGS)})")
    c = _cohort(args)
    t = _m().table1.table1(c.cases, args.by)
    if args.format == "csv":
        _csv(_m().table1.table1_rows(t), list(_m().table1.ROW_COLUMNS))
    else:
        _dump({"snapshot": c.version, "cohort": c.definition, **t})
    return 0


def cmd_cox(args: argparse.Namespace) -> int:
    covs = [x.strip() for x in (args.covariates or "").split(",") if x.strip()]
    bad = [x for x in covs if x not in variables.COX_COVARIATES]
    if not covs:
        raise UserError("--covariates: give at least one, e.g. age_years,kidney_status,warfarin")
    if bad:
        raise UserError(f"--covariates: unknown covariate {bad[0]!r} (choose from: {', '.join(variables.COX_COVARIATES)})")
    if len(set(covs)) != len(covs):
        raise UserError("--covariates: a covariate is given twice")
    refs: dict[str, str] = {}
    for item in args.reference or []:
        key, sep, value = str(item).partition("=")
        if not sep or not value.strip():
            raise UserError(f"--reference {item!r}: expected COVARIATE=LEVEL, e.g. kidney_status=dialysis")
        refs[key.strip()] = value.strip()
    c = _cohort(args)
    m = _m().cox.cox_model(c.cases, covs, refs or None)
    if args.format == "text":
        print(f"Cox model of death, {m['n_used']} cases used ({m['n_excluded']} left out), {m['n_events']} deaths; "
              f"snapshot {c.version}; cohort: {c.definition}")
        for r in m["covariates"]:
            name = r["covariate"] + (f" = {r['level']} (vs {r['reference']})" if r["level"] else " (per unit)")
            print(f"  {name:<48} HR {r['hazard_ratio']:.3f}  95% CI {r['ci_lower']:.3f}-{r['ci_upper']:.3f}  p {r['p']:.4g}")
        if m["ph_warning"]:
            print("  warning: " + m["ph_warning"])
    else:
        _dump({"snapshot": c.version, "cohort": c.definition, **m})
    return 0


CIF_COLUMNS = ["cause", "day", "cumulative_incidence", "ci_lower", "ci_upper"]


def cmd_cif(args: argparse.Namespace) -> int:
    c = _cohort(args)
    cs = c.cases
    curves = _m().competing_risks.cumulative_incidence(cs["followup_days"], cs["died"], cs["cause_of_death"])
    rows = _m().competing_risks.cif_at(curves)
    if args.format == "csv":
        _csv(rows, CIF_COLUMNS)
    else:
        _dump(rows)
    return 0


def cmd_wounds(args: argparse.Namespace) -> int:
    c = _cohort(args, treatments=True)
    _dump({"snapshot": c.version, "cohort": c.definition,
           "by_lesion_distribution": _m().wounds.healing_by_lesion_distribution(c.cases),
           "by_treatment": _m().wounds.healing_by_treatment(c.cases, c.treatments),
           "caution": _m().wounds.TREATMENT_CAUTION})
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    out = Path(args.out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("html", "pdf"):
        raise UserError(f"{args.out}: the report is written as .html or .pdf")
    if not out.parent.is_dir():
        raise UserError(f"{args.out}: no such folder {str(out.parent)!r}")
    k = None
    if args.public:
        try:
            k = _m().disclosure.load_policy(home_from_args(args)).min_cell
        except ValueError as e:  # a broken policy file stops the report, never a weaker policy
            raise UserError(str(e)) from None
    c = _cohort(args, treatments=True, labs=True, organs=True)
    data = _m().report_service.build_report(c, public=args.public, min_cell=k)
    if fmt == "html":
        out.write_text(_m().report_service.render_html(data), encoding="utf-8")
    else:
        _m().report_service.render_pdf(data, out)
    if args.public:
        size = "no figures: " + data["public"]["refusal"] if data["public"]["refusal"] else f"{c.cases.shape[0]} cases"
        print(f"wrote {out} (public, disclosure policy k={k}; {size}; generated from snapshot {c.version})")
        return 0
    print(f"wrote {out} ({c.cases.shape[0]} cases, generated from snapshot {c.version})")
    return 0


# ----------------------------------------------------------------------------- parsers


def _filter_arg(s: argparse.ArgumentParser) -> None:
    s.add_argument("--filter", action="append", metavar="COLUMN=CODE", default=[],
                   help="restrict the cohort on a dim_cases column, e.g. kidney_status=dialysis, warfarin=true, "
                        "age_band=70-79 (repeat: AND)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``registry analysis ...`` and ``registry report`` to the top-level sub-parsers."""
    a = sub.add_parser("analysis", help="Table 1, Cox model, competing risks, wound healing on a filtered cohort")
    asub = a.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")

    s = asub.add_parser("table1", help="baseline characteristics by a grouping column")
    s.add_argument("--by", required=True, metavar="COLUMN", help=f"one of: {', '.join(variables.GROUPINGS)}")
    _filter_arg(s)
    s.add_argument("--format", choices=("json", "csv"), default="json")
    s.set_defaults(func=_run(cmd_table1))

    s = asub.add_parser("cox", help="Cox proportional hazards model of death from day 0")
    s.add_argument("--covariates", required=True, metavar="A,B,C", help=f"from: {', '.join(variables.COX_COVARIATES)}")
    s.add_argument("--reference", action="append", metavar="COVARIATE=LEVEL", default=[],
                   help="reference level of a categorical covariate (default: its most common level; yes/no: false)")
    _filter_arg(s)
    s.add_argument("--format", choices=("json", "text"), default="json")
    s.set_defaults(func=_run(cmd_cox))

    s = asub.add_parser("cif", help="cumulative incidence of death by cause (Aalen-Johansen) at 30/90/180/365 days")
    _filter_arg(s)
    s.add_argument("--format", choices=("json", "csv"), default="json")
    s.set_defaults(func=_run(cmd_cif))

    s = asub.add_parser("wounds", help="wound healing by lesion distribution and by treatments received")
    _filter_arg(s)
    s.add_argument("--format", choices=("json",), default="json")
    s.set_defaults(func=_run(cmd_wounds))

    s = sub.add_parser("report", help="write the registry report (self-contained HTML or PDF) of a filtered cohort")
    s.add_argument("out", metavar="OUT.html|OUT.pdf")
    _filter_arg(s)
    s.add_argument("--public", action="store_true",
                   help="apply the home's disclosure policy (small cells suppressed, safe survival, no Cox or competing "
                        "risks) for a report circulated outside the registry; without it the figures are exact")
    s.set_defaults(func=_run(cmd_report))
