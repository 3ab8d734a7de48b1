"""Which inference engine for the predictor's one-row fast path? scikit-learn, ONNX Runtime, Treelite.

For every kind in `CANDIDATES` this trains the calibrated pipeline exactly as `train` does
(`calibrated(CANDIDATES[kind], params, TrainOptions()).fit(X, y)`, isotonic calibration on
3-fold cross-validated predictions, `ensemble=False`) with fixed moderate parameters (`PARAMS`)
on 80% of the real data, then measures every engine that can take that kind's classifier on
the other 20%. Only the classifier is measured: the model matrix,
`pipeline.named_steps["features"].transform(X)`, is computed once beforehand (float64 for
scikit-learn and XGBoost, float32 for ONNX Runtime and Treelite; the tree kinds' matrices hold
integers and one-hot 0/1 only, so float32 loses nothing for them).

Columns of the table:

* converts: `yes`, `no` (the error is printed under the table), `not installed`;
* 1-row us: median wall time of one call on one row, over --calls calls (>= 2000, each a
  different held-out row, after a warm-up), including the calibration step;
* 1000-row ms: median wall time of one call on 1,000 rows (--batch-runs calls);
* max |diff|: the largest absolute difference of the calibrated P(yes) from
  `pipeline.predict_proba` over all held-out rows (scored as one batch) and over the rows
  scored one at a time during the timing;
* raw |diff|: for the `+interp` engines, the same for the uncalibrated response (the isotonic
  map's steep segments magnify a float32 difference of 1e-6 in the response ~100x).

Engines (`compiled` = the platform's own scorer, `bankmarketing.scoring`, on the same matrix;
`+interp` = the engine computes the classifier's raw response, the response the
calibrator was fitted on (`decision_function` where the estimator has one, else P(yes)), and
the isotonic calibration is applied in Python with `np.interp` on the calibrator's
thresholds, which is what `IsotonicRegression.predict` computes):

* sklearn: `CalibratedClassifierCV.predict_proba` on the matrix, the reference;
* sklearn+interp: the fitted inner estimator (n_jobs=1) + interp: the cost of the wrapper;
* xgboost+interp (xgboost only): `Booster.inplace_predict` (nthread=1) + interp;
* onnxruntime: the whole `CalibratedClassifierCV` converted by skl2onnx (XGBoost through
  onnxmltools' converter registered with skl2onnx, ai.onnx.ml opset 3); skl2onnx has no
  converter for the project's `StratifiedSubsampleClassifier` (svc), so that row shows the
  error. skl2onnx's isotonic step takes the y of the nearest threshold instead of
  interpolating, which the note quantifies on scikit-learn's own response;
* onnxruntime+interp: the inner estimator alone converted (raw scores; for svc the SVC inside
  `StratifiedSubsampleClassifier`) + interp;
* treelite-gtil+interp (random_forest, hist_gradient_boosting, xgboost): `treelite.sklearn.import_model`
  / `treelite.frontend.from_xgboost`, predicted by `treelite.gtil.predict` (nthread=1) + interp;
* tl2cgen+interp: the same Treelite model compiled to a shared library by gcc (quantized
  thresholds, `--gcc-options -O1` after tl2cgen's -O3: the 300-tree forest compiles in ~3 min
  at -O1 on this machine, ~5 min at -O2/-O3 and predicted no faster there; -O0 takes 1 min
  and predicts 2-4x slower) + interp. tl2cgen 1.0 bundles Treelite
  4.1 and warns that the 4.8 model is newer; it loads and predicts exactly all the same.

Every engine other than the reference runs on one thread (ONNX Runtime intra/inter-op threads
1); the reference keeps the pipeline's own settings (random_forest and xgboost are trained with
n_jobs=-1). The machine has 2 cores shared with other work: medians, not means.

Run it in a scratch virtualenv, never in the app's (the engines are not project dependencies;
numpy is pinned back to the project's 1.26.4 after the engines' install, which pulls numpy 2):

    python3.11 -m venv /tmp/engines-venv
    /tmp/engines-venv/bin/pip install -r requirements.txt && /tmp/engines-venv/bin/pip install --no-deps -e .
    /tmp/engines-venv/bin/pip install onnxruntime skl2onnx onnxmltools treelite tl2cgen "numpy==1.26.4"
    OMP_WAIT_POLICY=PASSIVE /tmp/engines-venv/bin/python bench/engines.py [--kinds svc mlp] [--calls 2000]

An engine whose package is missing shows `not installed`; the script exits 0 all the same.
All six kinds take ~5 minutes on 2 cores (the forest: ~30 s fit, 2000 one-row calls of
scikit-learn at ~35 ms, 1.5-3 min of gcc); `--skip-tl2cgen` or `--kinds` for a quicker look.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from bankmarketing.data.loading import read_raw
from bankmarketing.data.validation import validate
from bankmarketing.scoring import Scorer
from bankmarketing.training.candidates import CANDIDATES, REFERENCE_XGBOOST_PARAMS
from bankmarketing.training.train import TrainOptions, calibrated, xy

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared/data/bank-marketing/bank-marketing.csv"
TREE_KINDS = ("random_forest", "hist_gradient_boosting", "xgboost")
#: quantize: thresholds become integer bin indexes (exact; ~2x faster one row, ~6x 1,000 rows
#: on the forest); parallel_comp: the trees are split into 8 C files.
TL2CGEN_PARAMS = {"parallel_comp": 8, "quantize": 1}

#: Fixed, moderate parameters per kind (no search): what each kind looks like after tuning.
PARAMS: dict[str, dict] = {
    "logistic_regression": {"C": 1.0, "class_weight": None},
    "random_forest": {
        "n_estimators": 300,
        "max_depth": 12,
        "min_samples_leaf": 5,
        "max_features": "sqrt",
        "class_weight": None,
    },
    "xgboost": dict(REFERENCE_XGBOOST_PARAMS),
    "svc": {"C": 1.0, "gamma": 0.05, "class_weight": None, "max_rows": 4000},
    "mlp": {"hidden_layer_sizes": "64-32", "alpha": 1e-4, "learning_rate_init": 1e-3},
    "hist_gradient_boosting": {
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "l2_regularization": 0.1,
        "class_weight": None,
    },
}

#: A prediction function: model matrix rows in, calibrated P(yes) (or a raw response) out.
Predict = Callable[[np.ndarray], np.ndarray]


@dataclass
class Built:
    """A converted engine: its calibrated prediction, and its raw response where it has one."""

    predict: Predict
    note: str = ""
    raw: Predict | None = None  # the uncalibrated response, for the raw |diff| column


@dataclass
class Row:
    kind: str
    engine: str
    converts: str  # yes | no | not installed
    one_row_us: float | None = None
    batch_ms: float | None = None
    max_diff: float | None = None
    raw_diff: float | None = None
    note: str = ""


def installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def median_s(call: Callable[[int], object], calls: int, warmup: int = 50) -> tuple[float, list]:
    """Median wall time of call(i), i in range(calls), in seconds; and the first outputs."""
    for i in range(warmup):
        call(i)
    times, outputs = [], []
    for i in range(calls):
        started = time.perf_counter()
        out = call(i)
        times.append(time.perf_counter() - started)
        if len(outputs) < 500:
            outputs.append(out)
    return statistics.median(times), outputs


class Calibration:
    """The fitted calibrated classifier taken apart: inner estimator, response, isotonic map."""

    def __init__(self, model):
        (calibrated_classifier,) = model.calibrated_classifiers_  # ensemble=False: one
        self.estimator = calibrated_classifier.estimator
        self.uses_decision_function = hasattr(self.estimator, "decision_function")
        (isotonic,) = calibrated_classifier.calibrators
        self.x = np.asarray(isotonic.X_thresholds_, dtype=np.float64)
        self.y = np.asarray(isotonic.y_thresholds_, dtype=np.float64)

    def __call__(self, score: np.ndarray) -> np.ndarray:
        # np.interp clamps outside [x0, xn] like IsotonicRegression(out_of_bounds="clip")
        return np.interp(np.asarray(score, dtype=np.float64).ravel(), self.x, self.y)

    def response(self, estimator, matrix: np.ndarray) -> np.ndarray:
        if self.uses_decision_function:
            return estimator.decision_function(matrix)
        return estimator.predict_proba(matrix)[:, 1]

    def engine(self, raw: Predict, note: str = "") -> Built:
        """An engine that computes the raw response, calibrated here by np.interp."""
        return Built(lambda matrix: self(raw(matrix)), note, raw)

    def nearest(self, score: np.ndarray) -> np.ndarray:
        """skl2onnx's isotonic: y at the nearest threshold, not interpolated between them."""
        score = np.clip(np.asarray(score, dtype=np.float64).ravel(), self.x[0], self.x[-1])
        return self.y[np.argmin(np.abs(score[:, None] - self.x[None, :]), axis=1)]


