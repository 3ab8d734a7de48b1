"""The predictor: request schemas, model holder (hot swap), prediction log, Flask app."""
