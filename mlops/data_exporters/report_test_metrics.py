"""test · 2: print the metrics beside their baselines."""

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def report_test_metrics(result, *args, **kwargs):
    m = result["metrics"]
    print(f"{result['model_name']} v{result['model_version']} on {result['split']} ({result['rows']} rows)")
    print(f"  ROC-AUC {m['roc_auc']:.4f}   PR-AUC {m['pr_auc']:.4f} (base rate {m['pr_auc_baseline']:.4f})")
    print(f"  accuracy {m['accuracy']:.4f} (majority {m['accuracy_majority_baseline']:.4f})")
    print(f"  ECE {m['ece']:.4f}   lift in the top decile {m['lift_top_decile']:.2f}")
    print(f"  MLflow run {result['mlflow_run_id']}")
    return result
