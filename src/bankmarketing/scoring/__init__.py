"""One scorer for raw customer records, shared by the predictor, batch scoring and the UI.

A saved pipeline (the features ColumnTransformer, then CalibratedClassifierCV around any kind
`train` registers) compiles to numpy: records -> model matrix (`layout`), then the classifier
as functions of that matrix (`classifiers`: tree ensembles walked as flat arrays by `trees`,
linear algebra for the others), checked against the pipeline before use. Explanations: exact
contributions where the kind has them (linear terms, TreeSHAP), else permutation Shapley values
(`shapley`). Anything not compiled falls back to `pipeline.predict_proba`.
"""

from bankmarketing.scoring.errors import ExplanationUnavailable, Unsupported
from bankmarketing.scoring.scorer import BACKGROUND_ATTRIBUTE, Scorer, single_row_ms

__all__ = ["BACKGROUND_ATTRIBUTE", "ExplanationUnavailable", "Scorer", "Unsupported", "single_row_ms"]
