"""The pages of the tester (Streamlit calls; the logic is in customers.py, client.py, targeting.py)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from bankmarketing.data.schema import FEATURES, RANGES
from bankmarketing.serving.schemas import Customer
from bankmarketing.targeting import gains_curve, plan_campaign
from bankmarketing.ui.client import PredictorClient, PredictorError, PredictorRejected
from bankmarketing.ui.customers import (
    DEFAULT_CUSTOMER,
    InvalidRows,
    allowed_values,
    contributions_frame,
    read_csv,
    rejection_lines,
    scored_frame,
    to_customers,
)

PAGES = (
    "Score a customer",
    "Score a file",
    "Plan a campaign",
    "What drives the score",
    "Challenger vs production",
)
#: Session state: the last scored file (a frame with probability), its name and upload id.
SCORED, SCORED_NAME, SCORED_ID = "scored_frame", "scored_name", "scored_file_id"
PLAN_CACHE = "plan_upload_scores"


def show_error(exc: Exception) -> None:
    """A predictor or input failure as one st.error, rows and fields listed, never a traceback."""
    if isinstance(exc, PredictorRejected) and exc.detail:
        lines = rejection_lines(exc.detail)
        st.error(f"The predictor rejected the input ({exc.status} {exc.error}):\n\n" + _bullets(lines))
    elif isinstance(exc, InvalidRows):
        more = [f"… and {exc.more} more"] if exc.more else []
        st.error("Some rows cannot be sent:\n\n" + _bullets([str(p) for p in exc.problems] + more))
    else:
        st.error(str(exc))


def answer_of(call: Callable[[], dict]) -> dict | None:
    """The predictor's answer, or None after showing why there is none."""
    try:
        return call()
    except PredictorError as exc:
        show_error(exc)
        return None


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def _percent(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.1%}"


def model_sidebar(client: PredictorClient) -> None:
    """The served model (or why there is none) in the sidebar."""
    try:
        model = client.model()
    except PredictorError as exc:
        st.sidebar.error(str(exc))
        return
    st.sidebar.success(f"Model **{model['name']}** version **{model['version']}**")
    st.sidebar.caption(
        f"Threshold {model['threshold']:.3f} · from {model.get('source', '?')} · {client.base_url}"
    )
    if model.get("card"):
        with st.sidebar.expander("Model card"):
            st.markdown(model["card"])


# --- (a) one customer ----------------------------------------------------------------------------------


def _help(name: str) -> str | None:
    return Customer.model_fields[name].description


def customer_form(explains: bool = True) -> tuple[dict[str, Any], bool, bool]:
    """The 15 fields (ranges and categories of the data contract): (customer, explain, submitted).

    `explains`: whether the served version answers `explain` (else the box is off and disabled).
    """
    customer: dict[str, Any] = {}
    with st.form("customer"):
        columns = st.columns(3)
        for i, name in enumerate(FEATURES):
            with columns[i % 3]:
                if name in RANGES:
                    low, high = RANGES[name]
                    customer[name] = int(
                        st.number_input(
                            name,
                            min_value=low,
                            max_value=high,
                            value=DEFAULT_CUSTOMER[name],
                            step=1,
                            help=_help(name),
                            key=f"field.{name}",
                        )
                    )
                else:
                    options = allowed_values(name)
                    customer[name] = st.selectbox(
                        name,
                        options,
                        index=options.index(DEFAULT_CUSTOMER[name]),
                        help=_help(name),
                        key=f"field.{name}",
                    )
        explain = st.checkbox(
            "Explain the score (per-feature contributions)",
            value=explains,
            disabled=not explains,
            help=None if explains else "The served version cannot explain its scores (see the model page).",
            key="explain",
        )
        submitted = st.form_submit_button("Score", type="primary")
    return customer, explain, submitted


def served_model(client: PredictorClient) -> dict | None:
    """The served version's description (GET /model), or None while the predictor cannot say."""
    try:
        return client.model()
    except PredictorError:
        return None


