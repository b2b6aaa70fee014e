"""Evaluate image classifiers (Hub ids or local folders) on a labelled split, side by side.

    python scripts/evaluate.py --model lnn/loopy-cifar10 [--model lnn/loopy-cifar10-vanilla ...] [--revision REV] \
        [--dataset_name uoft-cs/cifar10] [--split test] [--max_samples N] [--batch_size B] \
        [--output_file results/eval/results.json] [--push_results]

Per model: top-1 accuracy with a 95% confidence interval, per-class accuracy, the confusion matrix (PNG), for loopy
models the accuracy after every unroll 1..k (the anytime curve, PNG), and images/s. Metrics come from the `evaluate`
metric module shipped in loopy_hf (offline). Results go to --output_file (all models) and to a folder per model next
to it (`evaluation_results.json`, the plots); with several models a markdown table is printed and saved.
--push_results writes the accuracy into each Hub model card's `model-index`.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

# This file shares its name with the `evaluate` library: keep its own folder off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import datasets  # noqa: E402
import evaluate  # noqa: E402
import huggingface_hub  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from huggingface_hub import EvalResult, ModelCardData, metadata_update  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from transformers import AutoImageProcessor, AutoModelForImageClassification  # noqa: E402

import loopy_hf  # noqa: E402,F401 - registers the loopy classes with the Auto classes
from loopy_hf.comparison import format_accuracy, format_per_unroll  # noqa: E402
from loopy_hf.data import find_columns  # noqa: E402
from loopy_hf.machine import describe_machine  # noqa: E402
from loopy_hf.metrics import IMAGE_CLASSIFICATION_METRIC  # noqa: E402
from loopy_hf.model_card import dataset_identity  # noqa: E402
from loopy_hf.model_stats import count_flops  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="a Hub id or a local folder (repeatable)")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of every Hub model (default: main)")
    parser.add_argument("--dataset_name", default="uoft-cs/cifar10", help="a Hub id or a local folder")
    parser.add_argument("--dataset_config_name", default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--max_samples", type=int, default=None, help="evaluate the first N images only")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--output_file", default="results/eval/results.json")
    parser.add_argument("--push_results", action="store_true", help="write the accuracy into the Hub model cards")
    parser.add_argument("--trust_remote_code", action="store_true", help="run a checkpoint's own code")
    return parser.parse_args(argv)


def model_slug(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", model_id.strip("/").removeprefix("./")).strip("-")


def load_split(args) -> tuple[datasets.Dataset, str, str]:
    split = datasets.load_dataset(args.dataset_name, args.dataset_config_name, split=args.split)
    image_column, label_column = find_columns(split.features, args.dataset_name)
    if args.max_samples is not None:
        split = split.select(range(min(args.max_samples, len(split))))
    return split, image_column, label_column


def predict(model, processor, split, image_column: str, batch_size: int, description: str):
    """Predicted classes, shape `(num_unrolls, N)` (one row for models without a loop), and images/s."""
    per_unroll = hasattr(model, "logits_per_unroll") and getattr(model.config, "num_unrolls", 1) > 1
    predictions, seen = [], 0
    started = time.perf_counter()
    with torch.inference_mode(), tqdm(total=len(split), desc=description, unit="img") as progress:
        for start in range(0, len(split), batch_size):
            images = split[start:start + batch_size][image_column]
            pixel_values = processor(images, return_tensors="pt")["pixel_values"]
            logits = model.logits_per_unroll(pixel_values) if per_unroll else model(pixel_values).logits[None]
            predictions.append(logits.argmax(-1))
            seen += len(images)
            progress.update(len(images))
    return torch.cat(predictions, dim=1).numpy(), seen / (time.perf_counter() - started)


def plot_confusion(matrix: list[list[int]], names: list[str], title: str, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 6))
    image = axis.imshow(np.asarray(matrix), cmap="Blues")
    axis.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="true", title=title)
    axis.set_xticklabels(names, rotation=45, ha="right")
    axis.set_yticklabels(names)
    figure.colorbar(image)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_anytime(curve: list[list[float]], title: str, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.plot([k for k, _ in curve], [a for _, a in curve], "o-")
    axis.set(xlabel="unrolls used at inference", ylabel="top-1 accuracy", title=title, xticks=[k for k, _ in curve])
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def resolved_commit(model, model_id: str, revision: str | None) -> str | None:
    """The exact commit a Hub model was read from (None for a local folder)."""
    if Path(model_id).exists():
        return None
    commit = getattr(model.config, "_commit_hash", None)
    return commit or huggingface_hub.HfApi().model_info(model_id, revision=revision).sha


def evaluate_model(model_id: str, args, split, image_column: str, label_column: str, output_dir: Path) -> dict:
    model = AutoModelForImageClassification.from_pretrained(
        model_id, revision=args.revision, trust_remote_code=args.trust_remote_code
    ).eval()
    processor = AutoImageProcessor.from_pretrained(model_id, revision=args.revision,
                                                   trust_remote_code=args.trust_remote_code)
    names = split.features[label_column].names
    predictions, images_per_second = predict(model, processor, split, image_column, args.batch_size, model_id)
    references = np.asarray(split[label_column])
    metric = evaluate.load(IMAGE_CLASSIFICATION_METRIC)
    scores = metric.compute(predictions=predictions[-1], references=references, num_classes=len(names))
    curve = [[k + 1, float((row == references).mean())] for k, row in enumerate(predictions)]
    dataset_id, _ = dataset_identity(args.dataset_name, model.config)
    result = {
        "model": model_id, "revision": args.revision or ("main" if not Path(model_id).exists() else None),
        "commit": resolved_commit(model, model_id, args.revision), "dataset": dataset_id,
        "dataset_source": args.dataset_name, "split": args.split, "num_samples": scores["num_samples"],
        "accuracy": scores["accuracy"], "accuracy_ci95": scores["accuracy_ci95"],
        "per_class_accuracy": dict(zip(names, scores["per_class_accuracy"])),
        "confusion_matrix": scores["confusion_matrix"], "class_names": names,
        "accuracy_per_unroll": curve if len(curve) > 1 else [],
        "parameters": sum(p.numel() for p in model.parameters()),
        "gflops_per_image": count_flops(model.config) / 1e9 if model.config.model_type == "loopy" else None,
        "images_per_second": images_per_second, "batch_size": args.batch_size,
        "machine": describe_machine(),
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "datasets": datasets.__version__, "evaluate": evaluate.__version__,
                     "huggingface_hub": huggingface_hub.__version__, "loopy_hf": loopy_hf.__version__},
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion(scores["confusion_matrix"], names, f"{model_id} ({args.split})", output_dir / "confusion_matrix.png")
    if result["accuracy_per_unroll"]:
        plot_anytime(curve, model_id, output_dir / "accuracy_per_unroll.png")
    write_json(output_dir / "evaluation_results.json", result)
    return result


def write_json(path: Path, payload) -> None:
    """Write through a temporary file, so a results file is complete or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    temporary.replace(path)