def load(data: Path, seed: int):
    frame = validate(read_raw(data)).clean
    X, y = xy(frame)
    return train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)


def measure(kind, engine, built: Built, matrix, reference, raw_reference, calls, batch_runs) -> Row:
    """Time `built.predict` on single rows and on 1,000-row batches; compare with the reference."""
    predict = built.predict
    n = len(matrix)
    rows = [matrix[i : i + 1] for i in range(n)]  # contiguous one-row views, made once
    one_s, singles = median_s(lambda i: predict(rows[i % n]), calls)
    batch = np.ascontiguousarray(matrix[:1000])
    batch_s, _ = median_s(lambda _i: predict(batch), batch_runs, warmup=3)
    scores = np.asarray(predict(matrix), dtype=np.float64).ravel()
    if scores.shape != reference.shape:
        raise RuntimeError(f"{engine} returned shape {scores.shape}, expected {reference.shape}")
    single_scores = np.array([float(np.asarray(s).ravel()[0]) for s in singles])
    diff = max(
        float(np.max(np.abs(scores - reference))),
        float(np.max(np.abs(single_scores - reference[: len(single_scores)]))),
    )
    raw_diff = None
    if built.raw is not None:
        raw = np.asarray(built.raw(matrix), dtype=np.float64).ravel()
        raw_diff = float(np.max(np.abs(raw - raw_reference)))
    return Row(kind, engine, "yes", one_s * 1e6, batch_s * 1e3, diff, raw_diff, built.note)