def score_customer_page(client: PredictorClient) -> None:
    st.header("Score a customer")
    served = served_model(client)
    customer, explain, submitted = customer_form(bool(served and served.get("explainable")))
    if customer["pdays"] == -1 and customer["previous"] > 0:
        st.warning("pdays = -1 means never contacted before, so previous should be 0.")
    if not submitted:
        return
    answer = answer_of(lambda: client.predict(customer, explain=explain))
    if answer is None:
        return
    left, middle, right = st.columns(3)
    left.metric("Probability of subscribing", _percent(answer["probability"]))
    middle.metric("Decision", answer["decision"], help=f"call when probability ≥ {answer['threshold']:.3f}")
    right.metric("Model", f"{answer['model_name']} v{answer['model_version']}")
    st.caption(f"Threshold {answer['threshold']:.3f} · request {answer['request_id']}")
    if answer.get("contributions"):
        contributions = contributions_frame(answer["contributions"])
        output = (served or {}).get("explained_output") or "model output"
        st.subheader("Why")
        chart = (
            alt.Chart(contributions)
            .mark_bar()
            .encode(
                x=alt.X("contribution:Q", title=f"contribution ({output})"),
                y=alt.Y("feature:N", sort=None, title=None),
                color=alt.Color(
                    "direction:N",
                    scale=alt.Scale(domain=["towards call", "towards skip"], range=["#2a9d8f", "#e76f51"]),
                ),
                tooltip=["feature", alt.Tooltip("contribution:Q", format=".3f")],
            )
        )
        st.altair_chart(chart, width="stretch")
        st.caption(
            f"Contributions to the {output} before calibration "
            f"({(served or {}).get('explanation_method') or 'the model’s own'}); bias, the base value "
            f"they start from: {answer['contributions'].get('bias', 0.0):.3f}"
        )


# --- (b) a file ----------------------------------------------------------------------------------------


def score_rows(frame: pd.DataFrame, client: PredictorClient) -> pd.DataFrame | None:
    """Check columns, convert, score in chunks; an st.error (and None) when anything fails."""
    try:
        customers = to_customers(frame)
        if not customers:
            raise ValueError("The file has a header but no rows")
        bar = st.progress(0.0, text=f"Scoring {len(customers)} customers…")
        answer = client.predict_batch(customers, progress=lambda done, total: bar.progress(done / total))
        bar.empty()
    except (PredictorError, ValueError) as exc:
        show_error(exc)
        return None
    return scored_frame(frame, answer)


def score_csv(data: bytes, name: str, client: PredictorClient) -> pd.DataFrame | None:
    """Read, score and remember (session state) an uploaded CSV; None after an st.error."""
    try:
        frame = read_csv(data)
    except ValueError as exc:
        show_error(exc)
        return None
    scored = score_rows(frame, client)
    if scored is not None:
        st.session_state[SCORED], st.session_state[SCORED_NAME] = scored, name
    return scored


def show_scored() -> None:
    """Preview and download of the last scored file."""
    scored = st.session_state.get(SCORED)
    if scored is None:
        return
    name = st.session_state.get(SCORED_NAME, "customers.csv")
    calls = int((scored["decision"] == "call").sum())
    versions = ", ".join(sorted(set(scored["model_version"])))
    st.success(f"Scored {len(scored)} customers from {name} with model version {versions}: {calls} to call.")
    first = ["rank", "probability", "decision", "model_version"]
    preview = scored[first + [c for c in scored.columns if c not in first]]
    st.dataframe(preview.head(1000), hide_index=True)
    if len(scored) > 1000:
        st.caption(f"First 1000 of {len(scored)} rows; the download has all of them.")
    st.download_button(
        "Download the scored CSV",
        scored.to_csv(index=False),
        file_name=f"scored-{name.rsplit('/', 1)[-1]}",
        mime="text/csv",
    )


def score_file_page(client: PredictorClient) -> None:
    st.header("Score a file")
    st.caption(
        f"A CSV with the columns {', '.join(FEATURES)}. Other columns are kept in the output; "
        "duration and y are not sent to the model."
    )
    uploaded = st.file_uploader("CSV file", type=["csv", "txt"], key="score_upload")
    if uploaded is not None and st.session_state.get(SCORED_ID) != uploaded.file_id:
        if score_csv(uploaded.getvalue(), uploaded.name, client) is not None:
            st.session_state[SCORED_ID] = uploaded.file_id
        else:
            return
    show_scored()


# --- (c) a campaign ------------------------------------------------------------------------------------


