"""Tree ensembles as flat arrays, walked for every tree at once, one level per step.

One engine for the three tree kinds `train` can register, each op for op as its library:

- XGBoost: float32 features and sums in tree order, a row goes right when x >= the split
  condition, the logistic step through the C library's `expf` (bit for bit the booster);
- hist. gradient boosting: float64 features, right when x > the threshold, the baseline plus the
  leaves summed in iteration order (bit for bit `decision_function`);
- random forest: features rounded to float32 and compared in float64, right when x > the
  threshold, the trees' leaf fractions summed and divided by their count (scikit-learn sums them
  from two threads in varying order, so equal up to that order, ~1e-16).

A missing value goes the node's default way. Exact TreeSHAP contributions come from XGBoost's
own implementation: a scikit-learn ensemble is written out as an XGBoost model for that
(`shap_booster`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xgboost

from bankmarketing.scoring.errors import require


@dataclass(frozen=True)
class Tree:
    """One tree's nodes; a leaf has `left == -1`."""

    feature: np.ndarray  # the column a split reads
    threshold: np.ndarray  # the split condition
    default_right: np.ndarray  # missing values go right
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray  # the leaf value
    cover: np.ndarray  # training weight through the node (TreeSHAP's path weights)

    @property
    def depth(self) -> int:
        levels, frontier = 0, [0]
        while frontier := [c for n in frontier if self.left[n] != -1 for c in (self.left[n], self.right[n])]:
            levels += 1
        return levels


def hist_gradient_boosting_trees(model) -> list[Tree]:
    """The trees of a fitted binary `HistGradientBoostingClassifier`, in iteration order."""
    require(model.n_trees_per_iteration_ == 1, "hist. gradient boosting with several trees per iteration")
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        require(not nodes["is_categorical"].any(), "categorical splits")
        leaf = nodes["is_leaf"].astype(bool)
        trees.append(
            Tree(
                feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp),
                threshold=np.where(leaf, 0.0, nodes["num_threshold"]),
                default_right=~nodes["missing_go_to_left"].astype(bool) & ~leaf,
                left=np.where(leaf, -1, nodes["left"].astype(np.intp)),
                right=np.where(leaf, -1, nodes["right"].astype(np.intp)),
                value=np.where(leaf, nodes["value"], 0.0),
                cover=nodes["count"].astype(np.float64),
            )
        )
    return trees


def random_forest_trees(model) -> list[Tree]:
    """The trees of a fitted binary `RandomForestClassifier`: each leaf's share of class 1."""
    require(model.n_outputs_ == 1 and list(model.classes_) == [0, 1], "random forest setup")
    trees = []
    for estimator in model.estimators_:
        tree = estimator.tree_
        leaf = tree.children_left == -1
        fractions = tree.value[:, 0, :]  # class fractions per node (scikit-learn >= 1.4)
        trees.append(
            Tree(
                feature=np.where(leaf, 0, tree.feature).astype(np.intp),
                threshold=np.where(leaf, 0.0, tree.threshold),
                default_right=~tree.missing_go_to_left.astype(bool) & ~leaf,
                left=tree.children_left.astype(np.intp),
                right=tree.children_right.astype(np.intp),
                value=np.where(leaf, fractions[:, 1], 0.0),
                cover=tree.weighted_n_node_samples.astype(np.float64),
            )
        )
    return trees


def xgboost_trees(document: dict, iterations: tuple[int, int]) -> list[Tree]:
    """The trees of a binary:logistic booster's JSON document, in the iterations' range."""
    learner = document["learner"]
    gbtree = learner["gradient_booster"]
    require(gbtree.get("name") == "gbtree", f"booster {gbtree.get('name')}")
    require(learner["objective"]["name"] == "binary:logistic", "objective")
    require(int(learner["learner_model_param"].get("num_target", "1")) == 1, "several targets")
    model = gbtree["model"]
    require(all(t == 0 for t in model["tree_info"]), "several output groups")
    indptr = model.get("iteration_indptr") or list(range(len(model["trees"]) + 1))
    first, last = iterations
    last = len(indptr) - 1 if last == 0 else last
    trees = []
    for tree in model["trees"][indptr[first] : indptr[last]]:
        require(not any(tree["split_type"]) and not tree["categories"], "categorical splits")
        require(int(tree["tree_param"].get("size_leaf_vector", "1")) <= 1, "vector leaves")
        left = np.array(tree["left_children"], np.intp)
        leaf = left == -1
        condition = np.array(tree["split_conditions"], np.float64).astype(np.float32)
        trees.append(
            Tree(
                feature=np.where(leaf, 0, tree["split_indices"]).astype(np.intp),
                threshold=np.where(leaf, np.float32(0), condition),
                default_right=~np.array(tree["default_left"], bool) & ~leaf,
                left=left,
                right=np.array(tree["right_children"], np.intp),
                value=np.where(leaf, condition, np.float32(0)),
                cover=np.array(tree["sum_hessian"], np.float64),
            )
        )
    return trees


