"""Train or fine-tune a loopy network with `transformers.Trainer` (single process, `accelerate launch`, `torchrun`).

    python scripts/train.py configs/train/cpu.yaml --config_name loopy --output_dir out/loopy
    python scripts/train.py configs/train/paper.yaml --dataset_name ../shared/data/cifar10 --max_steps 5 --output_dir out/try
    python scripts/train.py configs/train/modern.yaml --model_name_or_path lnn/loopy-cifar10 \
        --dataset_name <dataset> --ignore_mismatched_sizes true --output_dir out/finetuned
    accelerate launch --num_processes 2 scripts/train.py configs/train/modern.yaml --output_dir out/ddp

The recipe YAML gives the arguments (fields of ModelArguments, DataTrainingArguments in loopy_hf/recipes.py and
transformers.TrainingArguments); flags override it. An --output_dir holding checkpoints is resumed from its last
one unless --overwrite_output_dir true is given. The output folder gets model.safetensors, config.json (with the
code files), preprocessor_config.json, all_results.json, trainer_state.json, training_curves.png, training_run.json
and a model card (README.md).
"""

import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification, Trainer, set_seed
from transformers.trainer_utils import get_last_checkpoint

from loopy_hf import LoopyConfig, LoopyForImageClassification, image_processor_for, load_preset, save_checkpoint
from loopy_hf.allocator import retain_freed_memory
from loopy_hf.augmentation import BatchTransform
from loopy_hf.data import DecodedImages, collate_batch, decode_images, load_train_validation
from loopy_hf.machine import describe_machine
from loopy_hf.model_card import TRAINING_RUN_FILE, render_model_card
from loopy_hf.recipes import parse_training_arguments
from loopy_hf.training_plots import plot_training_curves

logger = logging.getLogger(__name__)
FINAL_MODEL_FILES = ("model.safetensors", "config.json")


def prepare_output_dir(output_dir: Path, overwrite: bool) -> str | None:
    """The checkpoint to resume from (the default), or None for a fresh start. Never deletes work unasked."""
    last_checkpoint = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if overwrite:
        for checkpoint in output_dir.glob("checkpoint-*"):
            shutil.rmtree(checkpoint)
        return None
    if last_checkpoint is None and any((output_dir / name).exists() for name in FINAL_MODEL_FILES):
        raise ValueError(
            f"output_dir={str(output_dir)!r} already holds a trained model and no checkpoint to resume; allowed: a "
            "new --output_dir, or --overwrite_output_dir true to train again and replace it"
        )
    if last_checkpoint:
        logger.info("Resuming from %s (pass --overwrite_output_dir true to start afresh)", last_checkpoint)
    return last_checkpoint


def build_config(model_args, id2label: dict[int, str]):
    """The model's config: a preset or JSON (from scratch) or a checkpoint's (fine-tuning), for these labels."""
    if (model_args.config_name is None) == (model_args.model_name_or_path is None):
        raise ValueError("give exactly one of --config_name (train from scratch) and --model_name_or_path (fine-tune)")
    # A ClassLabel column means one class per image; stating it keeps the loss choice out of the compiled forward.
    labels = {"id2label": id2label, "label2id": {name: i for i, name in id2label.items()}, "num_labels": len(id2label),
              "problem_type": "single_label_classification"}
    overrides = {"num_unrolls": model_args.num_unrolls} if model_args.num_unrolls else {}
    if model_args.model_name_or_path:
        return AutoConfig.from_pretrained(
            model_args.model_name_or_path, revision=model_args.model_revision,
            trust_remote_code=model_args.trust_remote_code, **labels, **overrides,
        )
    name = model_args.config_name
    base = LoopyConfig.from_json_file(name).to_dict() if name.endswith(".json") else load_preset(name).to_dict()
    if model_args.width:
        base["hidden_sizes"] = [model_args.width] * (len(base["hidden_sizes"]) - 1) + base["hidden_sizes"][-1:]
    base.pop("id2label", None), base.pop("label2id", None)
    return LoopyConfig.from_dict({**base, **overrides, **labels})


def check_image_size(config, image, dataset_name: str) -> None:
    width, height = image.size
    if config.head == "flatten" and (height, width) != (config.image_size, config.image_size):
        raise ValueError(
            f"images of {dataset_name!r} are {width}x{height} but the model's flatten head expects image_size "
            f"{config.image_size}x{config.image_size}; allowed: a config with image_size={height} or head='global_avg_pool'"
        )


def compute_accuracy(eval_prediction) -> dict:
    predictions = np.asarray(eval_prediction.predictions).argmax(-1)
    return {"accuracy": float((predictions == np.asarray(eval_prediction.label_ids)).mean())}