def campaign_scores(client: PredictorClient) -> pd.DataFrame | None:
    """The customers to plan over: the last scored file, or an upload (scored unless it has probabilities)."""
    choices = ["Upload a CSV"]
    if st.session_state.get(SCORED) is not None:
        choices.insert(0, f"Last scored file ({st.session_state.get(SCORED_NAME, 'customers.csv')})")
    source = st.radio("Customers", choices, horizontal=True, key="campaign_source")
    if source != "Upload a CSV":
        return st.session_state[SCORED]
    uploaded = st.file_uploader(
        "CSV with the 15 feature columns (or a probability column)", type=["csv", "txt"], key="plan_upload"
    )
    if uploaded is None:
        return None
    cached = st.session_state.get(PLAN_CACHE)
    if cached is not None and cached[0] == uploaded.file_id:
        return cached[1]
    try:
        frame = read_csv(uploaded.getvalue())
    except ValueError as exc:
        show_error(exc)
        return None
    if "probability" in frame.columns:
        frame["probability"] = pd.to_numeric(frame["probability"], errors="coerce")
        scored = frame
    else:
        scored = score_rows(frame, client)
    if scored is not None:
        st.session_state[PLAN_CACHE] = (uploaded.file_id, scored)  # widget changes do not rescore
    return scored


def budget_inputs(customers: int) -> dict[str, Any]:
    """plan_campaign's keyword arguments from the budget widgets."""
    mode = st.radio("Budget", ["Number of calls", "Money"], horizontal=True, key="budget_mode")
    left, middle, right = st.columns(3)
    cost = left.number_input("Cost per call", min_value=0.0, value=5.0, step=1.0, key="cost_per_call")
    value = middle.number_input(
        "Value per subscription", min_value=0.0, value=50.0, step=5.0, key="value_per_subscription"
    )
    if mode == "Money":
        budget = right.number_input("Budget (money)", min_value=0.0, value=5000.0, step=100.0, key="budget")
        limit: dict[str, Any] = {"budget": budget}
    else:
        calls = right.number_input(
            "Number of calls", min_value=0, value=min(1000, customers), step=10, key="max_calls"
        )
        limit = {"max_calls": int(calls)}
    stop = st.checkbox(
        "Stop where a call is expected to cost more than it earns", value=True, key="stop_when_unprofitable"
    )
    return {**limit, "cost_per_call": cost, "value_per_subscription": value, "stop_when_unprofitable": stop}


def plan_campaign_page(client: PredictorClient) -> None:
    st.header("Plan a campaign")
    scored = campaign_scores(client)
    if scored is None:
        st.info("Score a file first (page *Score a file*) or upload one here.")
        return
    options = budget_inputs(len(scored))
    try:
        plan = plan_campaign(scored, **options)
        gains = gains_curve(scored)
    except ValueError as exc:
        st.error(f"Cannot plan the campaign: {exc}")
        return
    summary = plan.summary
    gain = summary["expected_subscriptions"] - summary["random_expected_subscriptions"]
    columns = st.columns(4)
    columns[0].metric("Calls", f"{summary['calls']:,}", help=f"of {summary['customers']:,} customers")
    columns[1].metric(
        "Expected subscriptions",
        f"{summary['expected_subscriptions']:,.1f}",
        delta=f"{gain:+,.1f} vs random",
    )
    columns[2].metric(
        "Expected profit",
        f"{summary['expected_profit']:,.0f}",
        delta=f"{summary['expected_profit'] - summary['random_expected_profit']:+,.0f} vs random",
    )
    lift = summary["lift"]
    columns[3].metric("Lift over random", "–" if math.isnan(lift) else f"{lift:.2f}×")
    st.caption(
        f"Expected subscription rate {_percent(summary['expected_subscription_rate'])} among the called vs "
        f"{_percent(summary['mean_probability'])} on average; spend {summary['spend']:,.0f}; "
        f"limited by {summary['limited_by']}."
    )
    st.altair_chart(_gains_chart(gains, summary["share_called"]), width="stretch")
    st.dataframe(plan.call_list.head(1000), hide_index=True)
    st.download_button(
        "Download the call list",
        plan.call_list.to_csv(index=False),
        file_name="call-list.csv",
        mime="text/csv",
        disabled=plan.call_list.empty,
    )


def _gains_chart(gains: pd.DataFrame, share_called: float) -> alt.LayerChart:
    lines = gains.melt(
        id_vars=["share_called"], value_vars=["model", "random"], var_name="targeting", value_name="share"
    )
    curve = (
        alt.Chart(lines)
        .mark_line()
        .encode(
            x=alt.X("share_called:Q", title="share of customers called", axis=alt.Axis(format="%")),
            y=alt.Y("share:Q", title="share of expected subscriptions", axis=alt.Axis(format="%")),
            color=alt.Color("targeting:N", title=None),
        )
    )
    cut = (
        alt.Chart(pd.DataFrame({"share_called": [share_called]}))
        .mark_rule(strokeDash=[4, 4])
        .encode(x="share_called:Q")
    )
    return (curve + cut).properties(title="Cumulative gains")