def comparison_table(results: list[dict]) -> str:
    rows = ["| model | commit | images | top-1 accuracy (95% CI) | accuracy per unroll 1..k | parameters | img/s |",
            "|---|---|---:|---|---|---:|---:|"]
    for r in results:
        rows.append(f"| `{r['model']}` | {(r['commit'] or 'local')[:8]} | {r['num_samples']:,} | {format_accuracy(r)} "
                    f"| {format_per_unroll(r)} | {r['parameters']:,} | {r['images_per_second']:.0f} |")
    return "\n".join(rows) + "\n"


def push_accuracy(result: dict, revision: str | None) -> None:
    """Write the accuracy into the Hub model card's `model-index` (updating an existing entry for this split)."""
    if Path(result["model"]).exists():
        raise ValueError(f"--push_results needs Hub ids; {result['model']!r} is a local folder")
    card = ModelCardData(model_name=result["model"].split("/")[-1], eval_results=[EvalResult(
        task_type="image-classification", task_name="Image Classification", dataset_type=result["dataset"],
        dataset_name=result["dataset"], dataset_split=result["split"], metric_type="accuracy",
        metric_name="Top-1 accuracy", metric_value=round(result["accuracy"], 4),
    )])
    metadata = {"model-index": card.to_dict()["model-index"]}
    metadata_update(result["model"], metadata, overwrite=True, revision=revision,
                    commit_message=f"Evaluation: {result['split']} accuracy {result['accuracy']:.2%}")


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    split, image_column, label_column = load_split(args)
    output_file = Path(args.output_file)
    results = [evaluate_model(model_id, args, split, image_column, label_column,
                              output_file.parent / model_slug(model_id)) for model_id in args.model]
    write_json(output_file, results)
    table = comparison_table(results)
    print(table)
    if len(results) > 1:
        output_file.with_suffix(".md").write_text(table)
    if args.push_results:
        for result in results:
            push_accuracy(result, args.revision)
    return results


if __name__ == "__main__":
    main()