def main(argv: list[str] | None = None, callbacks: tuple = ()) -> dict:
    model_args, data_args, training_args, recipe = parse_training_arguments(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO,
                        handlers=[logging.StreamHandler(sys.stdout)])
    logger.setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    set_seed(training_args.seed)

    output_dir = Path(training_args.output_dir)
    with training_args.main_process_first(desc="output folder", local=False):
        resume_from = training_args.resume_from_checkpoint or prepare_output_dir(
            output_dir, data_args.overwrite_output_dir
        )

    with training_args.main_process_first(desc="loading and decoding the data set"):
        splits, image_column, label_column, id2label = load_train_validation(
            data_args.dataset_name, data_args.dataset_config_name, data_args.validation_size, data_args.split_seed,
            data_args.max_train_samples, data_args.max_eval_samples, data_args.image_column_name,
            data_args.label_column_name,
        )
        config = build_config(model_args, id2label)
        check_image_size(config, splits["train"][0][image_column], data_args.dataset_name)
        decoded = {name: decode_images(split, image_column, label_column, config.num_channels)
                   for name, split in splits.items()}

    if model_args.model_name_or_path and not (data_args.image_mean or data_args.image_std
                                              or data_args.mean_subtraction_only):
        # Fine-tuning keeps the checkpoint's own preprocessing.
        processor = AutoImageProcessor.from_pretrained(model_args.model_name_or_path,
                                                       revision=model_args.model_revision,
                                                       trust_remote_code=model_args.trust_remote_code)
    else:
        std = [1.0] * config.num_channels if data_args.mean_subtraction_only else data_args.image_std
        processor = image_processor_for(config, data_args.image_mean, std)
    transform = dict(image_mean=processor.image_mean, image_std=processor.image_std,
                     crop_padding=data_args.crop_padding, channels_last=model_args.channels_last)
    train_dataset = DecodedImages(*decoded["train"], BatchTransform(augment=data_args.augmentation != "none",
                                                                    **transform), seed=training_args.seed)
    eval_dataset = DecodedImages(*decoded["validation"], BatchTransform(**transform))

    if training_args.device.type == "cpu":
        retain_freed_memory()
    if model_args.model_name_or_path:
        model = AutoModelForImageClassification.from_pretrained(
            model_args.model_name_or_path, config=config, revision=model_args.model_revision,
            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, trust_remote_code=model_args.trust_remote_code,
        )
    else:
        model = LoopyForImageClassification(config)
    if model_args.channels_last:
        model = model.to(memory_format=torch.channels_last)

    # Batches arrive built by DecodedImages.__getitems__ and hold only model inputs: nothing to filter.
    training_args.remove_unused_columns = False
    trainer = Trainer(
        model=model, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
        data_collator=collate_batch, compute_metrics=compute_accuracy, processing_class=processor,
        callbacks=list(callbacks),
    )
    started = time.time()
    train_result = trainer.train(resume_from_checkpoint=resume_from)
    wall_time = time.time() - started
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    eval_metrics = trainer.evaluate()
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    trainer.save_state()

    if trainer.is_world_process_zero():
        final_model = trainer.accelerator.unwrap_model(trainer.model)
        save_checkpoint(final_model, output_dir, processor)
        run = training_run_record(recipe, model_args, data_args, training_args, trainer, train_dataset,
                                  eval_dataset, eval_metrics, wall_time)
        (output_dir / TRAINING_RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
        plot_training_curves(trainer.state.log_history, output_dir / "training_curves.png", title=str(output_dir))
        render_model_card(output_dir).save(output_dir / "README.md")
    return eval_metrics


def training_run_record(recipe, model_args, data_args, args, trainer, train_dataset, eval_dataset, eval_metrics,
                        wall_time) -> dict:
    """What the model card says about training: every value as the run used it."""
    history = [e["eval_accuracy"] for e in trainer.state.log_history if "eval_accuracy" in e]
    return {
        "recipe": recipe or "(flags only)",
        "preset": model_args.config_name,
        "initialization": (f"`{model_args.model_name_or_path}`" if model_args.model_name_or_path
                           else "scratch (random initialization)"),
        "dataset": data_args.dataset_name, "train_samples": len(train_dataset),
        "validation_samples": len(eval_dataset), "split_seed": data_args.split_seed,
        "epochs": round(trainer.state.epoch or 0, 2), "steps": trainer.state.global_step,
        "batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
        "optimizer": args.optim, "learning_rate": args.learning_rate, "lr_scheduler": getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
        "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing_factor,
        "augmentation": data_args.augmentation if data_args.augmentation != "none" else "none",
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32", "torch_compile": args.torch_compile,
        "seed": args.seed, "wall_time": f"{wall_time / 60:.1f} min" if wall_time >= 60 else f"{wall_time:.0f} s", "wall_time_seconds": round(wall_time, 1),
        "machine": f"{describe_machine()}, {args.world_size} process(es)",
        "validation_accuracy": f"{max(history, default=eval_metrics['eval_accuracy']):.2%}",
        "final_eval": eval_metrics,
    }


if __name__ == "__main__":
    main()