# --- (d) the served version's global explanation ------------------------------------------------------


def explanation_page(client: PredictorClient) -> None:
    st.header("What drives the score")
    model = answer_of(client.model)
    if model is None:
        return
    explanation = model.get("explanation")
    if not explanation:
        st.info(
            f"Version {model['version']} has no global explanation: it was promoted before explanations "
            "were logged, or it cannot explain its scores "
            f"({model.get('explanation_method') or 'no contributions for this version'}). "
            "Promote a newer version with `make deploy`."
        )
        return
    output = explanation.get("output", "log-odds")
    st.caption(
        f"Model {model['name']} v{model['version']} ({model.get('kind', 'unknown kind')}): mean absolute "
        f"contribution to the {output} before calibration over {explanation['rows']:,} test customers, "
        f"by {explanation.get('method', 'the model’s own contributions')}."
    )
    importance = pd.DataFrame(explanation["importance"])
    st.altair_chart(
        alt.Chart(importance)
        .mark_bar()
        .encode(
            x=alt.X("mean_abs_contribution:Q", title=f"mean |contribution| ({output})"),
            y=alt.Y("feature:N", sort=None, title=None),
            tooltip=["feature", alt.Tooltip("mean_abs_contribution:Q", format=".3f")],
        ),
        width="stretch",
    )
    columns = st.columns(len(explanation["dependence"]))
    for column, (field, rows) in zip(columns, explanation["dependence"].items(), strict=True):
        frame = pd.DataFrame(rows)
        column.subheader(field)
        column.altair_chart(
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("bin:N", sort=None, title=None),
                y=alt.Y("mean_score:Q", title="mean score", axis=alt.Axis(format="%")),
                tooltip=[
                    "bin",
                    "rows",
                    alt.Tooltip("mean_score:Q", format=".3f"),
                    alt.Tooltip("mean_contribution:Q", format=".3f"),
                ],
            ),
            width="stretch",
        )


# --- (e) a challenger beside production ----------------------------------------------------------------

CHALLENGER_SETUP = (
    "Register a version as challenger with `bankmarketing deploy --role challenger` (or Mage `deploy` "
    "with the variable `role=challenger`) and run the predictor with `PREDICTOR_CHALLENGER_MODE=shadow` "
    "(the challenger scores every customer beside production, production answers) or `split` (the "
    "challenger answers for `PREDICTOR_CHALLENGER_SHARE` of the customers)."
)
NO_COMPARISONS = (
    "No comparison stored yet. `monitor` (Mage pipeline, `make monitor`) compares the two versions per "
    "period on the same customers once the outcomes of the logged predictions are loaded "
    "(`make outcomes FILE=outcomes.csv` or `POST /outcomes`)."
)


