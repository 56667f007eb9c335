"""Streamlit building blocks shared by the pages: the cohort sidebar, page headers with the cohort
size and the synthetic-data banner, tables with a CSV download, and charts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from dashboards.lib import cohort, data, labels, public
from dashboards.lib.cohort import CohortFilter
from dashboards.queries import common as common_queries
from orchestration.analytics import disclosure
from orchestration.registry.textsafety import to_safe_csv

NOTHING_PUBLISHED = (
    "**Nothing published yet: run `registry build`.**\n\n"
    "The dashboards read only the published snapshot of the registry. Submit case records with "
    "`registry submit FILE` (or try `registry demo --no-serve`), then `registry build` publishes one; "
    "this page picks it up on its next refresh, no restart needed."
)

PLOTLY_CONFIG = {
    "displaylogo": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}

SNAPSHOT_STATE = "_snapshot"
FILTER_STATE = "_cohort_filter"
SIZE_STATE = "_cohort_size"


@dataclass(frozen=True)
class PageContext:
    snap: data.Snapshot
    filter: CohortFilter
    size: dict[str, int]
    vocab: dict[tuple[str, str], str]
    #: the minimum cell size when the page is in disclosure mode (public dashboard, viewer), else None
    k: int | None = None

    @property
    def n(self) -> int:
        return self.size["n_cases"]

    @property
    def note(self) -> str | None:
        """Chart subtitle when synthetic cases are included."""
        n = self.size.get("n_synthetic", 0)
        return f"Includes synthetic cases (n={n:,})" if n else None

    def label(self, column: str, value: Any) -> str:
        return labels.value_label(column, value, self.vocab)


# ----------------------------------------------------------------------------- cohort sidebar

_WIDGET = {"bind": "query-params", "persist_state": "session"}


def disclosure_k() -> int | None:
    """The minimum cell size when this session sees figures under the disclosure policy (the public
    dashboard, or a signed-in viewer), else None. A broken policy file stops the page: never a
    silent fallback to exact figures or a weaker policy."""
    if not public.active(st.session_state):
        return None
    try:
        return disclosure.load_policy(data.home()).min_cell
    except ValueError as exc:
        st.error(f"The disclosure policy cannot be read, so no figures are shown: {exc}", icon=":material/policy:")
        st.stop()


def _restrict(values: dict[str, Any], levels: dict[str, dict[str, int]], k: int) -> dict[str, Any]:
    """Drop filter values (e.g. from a URL) that the disclosure mode does not offer."""
    cols = {"sex": "sex", "age": "age_band", "kidney": "kidney_status", "lesions": "lesion_distribution", "site": "site_id",
            "diabetes": "diabetes", "warfarin": "warfarin", "visceral": "visceral_involvement"}
    out = dict(values)
    for key, col in cols.items():
        v = out.get(key)
        if isinstance(v, (list, tuple)):
            out[key] = [x for x in v if levels[col].get(x, 0) >= k]
        elif isinstance(v, str) and v != "any" and levels[col].get(v, 0) < k:
            out[key] = "any"
    return out


def _reset_filter(year_bounds) -> None:
    for key in ("sex", "age", "kidney", "lesions", "site"):
        st.session_state[key] = []
    for key in ("diabetes", "warfarin", "visceral"):
        st.session_state[key] = "any"
    if year_bounds and "years" in st.session_state:
        st.session_state["years"] = tuple(year_bounds)
    st.session_state["synthetic"] = True


def cohort_sidebar(snap: data.Snapshot) -> CohortFilter:
    """The shared cohort filter in the sidebar; every widget is bound to the URL query string (its
    key is the parameter name, see :mod:`dashboards.lib.cohort`). Returns the filter and keeps it
    (and the cohort's size) in the session for the page."""
    opts = data.run(snap, common_queries.filter_options)
    k = disclosure_k()
    level_n = data.run(snap, public.level_counts) if k else None

    def offer(options, column, keep=("any",)):
        """Every option, or in disclosure mode only the levels with at least k cases."""
        return list(options) if not k else public.offered(options, level_n[column], k, keep=keep)
    # the labels are also what the URL carries (see dashboards.lib.cohort)
    fmt = {c: (lambda v, c=c: cohort.option_label(c, v)) for c in ("sex", "kidney_status", "lesion_distribution")}
    tri = lambda v: cohort.TRI_LABELS[v]  # noqa: E731
    with st.sidebar:
        size_box = st.container()
        st.markdown("**Cohort filter**")
        values: dict[str, Any] = {}
        levels = opts.get("levels") or {}
        values["sex"] = st.multiselect("Sex", offer(levels.get("sex", cohort.SEXES), "sex"), key="sex", format_func=fmt["sex"], placeholder="All", **_WIDGET)
        values["age"] = st.multiselect("Age band", offer(levels.get("age_band", cohort.AGE_BANDS), "age_band"), key="age", placeholder="All", **_WIDGET)
        values["kidney"] = st.multiselect("Kidney status", offer(levels.get("kidney_status", cohort.KIDNEY_STATUSES), "kidney_status"), key="kidney", format_func=fmt["kidney_status"],
                                          placeholder="All", **_WIDGET)
        c1, c2 = st.columns(2)
        with c1:
            values["diabetes"] = st.selectbox("Diabetes", offer(cohort.TRI_STATE, "diabetes"), key="diabetes", format_func=tri, **_WIDGET)
        with c2:
            values["warfarin"] = st.selectbox("Warfarin", offer(cohort.TRI_STATE, "warfarin"), key="warfarin", format_func=tri, **_WIDGET)
        values["visceral"] = st.selectbox("Visceral involvement", offer(("any", "yes", "no"), "visceral_involvement"), key="visceral", format_func=tri, **_WIDGET)
        values["lesions"] = st.multiselect("Lesion distribution", offer(levels.get("lesion_distribution", cohort.LESION_DISTRIBUTIONS), "lesion_distribution"),
                                           key="lesions",
                                           format_func=fmt["lesion_distribution"], placeholder="All", **_WIDGET)
        values["site"] = st.multiselect("Site", offer(opts["sites"], "site_id"), key="site", placeholder="All sites", **_WIDGET)
        yb = opts["year_bounds"]
        if yb and yb[0] < yb[1]:
            values["years"] = st.slider("Index year", yb[0], yb[1], (yb[0], yb[1]), key="years",
                                        help="The full range also keeps cases without a reported index year.", **_WIDGET)
        values["synthetic"] = st.toggle("Include synthetic cases", value=True, key="synthetic",
                                        help="Generated test cases (source: synthetic). They are labelled wherever they are included.",
                                        **_WIDGET)
        f = cohort.from_widgets(_restrict(values, level_n, k) if k else values, yb)
        st.button("Reset filter", on_click=_reset_filter, args=(yb,), icon=":material/restart_alt:", disabled=f.is_default,
                  width="stretch")
    size = data.run(snap, common_queries.cohort_size, f)
    with size_box:
        if k:
            n_txt = public.cohort_text(size, k)
            st.metric("Cohort", n_txt, border=True, help=f"Under the disclosure policy (minimum cell size k = {k}).")
            st.caption(f":material/policy: Disclosure control: k = {k}")
            st.session_state[FILTER_STATE] = f
            st.session_state[SIZE_STATE] = size
            return f
        st.metric("Cohort", f"{size['n_cases']:,} cases", border=True,
                  help=f"{size['n_cases']:,} of the {size['n_registry']:,} cases in the published snapshot match the filter.")
        if size["n_synthetic"]:
            st.caption(f":orange-badge[:material/science: {size['n_synthetic']:,} synthetic] "
                       f":blue-badge[{size['n_real']:,} real]")
    st.session_state[FILTER_STATE] = f
    st.session_state[SIZE_STATE] = size
    return f


def snapshot_caption(snap: data.Snapshot | None) -> None:
    with st.sidebar:
        if snap is None:
            st.caption("No snapshot published yet.")
        else:
            when = (snap.published_at or "")[:19].replace("T", " ")
            st.caption(f"Snapshot `{snap.version}`" + (f", published {when} UTC" if when else ""))


# ----------------------------------------------------------------------------- page header


def ensure_navigation() -> None:
    """Make sure this page runs inside ``app.py`` (title, favicon, navigation, cohort filter).

    Because the page files live in a folder called ``pages/``, Streamlit 1.67 starts every fresh
    process in its old directory-based multipage mode: until some session has run ``st.navigation``,
    a request for ``/mortality`` would run ``pages/mortality.py`` on its own. A page that finds
    itself run that way switches the mode off and reruns, which goes through ``app.py``.
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()



def no_snapshot(title: str) -> None:
    st.title(title)
    st.info(NOTHING_PUBLISHED, icon=":material/hourglass_empty:")
    st.stop()


def start_page(title: str, intro: str | None = None, *, filtered: bool = True) -> PageContext:
    """Title, the cohort line and the synthetic-data banner; stops with a friendly message when
    nothing is published yet."""
    ensure_navigation()
    snap = st.session_state.get(SNAPSHOT_STATE) or data.current_snapshot()
    if snap is None:
        no_snapshot(title)
    vocab = data.run(snap, common_queries.vocabulary)
    if filtered:
        f = st.session_state.get(FILTER_STATE) or CohortFilter()
        size = st.session_state.get(SIZE_STATE) or data.run(snap, common_queries.cohort_size, f)
    else:
        f = CohortFilter()
        size = data.run(snap, common_queries.cohort_size, f)
    st.title(title)
    if intro:
        st.caption(intro)
    k = disclosure_k()
    if k:
        desc = f.describe(lambda c, v: labels.value_label(c, v, vocab))
        st.markdown(f":material/groups: **Cohort: {public.cohort_text(size, k)}** · {desc}")
        st.info(disclosure.Policy(min_cell=k).describe() + " Suppressed cells read *suppressed*; every CSV is the suppressed table.",
                icon=":material/policy:")
        syn = public.synthetic_text(size, k)
        if syn:
            st.warning(syn, icon=":material/science:")
        return PageContext(snap=snap, filter=f, size=size, vocab=vocab, k=k)
    if filtered:
        desc = f.describe(lambda c, v: labels.value_label(c, v, vocab))
        st.markdown(f":material/groups: **Cohort: {size['n_cases']:,} cases** of {size['n_registry']:,} · {desc}")
    if size.get("n_synthetic"):
        st.warning(
            f"**Includes synthetic cases (n={size['n_synthetic']:,})**, generated for testing and demonstration; "
            f"{size['n_real']:,} real case{'s' if size['n_real'] != 1 else ''}. "
            + ("Turn off *Include synthetic cases* in the sidebar for real cases only." if filtered else ""),
            icon=":material/science:",
        )
    return PageContext(snap=snap, filter=f, size=size, vocab=vocab)


def empty_cohort(ctx: PageContext) -> bool:
    if ctx.k:
        why = public.refusal(ctx.n, ctx.size["n_registry"], ctx.k)
        if why:
            st.info(why, icon=":material/policy:")
            return True
    if ctx.n == 0:
        st.info("No case matches this filter. Widen it in the sidebar (or use *Reset filter*).", icon=":material/filter_alt_off:")
        return True
    return False


# ----------------------------------------------------------------------------- tables and charts


_NOT_COUNTS = frozenset({"index_year", "day", "revision", "record", "lab_index", "onset_day", "diagnosis_day", "followup_days"})


def csv_bytes(df: pd.DataFrame) -> bytes:
    return to_safe_csv(df).encode("utf-8")  # no spreadsheet formulas from submitted text


def download(df: pd.DataFrame | Any, name: str, *, key: str | None = None, label: str = "Download CSV") -> None:
    """A CSV download button; ``df`` may be a DataFrame or a function returning one (run on click)."""
    k = disclosure_k()
    to_csv = (lambda d: public.csv_bytes(d, k)) if k else csv_bytes
    if k and not name.endswith(f"_suppressed_k{k}"):
        name = public.csv_name(name, k)
    if callable(df):
        producer = df
        payload = lambda: to_csv(producer())  # noqa: E731
    else:
        frame = df
        payload = lambda: to_csv(frame)  # noqa: E731
    st.download_button(label, data=payload, file_name=f"{name}.csv", mime="text/csv", key=key or f"dl-{name}",
                       on_click="ignore", icon=":material/download:", type="tertiary")


def table(df: pd.DataFrame, name: str, *, csv: pd.DataFrame | Any | None = None, column_config: dict | None = None,
          height: int | str = "auto", key: str | None = None, caption: str | None = None, **kwargs: Any) -> Any:
    """A table with readable column names and, under it, its CSV download (``csv``: what to download
    instead of the table shown, e.g. unrounded numbers or every row)."""
    shown = df.rename(columns={c: labels.pretty(c) for c in df.columns if isinstance(c, str)})
    cfg = {labels.pretty(k) if k in df.columns else k: v for k, v in (column_config or {}).items()}
    for c in df.columns:  # thousands separators for large counts (not for years or days)
        name_ = labels.pretty(c) if isinstance(c, str) else c
        if (name_ not in cfg and pd.api.types.is_integer_dtype(df[c]) and len(df) and str(c) not in _NOT_COUNTS
                and df[c].abs().max() >= 10_000):
            cfg[name_] = st.column_config.NumberColumn(name_, format="localized")
    k = disclosure_k()
    if k:  # the download is the suppressed table shown, never the exact ``csv``
        csv = (lambda frame=shown: frame)
        name = public.csv_name(name, k)
    out = st.dataframe(shown, hide_index=True, width="stretch", height=height, column_config=cfg, key=key, **kwargs)
    if caption:
        c1, c2 = st.columns([4, 1.4], vertical_alignment="center")
        c1.caption(caption)
        with c2:
            download(csv if csv is not None else shown, name, key=f"dl-{key or name}")
    else:
        download(csv if csv is not None else shown, name, key=f"dl-{key or name}")
    return out


def chart(fig: go.Figure, *, key: str | None = None) -> None:
    st.plotly_chart(fig, width="stretch", theme=None, config=PLOTLY_CONFIG, key=None if key is None else f"chart-{key}")


def stratum_picker(label: str, key: str, *, default: str | None = None, allow_none: bool = True,
                   options: dict[str, str] | None = None) -> str | None:
    """A selectbox of strata (bound to the URL as ``key``); ``None`` is "no stratification"."""
    opts = dict(options or labels.STRATA)
    keys = (["none"] if allow_none else []) + list(opts)
    choice = st.selectbox(label, keys, index=keys.index(default) if default in keys else 0, key=key,
                          format_func=lambda k: "None (whole cohort)" if k == "none" else opts[k], bind="query-params")
    return None if choice in (None, "none") else choice


def pct_column(label: str | None = None, digits: int = 1) -> Any:
    return st.column_config.NumberColumn(label, format=f"%.{digits}f%%")
