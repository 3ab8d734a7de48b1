"""Streamlit tester of the predictor API: `streamlit run src/bankmarketing/ui/app.py`."""