def _number(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None or math.isnan(value) else format(value, spec)


def _mode(info: dict) -> str:
    if info["mode"] == "split" and info.get("share") is not None:
        return f"split ({info['share']:.0%} challenger)"
    return info["mode"]


def challenger_setup(info: dict) -> None:
    """Mode, versions, and what is missing for a comparison."""
    rival = info.get("challenger")
    production = info.get("production_version")
    columns = st.columns(3)
    columns[0].metric(
        "Mode",
        _mode(info),
        help="off: no challenger; shadow: scored beside production, production answers; "
        "split: the challenger answers for a share of the customers",
    )
    columns[1].metric("Production", f"v{production}" if production else "–")
    columns[2].metric("Challenger", f"v{rival['version']}" if rival else "–", help=f"alias `{info['alias']}`")
    if info["mode"] == "off":
        st.info("The predictor scores no challenger. " + CHALLENGER_SETUP)
    elif rival is None:
        missing = f"Mode {info['mode']}, but no version has the alias `{info['alias']}` yet. "
        st.info(missing + CHALLENGER_SETUP)
    elif not rival["scoring"]:
        st.info(f"The challenger v{rival['version']} is the production version: nothing to compare.")
    else:
        st.caption(
            f"Challenger v{rival['version']} (alias `{info['alias']}`, threshold {rival['threshold']:.3f}) "
            f"loaded {rival['loaded_at']} from {rival['source']}."
        )
    if info.get("registry_error"):
        st.warning(f"The predictor cannot read the challenger alias: {info['registry_error']}")


def _auc_per_period(comparisons: pd.DataFrame) -> pd.DataFrame:
    """One row per period and version: `version` is e.g. "production v3", `roc_auc` its ROC AUC."""
    sides = [
        pd.DataFrame(
            {
                "period_start": pd.to_datetime(comparisons["period_start"], utc=True),
                "period": comparisons["period"],
                "version": side + " v" + comparisons[f"{side}_version"].astype(str),
                "roc_auc": comparisons[f"{side}_roc_auc"],
                "p_value": comparisons["p_value"],
                "verdict": comparisons["verdict"],
            }
        )
        for side in ("production", "challenger")
    ]
    return pd.concat(sides, ignore_index=True).dropna(subset=["roc_auc"])


def comparisons_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The stored comparisons as shown: newest period first, readable column names."""
    interval = [
        "–" if pd.isna(low) else f"[{low:+.3f}, {high:+.3f}]"
        for low, high in zip(comparisons["ci_low"], comparisons["ci_high"], strict=True)
    ]
    return pd.DataFrame(
        {
            "period": comparisons["period"],
            "source": comparisons["source"],
            "production": comparisons["production_version"],
            "challenger": comparisons["challenger_version"],
            "labelled rows": comparisons["labelled_rows"],
            "ROC AUC difference": comparisons["roc_auc_difference"],
            "95 % interval": interval,
            "p-value": comparisons["p_value"],
            "p-value (Holm)": comparisons["p_adjusted"],
            "PR AUC lift": comparisons["pr_auc_lift"],
            "challenger served share": comparisons["challenger_served_share"],
            "verdict": comparisons["verdict"],
        }
    )


def challenger_page(client: PredictorClient) -> None:
    st.header("Challenger vs production")
    info = answer_of(client.challenger)
    if info is None:
        return
    challenger_setup(info)
    if info.get("comparisons_error"):
        st.warning(info["comparisons_error"])
    stored = info.get("comparisons") or []  # newest period first
    if not stored:
        if not info.get("comparisons_error"):
            st.info(NO_COMPARISONS)
        return
    newest, comparisons = stored[0], pd.DataFrame(stored)
    st.subheader(f"Newest period: {newest['period']}")
    columns = st.columns(3)
    for column, side in zip(columns, ("production", "challenger"), strict=False):
        column.metric(
            f"{side.capitalize()} v{newest[f'{side}_version']} ROC AUC", _number(newest[f"{side}_roc_auc"])
        )
    columns[2].metric(
        "Difference (challenger − production)",
        _number(newest["roc_auc_difference"], "+.3f"),
        delta=f"p = {_number(newest['p_value'], '.3f')}, Holm {_number(newest.get('p_adjusted'), '.3f')}",
        delta_color="off",
        help="DeLong's test on the same customers; Holm's adjustment over the periods compared for "
        "this pair: an adjusted p < 0.05 means the difference is significant",
    )
    st.markdown(
        f"**{newest['verdict']}** · 95 % interval of the difference "
        f"[{_number(newest['ci_low'], '+.3f')}, {_number(newest['ci_high'], '+.3f')}] · "
        f"{newest['labelled_rows']:,} labelled customers, {newest['positives']:,} subscribers "
        f"({newest['source']})"
    )
    auc = _auc_per_period(comparisons)
    if not auc.empty:
        st.altair_chart(
            alt.Chart(auc)
            .mark_line(point=True)
            .encode(
                x=alt.X("period_start:T", title="period start"),
                y=alt.Y("roc_auc:Q", title="ROC AUC", scale=alt.Scale(zero=False)),
                color=alt.Color("version:N", title=None),
                tooltip=[
                    "period",
                    "version",
                    alt.Tooltip("roc_auc:Q", format=".3f"),
                    alt.Tooltip("p_value:Q", format=".3f", title="p-value"),
                    "verdict",
                ],
            )
            .properties(title="ROC AUC per period (same customers)"),
            width="stretch",
        )
    st.dataframe(
        comparisons_table(comparisons),
        hide_index=True,
        column_config={
            "ROC AUC difference": st.column_config.NumberColumn(format="%+.4f"),
            "p-value": st.column_config.NumberColumn(format="%.4f"),
            "PR AUC lift": st.column_config.NumberColumn(format="percent"),
            "challenger served share": st.column_config.NumberColumn(format="percent"),
        },
    )
