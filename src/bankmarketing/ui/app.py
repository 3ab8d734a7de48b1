"""Streamlit entry of the predictor tester: `streamlit run src/bankmarketing/ui/app.py`.

Talks to the predictor API at PREDICTOR_URL (default http://127.0.0.1:9696); never loads a model.
"""

from __future__ import annotations

import streamlit as st

from bankmarketing.ui.client import PredictorClient
from bankmarketing.ui.views import (
    PAGES,
    challenger_page,
    explanation_page,
    model_sidebar,
    plan_campaign_page,
    score_customer_page,
    score_file_page,
)


def main() -> None:
    st.set_page_config(page_title="Term-deposit predictor", page_icon="📞", layout="wide")
    client = PredictorClient()  # PREDICTOR_URL, read on every run
    st.sidebar.title("Term-deposit predictor")
    page = st.sidebar.radio("Page", PAGES, key="page")
    model_sidebar(client)
    pages = dict(
        zip(
            PAGES,
            (score_customer_page, score_file_page, plan_campaign_page, explanation_page, challenger_page),
            strict=True,
        )
    )
    pages[page](client)


if __name__ == "__main__":
    main()
