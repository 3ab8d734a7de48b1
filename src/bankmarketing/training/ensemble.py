"""A soft-voting ensemble candidate: the weighted mean of its members' probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from bankmarketing.training.candidates import CANDIDATES, Candidate, StratifiedSubsampleClassifier

ENSEMBLE = "soft_voting"
#: The candidate kinds that can be members: those with `predict_proba` (SVC is trained with
#: probability=False).
MEMBER_KINDS = tuple(name for name in CANDIDATES if name != "svc")


def soft_vote(probabilities: Sequence[np.ndarray], weights: Sequence[float] | None) -> np.ndarray:
    """The weighted mean of the members' probabilities of the positive class, shape (n,).
    The compiled scorer calls it too, so both add up in the same order."""
    return np.average(np.stack(probabilities), axis=0, weights=weights)


def _has_predict_proba(estimator: Any) -> bool:
    if isinstance(estimator, StratifiedSubsampleClassifier):  # delegates to its estimator
        estimator = estimator.estimator
    return hasattr(estimator, "predict_proba")


class SoftVotingClassifier(ClassifierMixin, BaseEstimator):
    """Binary soft voting: the weighted mean of the members' `predict_proba`.

    `estimators`: (name, unfitted classifier) pairs, each with `predict_proba`; `weights`: one
    per member, None for equal. No `decision_function`, so `CalibratedClassifierCV` calibrates
    the mean probability.
    """

    def __init__(self, estimators=None, weights=None):
        self.estimators = estimators
        self.weights = weights

    def fit(self, X, y):
        if not self.estimators:
            raise ValueError("soft voting needs at least one (name, estimator) member")
        for name, estimator in self.estimators:
            if not _has_predict_proba(estimator):
                raise ValueError(
                    f"soft voting member {name!r} ({type(estimator).__name__}) has no predict_proba"
                )
        if self.weights is not None and len(self.weights) != len(self.estimators):
            raise ValueError(f"{len(self.weights)} weights for {len(self.estimators)} members")
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError(f"soft voting is binary, got classes {self.classes_}")
        self.estimators_ = [clone(estimator).fit(X, y) for _, estimator in self.estimators]
        self.named_estimators_ = {
            name: fitted for (name, _), fitted in zip(self.estimators, self.estimators_, strict=True)
        }
        return self

    def predict_proba(self, X):
        """[1 - p, p], p the weighted mean of the members' `predict_proba(X)[:, 1]`."""
        p = soft_vote([member.predict_proba(X)[:, 1] for member in self.estimators_], self.weights)
        return np.column_stack([1.0 - p, p])

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]


def _make(params: dict[str, Any], seed: int) -> SoftVotingClassifier:
    members = params["members"]
    unknown = sorted(set(members) - set(CANDIDATES))
    if unknown:
        raise ValueError(f"unknown soft voting member kinds {unknown}; members are among {MEMBER_KINDS}")
    return SoftVotingClassifier([(name, CANDIDATES[name].make(p, seed)) for name, p in members.items()])


def _not_searched(trial: Any, ratio: float) -> dict[str, Any]:
    raise NotImplementedError(
        f"{ENSEMBLE} is not searched: it is built from its members' searched parameters, "
        '{"members": {kind: params, ...}}'
    )


def soft_voting_candidate() -> Candidate:
    """The ensemble as a candidate; params {"members": {kind: that kind's params, ...}} (kinds
    from `MEMBER_KINDS`). Numeric columns scaled: the linear and MLP members need it, and the
    trees split the same on a monotone rescaling."""
    return Candidate(ENSEMBLE, True, _not_searched, _make)
