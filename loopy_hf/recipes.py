"""Training arguments: the model and data dataclasses of `scripts/train.py`, read from a recipe YAML file in
`configs/train/` with command-line flags taking precedence."""

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments


@dataclass
class ModelArguments:
    """Which model to train: a preset or model JSON from scratch, or a checkpoint to fine-tune."""

    config_name: str | None = field(
        default=None, metadata={"help": "A preset name (`loopy`) or a path to a model JSON, to train from scratch."}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A Hub id or a folder to fine-tune from (instead of --config_name)."}
    )
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of --model_name_or_path."})
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "Start a fresh classifier when the checkpoint has another label set."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run the checkpoint's own code when loopy_hf is not the one installed."}
    )
    width: int | None = field(
        default=None, metadata={"help": "Override the channels of every conv layer but the last (e.g. 32)."}
    )
    num_unrolls: int | None = field(default=None, metadata={"help": "Override the number of unrolls k."})
    channels_last: bool = field(default=False, metadata={"help": "Train in channels_last memory format."})


@dataclass
class DataTrainingArguments:
    """Which images to train on and how they are prepared."""

    dataset_name: str = field(
        default="uoft-cs/cifar10", metadata={"help": "A Hub id (uoft-cs/cifar10, ylecun/mnist) or a local folder."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset configuration, if any."})
    image_column_name: str | None = field(default=None, metadata={"help": "Default: `img` or `image`."})
    label_column_name: str | None = field(default=None, metadata={"help": "Default: `label` (a ClassLabel)."})
    validation_size: int = field(
        default=5000, metadata={"help": "Images carved from the training split for validation (fixed seed)."}
    )
    split_seed: int = field(default=42, metadata={"help": "Seed of the train/validation split."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Train on at most this many images."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Validate on at most this many images."})
    augmentation: str = field(
        default="none", metadata={"help": "`none`, or `crop_flip` (random crop with padding, horizontal flip)."}
    )
    crop_padding: int = field(default=4, metadata={"help": "Padding of the random crop, in pixels."})
    image_mean: list[float] | None = field(
        default=None, metadata={"help": "Normalization mean (default: CIFAR-10 or MNIST statistics)."}
    )
    image_std: list[float] | None = field(default=None, metadata={"help": "Normalization std."})
    mean_subtraction_only: bool = field(
        default=False, metadata={"help": "Subtract the mean without dividing by the std (the paper's preprocessing)."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start afresh in a non-empty --output_dir, deleting its checkpoints (default: resume)."},
    )

    def __post_init__(self):
        if self.augmentation not in ("none", "crop_flip"):
            raise ValueError(f"augmentation={self.augmentation!r} is invalid; allowed: 'none', 'crop_flip'")
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding={self.crop_padding} is invalid; allowed: >= 0")


ARGUMENT_CLASSES = (ModelArguments, DataTrainingArguments, TrainingArguments)


def _given_flags(parser: HfArgumentParser, argv: list[str]) -> dict:
    """Only the flags present on the command line (argparse defaults would otherwise override the recipe)."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def parse_training_arguments(argv: list[str] | None = None) -> tuple:
    """`[recipe.yaml] [--flag value ...]` -> (ModelArguments, DataTrainingArguments, TrainingArguments, recipe path).

    The recipe's keys are the dataclasses' fields; flags override them. An unknown key in the recipe is an error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe_path = argv.pop(0) if argv and argv[0].endswith((".yaml", ".yml")) else None
    recipe = _read_recipe(Path(recipe_path)) if recipe_path else {}
    overrides = _given_flags(HfArgumentParser(ARGUMENT_CLASSES), argv)
    return (*HfArgumentParser(ARGUMENT_CLASSES).parse_dict({**recipe, **overrides}), recipe_path)


def _read_recipe(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"recipe file {str(path)!r} does not exist; allowed: a YAML file such as configs/train/cpu.yaml")
    recipe = yaml.safe_load(path.read_text()) or {}
    known = {name for cls in ARGUMENT_CLASSES for name in cls.__dataclass_fields__}
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise ValueError(f"recipe {str(path)!r} has unknown keys {unknown}; allowed: the fields of ModelArguments, "
                         "DataTrainingArguments and transformers.TrainingArguments (see `train.py --help`)")
    return recipe
