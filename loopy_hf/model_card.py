"""Model cards rendered from `model_cards/template.md`, filled only from files that training and evaluation
wrote into the checkpoint folder (`config.json`, `training_run.json`, `evaluation_results.json`)."""

import json
from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration_loopy import LoopyConfig
from .model_stats import count_flops, count_parameters

TEMPLATE = resources.files("loopy_hf") / "model_card_templates" / "template.md"
TRAINING_RUN_FILE = "training_run.json"
EVALUATION_FILE = "evaluation_results.json"

CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Local copies in the Hub's layout are recognised by their label set.
KNOWN_DATASETS = {CIFAR10_LABELS: ("uoft-cs/cifar10", "CIFAR-10"), tuple("0123456789"): ("ylecun/mnist", "MNIST")}


def dataset_identity(dataset_name: str, config: LoopyConfig) -> tuple[str, str]:
    """(Hub id, readable name) of the training data, also for a local folder holding a known Hub data set."""
    labels = tuple(config.id2label[i] for i in sorted(config.id2label))
    if Path(dataset_name).exists() and labels in KNOWN_DATASETS:
        return KNOWN_DATASETS[labels]
    hub_id, pretty = next(((h, p) for h, p in KNOWN_DATASETS.values() if h == dataset_name), (dataset_name, None))
    return hub_id, pretty or dataset_name


def describe_loop(config: LoopyConfig) -> str:
    start, end = config.loop_span
    if config.num_unrolls == 1:
        return "none (k = 1: the loop is never used)"
    merge = "summed with" if config.composition == "add" else "multiplied into"
    path = f", through loop layers of {config.loop_hidden_sizes} channels" if config.loop_hidden_sizes else ""
    tied = "shared" if config.share_conv_weights else "untied (one copy per unroll)"
    return (f"output of conv {end + 1}{path}, {merge} the input of conv {start + 1}; weights {tied}, "
            f"BatchNorm {'shared' if config.share_batch_norm else 'per unroll'}")


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def render_model_card(folder: str | Path, repo_id: str | None = None) -> ModelCard:
    """The model card of a checkpoint folder; numbers come only from the files in it."""
    folder = Path(folder)
    config = LoopyConfig.from_pretrained(folder)
    training = _read_json(folder / TRAINING_RUN_FILE)
    evaluation = _read_json(folder / EVALUATION_FILE)
    dataset_id, dataset_pretty_name = dataset_identity(training["dataset"] if training else "", config)
    repo_id = repo_id or folder.name
    preset = (training or {}).get("preset") or "custom"
    eval_results = []
    if evaluation:
        eval_results.append(EvalResult(
            task_type="image-classification", task_name="Image Classification",
            dataset_type=dataset_id, dataset_name=dataset_pretty_name, dataset_split=evaluation["split"],
            metric_type="accuracy", metric_name="Top-1 accuracy", metric_value=round(evaluation["accuracy"], 4),
        ))
    card_data = ModelCardData(
        library_name="transformers", pipeline_tag="image-classification", license="apache-2.0",
        datasets=[dataset_id] if training else None, model_name=repo_id,
        tags=["loopy-neural-network", "image-classification", "vision", f"loopy-{preset}"],
        eval_results=eval_results or None,
    )
    return ModelCard.from_template(
        card_data, template_path=str(TEMPLATE), **_template_fields(config, preset, repo_id, dataset_id,
                                                                    dataset_pretty_name, training, evaluation)
    )


def _template_fields(config, preset, repo_id, dataset_id, dataset_pretty_name, training, evaluation) -> dict:
    loopy = config.num_unrolls > 1
    architecture = (
        f"It unrolls {'an additive' if config.composition == 'add' else 'a multiplicative'} loop "
        f"{config.num_unrolls} times over {config.num_layers} conv layers."
        if loopy else f"It is a plain stack of {config.num_layers} conv layers (no loop is unrolled)."
    )
    evaluation_fields = None
    if evaluation:
        low, high = evaluation["accuracy_ci95"]
        evaluation_fields = {
            **evaluation, "accuracy": f"{evaluation['accuracy']:.2%}", "accuracy_ci": f"{low:.2%} - {high:.2%}",
            "per_unroll": [{"unrolls": k, "accuracy": f"{a:.2%}"} for k, a in evaluation.get("accuracy_per_unroll", [])],
        }
    return {
        "title": f"{repo_id}: {'loopy' if loopy else 'plain'} CNN ({preset}) for {dataset_pretty_name}",
        "architecture_sentence": architecture, "dataset_pretty_name": dataset_pretty_name, "dataset_id": dataset_id,
        "repo_id": repo_id, "preset": preset, "conv_layers": config.num_layers,
        "hidden_sizes": config.hidden_sizes, "kernel_size": config.kernel_size,
        "normalization": "BatchNorm" if config.normalization == "batch_norm" else "no normalization",
        "hidden_act": config.hidden_act, "loop_description": describe_loop(config), "num_unrolls": config.num_unrolls,
        "head": "flatten -> linear" if config.head == "flatten" else "global average pool -> linear",
        "num_channels": config.num_channels, "image_size": config.image_size,
        "parameters": f"{count_parameters(config):,}",
        "parameters_with_statistics": f"{count_parameters(config, include_batch_norm_statistics=True):,}",
        "gflops": f"{count_flops(config) / 1e9:.3f}",
        "labels": ", ".join(config.id2label[i] for i in sorted(config.id2label)),
        "training": training, "evaluation": evaluation_fields,
    }