def attempt(rows: list[Row], errors: list[str], kind: str, engine: str, modules: tuple, run) -> None:
    """Run one engine's conversion + measurement, recording a missing package or a failure."""
    if not installed(*modules):
        rows.append(Row(kind, engine, "not installed", note=" ".join(modules)))
        return
    try:
        rows.append(run())
    except Exception as error:  # noqa: BLE001 - any conversion failure is a result to report
        message = f"{type(error).__name__}: {error}".strip()
        first_line = message.splitlines()[0][:110]
        rows.append(Row(kind, engine, "no", note=first_line))
        errors.append(f"[{kind} / {engine}]\n{traceback.format_exc(limit=3)}")


# --- ONNX Runtime --------------------------------------------------------------------------


def ort_session(onnx_model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def register_xgboost_with_skl2onnx() -> None:
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from xgboost import XGBClassifier

    update_registered_converter(
        XGBClassifier,
        "XGBoostXGBClassifier",
        calculate_linear_classifier_output_shapes,
        convert_xgboost,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def onnx_full(kind, model, calibration: Calibration, m32, reference, raw_reference) -> Built:
    """The whole CalibratedClassifierCV through skl2onnx; P(yes) is output 'probabilities'[:, 1]."""
    from skl2onnx import __max_supported_opset__, to_onnx

    target_opset = None
    if kind == "xgboost":
        register_xgboost_with_skl2onnx()
        # onnxmltools' XGBoost converter writes TreeEnsembleClassifier of ai.onnx.ml 3 only
        target_opset = {"": __max_supported_opset__, "ai.onnx.ml": 3}
    try:
        onnx_model = to_onnx(
            model, m32[:1], options={id(model): {"zipmap": False}}, target_opset=target_opset
        )
    except KeyError as error:  # skl2onnx's registry lookup of an estimator class it does not know
        raise RuntimeError(f"skl2onnx has no converter for {error.args[0].__name__}") from error
    session = ort_session(onnx_model)
    name = session.get_inputs()[0].name
    output = [o.name for o in session.get_outputs()].index("probabilities")

    def predict(matrix):
        return session.run(None, {name: matrix})[output][:, 1]

    # The graph's isotonic step is a nearest-threshold lookup: how far that alone is from
    # scikit-learn's interpolation, on scikit-learn's own raw response.
    nearest = float(np.max(np.abs(calibration.nearest(raw_reference) - reference)))
    return Built(predict, f"nearest-threshold isotonic alone: {nearest:.1e}")


def onnx_inner(kind, calibration: Calibration, m32) -> Built:
    """The inner estimator alone (raw scores where calibration used decision_function) + interp."""
    estimator = calibration.estimator
    note = ""
    if kind == "svc":
        estimator = estimator.estimator_  # the SVC inside StratifiedSubsampleClassifier
        note = "inner SVC converted; calibration by np.interp"
    if kind == "xgboost":
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        onnx_model = convert_xgboost(
            estimator, initial_types=[("input", FloatTensorType([None, m32.shape[1]]))]
        )
    else:
        from skl2onnx import to_onnx

        options = {"zipmap": False}
        if calibration.uses_decision_function:
            options["raw_scores"] = True
        onnx_model = to_onnx(estimator, m32[:1], options={id(estimator): options})
    session = ort_session(onnx_model)
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]
    output = outputs.index("probabilities") if "probabilities" in outputs else len(outputs) - 1
    # Which column (and sign) of the ONNX scores is the response the calibrator saw: checked
    # on the first 200 rows against scikit-learn rather than assumed per converter.
    wanted = calibration.response(estimator, m32[:200].astype(np.float64))
    got = np.asarray(session.run(None, {name: m32[:200]})[output], dtype=np.float64).reshape(200, -1)
    column, sign = min(
        ((c, s) for s in (1.0, -1.0) for c in reversed(range(got.shape[1]))),  # ties: last, +
        key=lambda cs: float(np.max(np.abs(cs[1] * got[:, cs[0]] - wanted))),
    )
    if sign < 0:
        note = (note + "; " if note else "") + f"scores column {column} negated"

    def raw(matrix):
        return sign * session.run(None, {name: matrix})[output][:, column]

    return calibration.engine(raw, note)


# --- Treelite --------------------------------------------------------------------------------


def treelite_model(kind, calibration: Calibration):
    import treelite

    if kind == "xgboost":
        return treelite.frontend.from_xgboost(calibration.estimator.get_booster())
    return treelite.sklearn.import_model(calibration.estimator)


def treelite_response(kind, calibration: Calibration) -> tuple[bool, Callable[[np.ndarray], np.ndarray]]:
    """(pred_margin, pick): raw margin for decision_function kinds, else P(yes)."""
    margin = calibration.uses_decision_function  # hist_gradient_boosting
    return margin, lambda out: out.reshape(out.shape[0], -1)[:, -1]


def gtil_engine(kind, calibration: Calibration) -> Built:
    import treelite

    model = treelite_model(kind, calibration)
    margin, pick = treelite_response(kind, calibration)

    def raw(matrix):
        return pick(treelite.gtil.predict(model, matrix, nthread=1, pred_margin=margin))

    return calibration.engine(raw)


def tl2cgen_engine(kind, calibration: Calibration, workdir: Path, gcc_options: list[str]) -> Built:
    import tl2cgen

    model = treelite_model(kind, calibration)
    margin, pick = treelite_response(kind, calibration)
    library = workdir / f"{kind}.so"
    started = time.perf_counter()
    tl2cgen.export_lib(
        model, toolchain="gcc", libpath=library, params=TL2CGEN_PARAMS, nthread=2, options=gcc_options
    )
    compile_s = time.perf_counter() - started
    predictor = tl2cgen.Predictor(library, nthread=1)

    def raw(matrix):
        return pick(predictor.predict(tl2cgen.DMatrix(matrix), pred_margin=margin))

    size = library.stat().st_size / 1e6
    return calibration.engine(
        raw, f"gcc {' '.join(gcc_options)}: compiled in {compile_s:.0f} s, {size:.1f} MB"
    )


# --- one kind ----------------------------------------------------------------------------------


def bench_kind(kind, X_train, y_train, X_test, args, workdir: Path, errors: list[str]) -> list[Row]:
    started = time.perf_counter()
    pipeline = calibrated(CANDIDATES[kind], PARAMS[kind], TrainOptions()).fit(X_train, y_train)
    fit_s = time.perf_counter() - started
    reference = pipeline.predict_proba(X_test)[:, 1].astype(np.float64)
    m64 = np.ascontiguousarray(pipeline.named_steps["features"].transform(X_test), dtype=np.float64)
    m32 = m64.astype(np.float32)
    model = pipeline.named_steps["model"]
    calibration = Calibration(model)
    print(
        f"  {kind}: fitted in {fit_s:.0f} s; matrix {m64.shape[0]} x {m64.shape[1]}; "
        f"calibrated on {'decision_function' if calibration.uses_decision_function else 'predict_proba'}, "
        f"{len(calibration.x)} isotonic thresholds",
        flush=True,
    )
    raw_reference = np.asarray(calibration.response(calibration.estimator, m64), dtype=np.float64).ravel()
    timing = (args.calls, args.batch_runs)
    rows: list[Row] = []

    def run(engine, modules, build: Callable[[], Built], matrix):
        def go():
            return measure(kind, engine, build(), matrix, reference, raw_reference, *timing)

        attempt(rows, errors, kind, engine, modules, go)
        print(f"    {engine}: {rows[-1].converts}", flush=True)

    run("sklearn", ("sklearn",), lambda: Built(lambda m: model.predict_proba(m)[:, 1], "the reference"), m64)

    def sklearn_inner():
        estimator = copy.deepcopy(calibration.estimator)
        if "n_jobs" in estimator.get_params():
            estimator.set_params(n_jobs=1)
        return calibration.engine(lambda m: calibration.response(estimator, m), "n_jobs=1")

    run("sklearn+interp", ("sklearn",), sklearn_inner, m64)

    def compiled():  # the platform's scorer, classifier part: the walk / matrix products + calibrator
        classifier = Scorer.from_pipeline(pipeline).classifier
        if classifier is None:
            raise RuntimeError("the scorer did not compile this pipeline")
        return Built(classifier.score, "bankmarketing.scoring (this platform)", classifier.response)

    run("compiled", ("sklearn",), compiled, m64)

    if kind == "xgboost":

        def xgb_inplace():
            booster = copy.deepcopy(calibration.estimator.get_booster())
            booster.set_param({"nthread": 1})
            return calibration.engine(booster.inplace_predict, "Booster.inplace_predict")

        run("xgboost+interp", ("xgboost",), xgb_inplace, m64)

    onnx_modules = ("onnxruntime", "skl2onnx") + (("onnxmltools",) if kind == "xgboost" else ())
    run(
        "onnxruntime",
        onnx_modules,
        lambda: onnx_full(kind, model, calibration, m32, reference, raw_reference),
        m32,
    )
    run("onnxruntime+interp", onnx_modules, lambda: onnx_inner(kind, calibration, m32), m32)

    if kind in TREE_KINDS:
        run("treelite-gtil+interp", ("treelite",), lambda: gtil_engine(kind, calibration), m32)
        if args.skip_tl2cgen:
            rows.append(Row(kind, "tl2cgen+interp", "skipped", note="--skip-tl2cgen"))
        else:
            gcc = args.gcc_options.split()
            run(
                "tl2cgen+interp",
                ("treelite", "tl2cgen"),
                lambda: tl2cgen_engine(kind, calibration, workdir, gcc),
                m32,
            )
    return rows


def fmt(value: float | None, spec: str) -> str:
    """`value` formatted by `spec` (width first), or a dash right-aligned to that width."""
    return format(value, spec) if value is not None else "-".rjust(int(spec.split(".")[0]))


def table(rows: list[Row]) -> str:
    header = (
        f"{'kind':<23} {'engine':<21} {'converts':<13} {'1-row us':>9} {'1000-row ms':>11} "
        f"{'max |diff|':>10} {'raw |diff|':>10}  note"
    )
    lines = [header, "-" * len(header)]
    previous = None
    for row in rows:
        if previous is not None and row.kind != previous:
            lines.append("")
        previous = row.kind
        lines.append(
            f"{row.kind:<23} {row.engine:<21} {row.converts:<13} {fmt(row.one_row_us, '9.1f')} "
            f"{fmt(row.batch_ms, '11.2f')} {fmt(row.max_diff, '10.1e')} {fmt(row.raw_diff, '10.1e')}"
            f"  {row.note}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("BANK_DATA_PATH", DEFAULT_DATA)))
    parser.add_argument("--kinds", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--calls", type=int, default=2000, help="one-row calls per engine (median)")
    parser.add_argument("--batch-runs", type=int, default=20, help="1,000-row calls per engine (median)")
    parser.add_argument("--skip-tl2cgen", action="store_true", help="skip compiling with gcc")
    parser.add_argument(
        "--gcc-options",
        default="-O1",
        help="appended to tl2cgen's gcc -O3 (the last -O wins): the 300-tree forest takes ~5 min at -O3",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    started = time.perf_counter()
    X_train, X_test, y_train, y_test = load(args.data, args.seed)
    print(f"data: {len(y_train)} train rows, {len(y_test)} held-out rows", flush=True)
    versions = []
    for module in (
        "sklearn",
        "xgboost",
        "numpy",
        "onnxruntime",
        "skl2onnx",
        "onnxmltools",
        "treelite",
        "tl2cgen",
    ):
        if installed(module):
            versions.append(f"{module} {getattr(__import__(module), '__version__', '?')}")
        else:
            versions.append(f"{module} not installed")
    print("versions: " + ", ".join(versions), flush=True)

    rows: list[Row] = []
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="engines-") as workdir:
        for kind in args.kinds:
            try:
                rows += bench_kind(kind, X_train, y_train, X_test, args, Path(workdir), errors)
            except Exception:  # noqa: BLE001 - one kind failing to train must not hide the others
                rows.append(Row(kind, "(training)", "no", note="training failed, see below"))
                errors.append(f"[{kind} / training]\n{traceback.format_exc(limit=5)}")

    print()
    print(table(rows))
    if errors:
        print("\nconversion / run errors:")
        for error in errors:
            print(error)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
