"""The Streamlit tester (AppTest) against a real predictor over HTTP.

AppTest (1.51) cannot drive st.file_uploader, so the file pages are run from the page code that
follows an upload (`score_csv`, `show_scored`) and the planning page from a scored file in session state.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest
from werkzeug.serving import make_server

from bankmarketing.challenger import compare_versions
from bankmarketing.data.schema import CATEGORIES, FEATURES, RANGES
from bankmarketing.database import engine_for, monitoring_challenger
from bankmarketing.targeting import plan_campaign
from bankmarketing.ui import views
from bankmarketing.ui.client import PredictorClient
from bankmarketing.ui.customers import DEFAULT_CUSTOMER, scored_frame
from tests.conftest import migrated, set_challenger
from tests.ui.conftest import customer

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[2] / "src/bankmarketing/ui/app.py"


def app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=30)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error] + [e.value for e in at.sidebar.error]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_form_offers_exactly_the_contract(down_url):
    at = app().run()
    assert not at.exception
    for name in FEATURES:
        if name in CATEGORIES:
            box = at.selectbox(key=f"field.{name}")
            assert box.options == list(CATEGORIES[name]) and box.value == DEFAULT_CUSTOMER[name]
        else:
            number = at.number_input(key=f"field.{name}")
            assert (number.min, number.max, number.value) == (*RANGES[name], DEFAULT_CUSTOMER[name])
            assert isinstance(number.value, int)
    assert len(at.selectbox) + len(at.number_input) == len(FEATURES) == 15
    # no served version to ask: the form does not default to a request nobody can answer
    assert at.checkbox(key="explain").value is False and at.checkbox(key="explain").disabled


def test_default_form_is_scored_by_the_running_predictor(predictor_url, served):
    settings, versions, _ = served
    at = app().run()
    assert not errors(at) and f"version **{versions['production']}**" in at.sidebar.success[0].value
    assert at.checkbox(key="explain").value is True  # the served version explains: on by default
    at.button[0].click().run()
    assert not at.exception and not errors(at)
    direct = requests.post(
        f"{predictor_url}/predict", json={"customer": DEFAULT_CUSTOMER, "explain": True}, timeout=10
    ).json()
    shown = metrics(at)
    assert shown["Probability of subscribing"] == f"{direct['probability']:.1%}"
    assert shown["Decision"] == direct["decision"]
    assert shown["Model"] == f"{settings.model_name} v{direct['model_version']}" and direct["model_version"]
    (chart,) = at.get("arrow_vega_lite_chart")  # the explanation
    assert "contribution (log-odds)" in chart.proto.spec
    # another customer: the form's values are what is sent
    at.selectbox(key="field.poutcome").set_value("success")
    at.number_input(key="field.age").set_value(67)
    at.checkbox(key="explain").uncheck()
    at.button[0].click().run()
    other = requests.post(
        f"{predictor_url}/predict",
        json={"customer": DEFAULT_CUSTOMER | {"poutcome": "success", "age": 67}},
        timeout=10,
    ).json()
    assert metrics(at)["Probability of subscribing"] == f"{other['probability']:.1%}"
    assert not at.get("arrow_vega_lite_chart")


def test_api_down_is_a_clear_error_on_every_page(down_url):
    at = app().run()
    for page in views.PAGES:
        at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception
        assert any(down_url in e and "not reachable" in e for e in errors(at)), page
    at.sidebar.radio(key="page").set_value(views.PAGES[0]).run()
    at.button[0].click().run()
    assert not at.exception and any(down_url in e for e in [e.value for e in at.error])


def _file_page(data: bytes, name: str):
    from bankmarketing.ui.client import PredictorClient
    from bankmarketing.ui.views import score_csv, show_scored

    score_csv(data, name, PredictorClient())
    show_scored()


def _csv(test, rows: int) -> pd.DataFrame:
    frame = test.head(rows).reset_index(drop=True)
    frame.insert(0, "customer_id", [f"c{i}" for i in range(rows)])
    return frame


def test_file_page_scores_in_chunks_and_keeps_extra_columns(predictor_url, served):
    _, versions, test = served
    frame = _csv(test, 150)  # more than the predictor's 100 a call; has duration and y too
    assert {"duration", "y"} <= set(frame.columns)
    at = AppTest.from_function(
        _file_page, args=(frame.to_csv(index=False).encode(), "sample.csv"), default_timeout=30
    )
    at.run()
    assert not at.exception and not at.error
    assert at.success[0].value.startswith(
        f"Scored 150 customers from sample.csv with model version {versions['production']}"
    )
    shown = at.dataframe[0].value
    expected = PredictorClient(predictor_url).predict_batch(
        [customer(test, i) for i in range(150)], chunk=100
    )
    assert shown["probability"].tolist() == [p["probability"] for p in expected["predictions"]]
    assert shown["customer_id"].tolist() == frame["customer_id"].tolist()
    assert list(shown.columns[:4]) == ["rank", "probability", "decision", "model_version"]
    assert {"customer_id", "duration", "y"} <= set(shown.columns) and sorted(shown["rank"]) == list(
        range(1, 151)
    )
    assert set(shown["model_version"]) == {versions["production"]}
    scored = at.session_state[views.SCORED]
    assert len(scored) == 150 and at.session_state[views.SCORED_NAME] == "sample.csv"


@pytest.mark.parametrize(
    ("change", "message"),
    ids=["out of range (API)", "unknown category (API)", "not a number", "missing columns", "no rows"],
    argvalues=[
        (
            lambda f: f.assign(age=f["age"].mask(f.index == 129, 7)),
            "row 130 (line 131 of the file), age: Input should be greater than or equal to 18",
        ),
        (lambda f: f.assign(job=f["job"].mask(f.index == 3, "astronaut")), "row 4 (line 5 of the file), job"),
        (
            lambda f: f.astype({"balance": str}).assign(
                balance=lambda g: g["balance"].mask(g.index == 1, "1k")
            ),
            "row 2 (line 3 of the file), balance: '1k' is not a whole number",
        ),
        (lambda f: f.drop(columns=["pdays", "month"]), "Missing column(s): month, pdays"),
        (lambda f: f.head(0), "The file has a header but no rows"),
    ],
)
def test_file_page_names_the_bad_row_and_field(predictor_url, served, change, message):
    data = change(_csv(served[2], 150)).to_csv(index=False).encode()
    at = AppTest.from_function(_file_page, args=(data, "bad.csv"), default_timeout=30).run()
    assert not at.exception and not at.dataframe and not at.success
    assert len(at.error) == 1 and message in at.error[0].value, at.error[0].value
    assert "Traceback" not in at.error[0].value


def test_file_page_with_the_api_down(down_url, served):
    data = _csv(served[2], 5).to_csv(index=False).encode()
    at = AppTest.from_function(_file_page, args=(data, "x.csv"), default_timeout=30).run()
    assert not at.exception and down_url in at.error[0].value


def test_file_page_has_an_uploader(down_url):
    at = app()
    at.session_state["page"] = views.PAGES[1]
    at.run()
    assert not at.exception and [e.type for e in at.get("file_uploader")] == ["file_uploader"]


def test_campaign_page_shows_targeting_numbers_for_the_scored_file(predictor_url, served):
    _, _, test = served
    frame = _csv(test, 300)
    answer = PredictorClient(predictor_url).predict_batch([customer(test, i) for i in range(300)], chunk=100)
    scored = scored_frame(frame, answer)
    at = app()
    at.session_state[views.SCORED] = scored
    at.session_state[views.SCORED_NAME] = "scored.csv"
    at.session_state["page"] = views.PAGES[2]
    at.run()
    assert not at.exception and not at.error
    assert at.radio(key="campaign_source").value == "Last scored file (scored.csv)"
    at.number_input(key="max_calls").set_value(40)
    at.number_input(key="cost_per_call").set_value(2.0)
    at.number_input(key="value_per_subscription").set_value(30.0)
    at.checkbox(key="stop_when_unprofitable").uncheck()
    at.run()
    plan = plan_campaign(scored, max_calls=40, cost_per_call=2.0, value_per_subscription=30.0)
    s = plan.summary
    assert metrics(at) == {
        "Calls": "40",
        "Expected subscriptions": f"{s['expected_subscriptions']:,.1f}",
        "Expected profit": f"{s['expected_profit']:,.0f}",
        "Lift over random": f"{s['lift']:.2f}×",
    }
    assert s["lift"] > 1
    pd.testing.assert_frame_equal(
        at.dataframe[0].value.reset_index(drop=True), plan.call_list.reset_index(drop=True), check_dtype=False
    )
    (chart,) = at.get("arrow_vega_lite_chart")
    assert "Cumulative gains" in chart.proto.spec

    at.radio(key="budget_mode").set_value("Money").run()
    at.number_input(key="budget").set_value(100.0)
    at.checkbox(key="stop_when_unprofitable").check()
    at.run()
    money = plan_campaign(
        scored, budget=100.0, cost_per_call=2.0, value_per_subscription=30.0, stop_when_unprofitable=True
    ).summary
    assert metrics(at)["Calls"] == f"{money['calls']:,}" and money["calls"] <= 50
    assert metrics(at)["Expected profit"] == f"{money['expected_profit']:,.0f}"

    at.number_input(key="cost_per_call").set_value(0.0).run()
    assert not at.exception and "cost_per_call must be > 0 when the budget is money" in at.error[0].value


def test_explanation_page_shows_the_served_versions_global_explanation(predictor_url, served):
    _, versions, _ = served
    at = app()
    at.session_state["page"] = views.PAGES[3]
    at.run()
    assert not at.exception and not errors(at)
    assert f"v{versions['production']} (" in at.caption[0].value and "test customers" in at.caption[0].value
    assert [h.value for h in at.subheader] == ["age", "balance", "poutcome"]
    assert len(at.get("arrow_vega_lite_chart")) == 4  # importance + three dependence charts


CHALLENGER_PAGE = "Challenger vs production"


def test_challenger_page_shows_the_mode_and_how_to_set_a_challenger_up(predictor_url, served):
    _, versions, _ = served
    at = app().run()
    at.sidebar.radio(key="page").set_value(CHALLENGER_PAGE).run()
    assert not at.exception and not errors(at)
    assert at.header[0].value == CHALLENGER_PAGE
    shown = metrics(at)
    assert shown["Mode"] == "off" and shown["Production"] == f"v{versions['production']}"
    assert shown["Challenger"] == "–"
    setup = at.info[0].value
    assert "no challenger" in setup and "deploy --role challenger" in setup
    assert "PREDICTOR_CHALLENGER_MODE=shadow" in setup


@pytest.fixture
def challenger_predictor(app_factory, served, tmp_path, monkeypatch):
    """A predictor in split mode (25 %) with the registry's other version as challenger, its platform
    database a fresh SQLite file; PREDICTOR_URL points at it. Yields (url, database URL)."""
    set_challenger(served)
    database = migrated(f"sqlite:///{tmp_path / 'platform.db'}")
    app = app_factory(settings={"database_url": database}, challenger_mode="split", challenger_share=0.25)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("PREDICTOR_URL", url)
    yield url, database
    server.shutdown()
    thread.join(10)
    server.server_close()


def _store_comparisons(database: str, model_name: str, production: str, challenger: str) -> None:
    """What `monitor` writes for three log periods (the oldest with subscribers only)."""
    rng = np.random.default_rng(7)
    rows = []
    unmeasured = {c.name: None for c in monitoring_challenger.columns if c.name != "id"}  # one-class periods
    for month, (size, positives) in enumerate([(300, 300), (400, 60), (500, 80)], start=6):
        y = np.r_[np.ones(positives), np.zeros(size - positives)]
        production_scores = np.clip(0.3 * y + rng.normal(0.3, 0.2, size), 0, 1)
        challenger_scores = np.clip(0.4 * y + rng.normal(0.3, 0.2, size), 0, 1)
        start = dt.datetime(2025, month, 1, tzinfo=dt.UTC)
        rows.append(
            unmeasured
            | {
                "model_name": model_name,
                "production_version": int(production),
                "challenger_version": int(challenger),
                "period": start.strftime("%Y-%m"),
                "period_start": start,
                "period_end": start.replace(month=month + 1),
                "computed_at": dt.datetime.now(dt.UTC),
                "source": "log",
                "scored_rows": size,
                "challenger_served_share": 0.25,
                **compare_versions(y, production_scores, challenger_scores, 0.5, 0.5),
            }
        )
    with engine_for(database).begin() as connection:
        connection.execute(sa.insert(monitoring_challenger), rows)


def test_challenger_page_shows_the_stored_comparisons(challenger_predictor, served):
    url, database = challenger_predictor
    settings, versions, _ = served
    production, challenger = versions["production"], versions["other"]
    at = app()
    at.session_state["page"] = CHALLENGER_PAGE
    at.run()
    assert not at.exception and not errors(at)
    assert metrics(at) == {
        "Mode": "split (25% challenger)",
        "Production": f"v{production}",
        "Challenger": f"v{challenger}",
    }
    assert f"Challenger v{challenger}" in at.caption[0].value
    assert "make outcomes FILE=" in at.info[0].value and not at.get("arrow_vega_lite_chart")

    _store_comparisons(database, settings.model_name, production, challenger)
    at.run()
    assert not at.exception and not errors(at) and not at.info
    stored = requests.get(f"{url}/challenger", timeout=10).json()["comparisons"]
    assert [c["period"] for c in stored] == ["2025-08", "2025-07", "2025-06"]
    newest = stored[0]
    shown = metrics(at)
    assert shown[f"Production v{production} ROC AUC"] == f"{newest['production_roc_auc']:.3f}"
    assert shown[f"Challenger v{challenger} ROC AUC"] == f"{newest['challenger_roc_auc']:.3f}"
    assert shown["Difference (challenger − production)"] == f"{newest['roc_auc_difference']:+.3f}"
    assert newest["verdict"] in at.markdown[0].value
    (chart,) = at.get("arrow_vega_lite_chart")
    assert "ROC AUC per period" in chart.proto.spec
    table = at.dataframe[0].value
    assert table["period"].tolist() == ["2025-08", "2025-07", "2025-06"]
    assert table["verdict"].tolist() == [c["verdict"] for c in stored]
    assert table["verdict"].iloc[-1].startswith("not comparable") and table["95 % interval"].iloc[-1] == "–"
    assert table["p-value"].tolist()[:2] == [c["p_value"] for c in stored[:2]]
    assert table["p-value (Holm)"].tolist()[:2] == [c["p_adjusted"] for c in stored[:2]]