@dataclass(frozen=True)
class Forest:
    """Trees as flat arrays, walked for every tree at once, one level per step.

    States are 2 x node index, so `child[state + goes_right]` is the next state; leaves point to
    themselves, so every tree can take `depth` steps. The base value is a one-leaf tree in front
    of the others, so sums run in the library's order.
    """

    roots: np.ndarray  # the state of each tree's root, the base value's first
    feature: np.ndarray  # by state: the column a split reads (0 at leaves)
    threshold: np.ndarray  # by state: the split condition
    default_right: np.ndarray  # by state: missing values go right
    child: np.ndarray  # by state + goes_right: the next state
    leaf: np.ndarray  # by state: the leaf value (0 at splits)
    depth: int
    width: int
    read_as: type  # the features' type when read (float32: XGBoost, random forest)
    right_on_equal: bool  # XGBoost: x >= condition goes right; scikit-learn: x > threshold
    divisor: int = 1  # the sum is divided by it (a forest's mean)
    missing: float = math.nan  # a value read as missing besides NaN (XGBoost's `missing`)

    @classmethod
    def build(cls, trees: list[Tree], base: float, width: int, dtype: type, **rule) -> Forest:
        """Flatten `trees` (thresholds and sums in `dtype`) behind the base value."""
        sizes = [1] + [len(t.left) for t in trees]
        starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.intp)])
        nodes = int(starts[-1])
        feature = np.zeros(2 * nodes, np.intp)
        threshold = np.zeros(2 * nodes, dtype)
        default_right = np.zeros(2 * nodes, bool)
        child = np.zeros(2 * nodes, np.intp)
        leaf = np.zeros(2 * nodes, dtype)
        leaf[0] = base  # a leaf pointing to itself (child is 0), first in every sum
        for tree, start in zip(trees, starts[1:-1], strict=True):
            index = np.arange(len(tree.left))
            is_leaf = tree.left == -1
            state = 2 * (start + index)
            feature[state] = tree.feature
            threshold[state] = tree.threshold
            default_right[state] = tree.default_right
            leaf[state] = tree.value
            child[state] = 2 * (start + np.where(is_leaf, index, tree.left))
            child[state + 1] = 2 * (start + np.where(is_leaf, index, tree.right))
        return cls(
            roots=2 * starts[:-1],
            feature=feature,
            threshold=threshold,
            default_right=default_right,
            child=child,
            leaf=leaf,
            depth=max((t.depth for t in trees), default=0),
            width=width,
            **rule,
        )

    @property
    def trees(self) -> int:
        return len(self.roots) - 1

    @property
    def visits_per_row(self) -> int:
        return len(self.roots) * max(self.depth, 1)

    def margin(self, X: np.ndarray) -> np.ndarray:
        """The ensemble's summed output (over `divisor`), shape (n,)."""
        X = np.asarray(X, self.read_as).astype(self.threshold.dtype, copy=False)
        if not math.isnan(self.missing):
            X = np.where(X == self.missing, np.nan, X)
        rows, width = X.shape
        flat, trees = X.reshape(-1), len(self.roots)
        state = self.roots if rows == 1 else np.tile(self.roots, rows)
        offsets = None if rows == 1 else np.repeat(np.arange(0, rows * width, width), trees)
        has_missing = bool(np.isnan(flat).any())
        goes_right = np.greater_equal if self.right_on_equal else np.greater
        for _ in range(self.depth):
            columns = self.feature.take(state)
            if offsets is not None:
                columns += offsets
            values = flat.take(columns)
            right = goes_right(values, self.threshold.take(state))
            if has_missing:
                right |= np.isnan(values) & self.default_right.take(state)
            state = self.child.take(state + right)
        leaves = self.leaf.take(state)  # sequential sums, as the library adds:
        total = np.cumsum(leaves)[-1:] if rows == 1 else np.cumsum(leaves.reshape(rows, trees), axis=1)[:, -1]
        return total / self.divisor if self.divisor != 1 else total

    def verify(
        self,
        reference: Callable[[np.ndarray], np.ndarray],
        tolerance: float = 0.0,
        output: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """`output` (default: `margin`) against the library's on rows at, just below and just
        above every split condition, with missing values, one row and all at once: equal, or
        within `tolerance`."""
        output = output or self.margin
        rng = np.random.default_rng(0)
        states = np.arange(0, len(self.feature), 2)
        splits = states[self.child[states] != states]
        candidates = [[0.0] for _ in range(self.width)]
        for column, condition in zip(self.feature[splits], self.threshold[splits], strict=True):
            below, above = np.nextafter(condition, -np.inf), np.nextafter(condition, np.inf)
            candidates[column] += [condition, below, above]
        probe = np.column_stack(
            [np.array(values, np.float64)[rng.integers(len(values), size=512)] for values in candidates]
        )
        probe[rng.random(probe.shape) < 0.05] = np.nan
        if not math.isnan(self.missing):
            probe[rng.random(probe.shape) < 0.05] = self.missing
        for rows in (probe[:1], probe):
            difference = np.max(np.abs(np.asarray(output(rows), np.float64) - reference(rows)))
            require(difference <= tolerance, f"tree walk differs from the library by {difference:.3g}")


@functools.cache
def _expf() -> Callable[[float], float]:
    """The C library's `expf`, which XGBoost's logistic transform calls (numpy's float32 exp
    rounds differently in ~15 % of cases)."""
    for library in (None, ctypes.util.find_library("m")):
        try:
            function = ctypes.CDLL(library).expf
        except (OSError, AttributeError, TypeError):
            continue
        function.restype, function.argtypes = ctypes.c_float, (ctypes.c_float,)
        return function
    require(False, "no C library expf")


def xgboost_sigmoid(margin: np.ndarray) -> np.ndarray:
    """`xgboost::common::Sigmoid` in float32: 1 / (expf(min(-x, 88.7)) + 1 + 1e-16)."""
    one, eps, cap = np.float32(1.0), np.float32(1e-16), np.float32(88.7)
    if len(margin) == 1:  # numpy float32 scalars: the same float32 operations, fewer calls
        e = np.float32(_expf()(float(min(-margin[0], cap))))  # min() is std::min: NaN stays
        return np.array([one / (e + one + eps)], np.float32)
    exponent = np.minimum(-margin, cap)
    e = np.fromiter(map(_expf(), exponent.tolist()), np.float32, len(exponent))
    return one / (e + one + eps)


def xgboost_forest(booster: xgboost.Booster, iterations: tuple[int, int], missing: float) -> Forest:
    """The booster's trees, checked bit for bit against it (margins and probabilities)."""
    document = json.loads(booster.save_raw("json"))
    width = int(document["learner"]["learner_model_param"]["num_feature"])
    zeroed = _zero_leaves(document)  # base_score through the objective's link, exactly:
    base = zeroed.inplace_predict(np.zeros((1, width)), iteration_range=(0, 1), predict_type="margin")[0]
    forest = Forest.build(
        xgboost_trees(document, iterations),
        base,
        width,
        np.float32,
        read_as=np.float32,
        right_on_equal=True,
        missing=float(missing),
    )

    def booster_says(kind: str) -> Callable[[np.ndarray], np.ndarray]:
        return lambda X: booster.inplace_predict(
            X, iteration_range=iterations, predict_type=kind, missing=missing
        )

    forest.verify(booster_says("margin"))
    forest.verify(booster_says("value"), output=lambda X: xgboost_sigmoid(forest.margin(X)))
    margins = np.concatenate(
        [
            np.linspace(-100, 100, 4001),
            np.random.default_rng(0).normal(0, 4, 4000),
            [0, -0.0, 88.7, -88.7, 89, -89],
        ]
    ).astype(np.float32)
    expected = zeroed.inplace_predict(
        np.zeros((len(margins), width)), base_margin=margins, iteration_range=(0, 1)
    )
    require(np.array_equal(xgboost_sigmoid(margins), expected), "expf differs from XGBoost's")
    return forest


def _zero_leaves(document: dict) -> xgboost.Booster:
    """The booster with every leaf 0: its margin is the base margin, or the base_margin given."""
    zeroed = json.loads(json.dumps(document))
    for tree in zeroed["learner"]["gradient_booster"]["model"]["trees"]:
        tree["split_conditions"] = [
            0.0 if left == -1 else condition
            for left, condition in zip(tree["left_children"], tree["split_conditions"], strict=True)
        ]
        tree["base_weights"] = [0.0] * len(tree["base_weights"])
    return xgboost.Booster(model_file=bytearray(json.dumps(zeroed).encode()))


def _siblings_adjacent(tree: Tree) -> Tree:
    """The tree renumbered breadth first, each right child right after its left sibling (XGBoost's
    predictor finds the right child as left + 1)."""
    order, position = [0], 0
    while position < len(order):
        node = order[position]
        if tree.left[node] != -1:
            order += [tree.left[node], tree.right[node]]
        position += 1
    order = np.array(order)
    new = np.empty(len(tree.left), np.intp)
    new[order] = np.arange(len(order))
    leaf = tree.left[order] == -1
    return Tree(
        feature=tree.feature[order],
        threshold=tree.threshold[order],
        default_right=tree.default_right[order],
        left=np.where(leaf, -1, new[tree.left[order]]),
        right=np.where(leaf, -1, new[tree.right[order]]),
        value=tree.value[order],
        cover=tree.cover[order],
    )


def shap_booster(trees: list[Tree], base: float, scale: float, width: int) -> xgboost.Booster:
    """A scikit-learn ensemble as an XGBoost model (identity link), for XGBoost's exact TreeSHAP.

    "x <= threshold goes left" becomes "float32(x) < c" with c the next float32 above the
    largest float32 not above the threshold, which sends every float32 value the same way
    (scikit-learn's forest reads float32; our tree features are integers and one-hot flags,
    exact in float32). Leaf values times `scale` (a forest's 1 / trees) are stored in float32,
    so contributions add up to the model's output within float32 rounding.
    """

    def condition(threshold: float) -> float:
        below = np.float32(threshold)
        if below > threshold:
            below = np.nextafter(below, np.float32(-np.inf))
        return float(np.nextafter(below, np.float32(np.inf)))

    documents = []
    for number, tree in enumerate(map(_siblings_adjacent, trees)):
        leaf = tree.left == -1
        conditions = [
            float(np.float32(v * scale)) if is_leaf else condition(t)
            for is_leaf, v, t in zip(leaf, tree.value, tree.threshold, strict=True)
        ]
        n = len(tree.left)
        parents = np.full(n, 2147483647)
        parents[tree.left[~leaf]], parents[tree.right[~leaf]] = np.flatnonzero(~leaf), np.flatnonzero(~leaf)
        documents.append(
            {
                "base_weights": [c if is_leaf else 0.0 for c, is_leaf in zip(conditions, leaf, strict=True)],
                "categories": [],
                "categories_nodes": [],
                "categories_segments": [],
                "categories_sizes": [],
                "default_left": (~tree.default_right).astype(int).tolist(),
                "id": number,
                "left_children": tree.left.tolist(),
                "loss_changes": [0.0] * n,
                "parents": parents.tolist(),
                "right_children": tree.right.tolist(),
                "split_conditions": conditions,
                "split_indices": tree.feature.tolist(),
                "split_type": [0] * n,
                "sum_hessian": tree.cover.tolist(),
                "tree_param": {
                    "num_deleted": "0",
                    "num_feature": str(width),
                    "num_nodes": str(n),
                    "size_leaf_vector": "1",
                },
            }
        )
    document = {
        "learner": {
            "attributes": {},
            "feature_names": [],
            "feature_types": [],
            "gradient_booster": {
                "model": {
                    "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": str(len(trees))},
                    "iteration_indptr": list(range(len(trees) + 1)),
                    "tree_info": [0] * len(trees),
                    "trees": documents,
                },
                "name": "gbtree",
            },
            "learner_model_param": {
                "base_score": f"[{base:.9E}]",
                "boost_from_average": "0",
                "num_class": "0",
                "num_feature": str(width),
                "num_target": "1",
            },
            "objective": {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}},
        },
        "version": [3, 2, 0],
    }
    booster = xgboost.Booster(model_file=bytearray(json.dumps(document).encode()))
    booster.set_param({"nthread": 1})  # one row at a time: threads cost more than they give
    return booster
