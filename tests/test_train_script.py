"""scripts/train.py end to end on real CIFAR-10 slices: outputs, bad input, resume after a crash, two processes."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value
from safetensors.torch import load_file
from transformers import AutoImageProcessor, pipeline

from conftest import DATA_DIR, REPO_ROOT, load_script

train = load_script("train")

CIFAR = str(DATA_DIR / "cifar10")
TINY_MODEL = {"model_type": "loopy", "hidden_sizes": [8, 3], "num_unrolls": 2, "image_size": 32}


@pytest.fixture
def tiny_config(tmp_path) -> str:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_MODEL))
    return str(path)


def quick_args(config: str, output_dir: Path, *extra: str) -> list[str]:
    return [
        str(REPO_ROOT / "configs" / "train" / "paper.yaml"), "--config_name", config, "--dataset_name", CIFAR,
        "--output_dir", str(output_dir), "--validation_size", "100", "--max_train_samples", "24",
        "--max_eval_samples", "16", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
        "--max_steps", "4", "--save_steps", "2", "--save_strategy", "steps", "--eval_strategy", "steps",
        "--eval_steps", "2", "--logging_steps", "1", "--disable_tqdm", "true", "--dataloader_pin_memory", "false",
        "--use_cpu", "true", "--load_best_model_at_end", "false", *extra,
    ]


def test_training_writes_a_complete_checkpoint_folder(tiny_config, tmp_path, cifar10_test_rows):
    output_dir = tmp_path / "out"
    metrics = train.main(quick_args(tiny_config, output_dir, "--augmentation", "crop_flip"))
    assert 0 <= metrics["eval_accuracy"] <= 1
    for name in ("model.safetensors", "config.json", "configuration_loopy.py", "modeling_loopy.py",
                 "preprocessor_config.json", "all_results.json", "trainer_state.json", "training_curves.png",
                 "training_run.json", "README.md"):
        assert (output_dir / name).is_file(), name
    assert not list(output_dir.glob("*.bin")), "weights must be safetensors only"
    assert json.loads((output_dir / "config.json").read_text())["auto_map"]["AutoConfig"]
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["eval_accuracy"] == metrics["eval_accuracy"]
    run = json.loads((output_dir / "training_run.json").read_text())
    assert run["steps"] == 4 and run["train_samples"] == 24 and run["validation_samples"] == 16
    card = (output_dir / "README.md").read_text()
    assert "library_name: transformers" in card and "pipeline_tag: image-classification" in card
    assert "uoft-cs/cifar10" in card and run["validation_accuracy"] in card
    assert (output_dir / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Every checkpoint folder carries the processor too, and the output works with pipeline.
    assert (output_dir / "checkpoint-4" / "preprocessor_config.json").is_file()
    assert AutoImageProcessor.from_pretrained(output_dir).size == {"height": 32, "width": 32}
    predictions = pipeline("image-classification", model=str(output_dir))([r["img"] for r in cifar10_test_rows[:4]])
    assert len(predictions) == 4 and predictions[0][0]["label"] in run_labels(output_dir)


def run_labels(output_dir: Path) -> set[str]:
    return set(json.loads((output_dir / "config.json").read_text())["id2label"].values())


def no_image_dataset(tmp_path: Path) -> str:
    folder = tmp_path / "text_only"
    features = Features({"text": Value("string"), "label": ClassLabel(names=["a", "b"])})
    Dataset.from_dict({"text": ["x", "y"] * 10, "label": [0, 1] * 10}, features=features).to_parquet(
        folder / "train-00000-of-00001.parquet")
    return str(folder)


@pytest.mark.parametrize(
    "case", ["unknown_preset", "no_image_column", "no_label_column", "image_size", "recipe_key", "both_models"]
)
def test_bad_input_stops_before_training(case, tiny_config, tmp_path):
    output_dir = tmp_path / "out"
    args = quick_args(tiny_config, output_dir)
    expected = {
        "unknown_preset": (["--config_name", "lopy"], "preset='lopy' is unknown; allowed: "),
        "no_image_column": (["--dataset_name", no_image_dataset(tmp_path)], "has no image column"),
        "no_label_column": (["--dataset_name", CIFAR, "--label_column_name", "fine_label"], "has no label column"),
        "image_size": (["--dataset_name", str(DATA_DIR / "mnist")], "are 28x28 but the model's flatten head expects"),
        "recipe_key": ([], "unknown keys \\['learning_rat'\\]"),
        "both_models": (["--model_name_or_path", "lnn/loopy-cifar10"], "give exactly one of --config_name"),
    }[case]
    args += expected[0]
    if case == "recipe_key":
        recipe = tmp_path / "typo.yaml"
        recipe.write_text("learning_rat: 0.1\n")
        args[0] = str(recipe)
    with pytest.raises(ValueError, match=expected[1]):
        train.main(args)
    assert not list(output_dir.glob("checkpoint-*"))


def test_finished_output_folder_is_not_overwritten_unless_asked(tiny_config, tmp_path):
    output_dir = tmp_path / "out"
    train.main(quick_args(tiny_config, output_dir, "--save_strategy", "no"))
    weights = (output_dir / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already holds a trained model.*--overwrite_output_dir true"):
        train.main(quick_args(tiny_config, output_dir, "--save_strategy", "no"))
    assert (output_dir / "model.safetensors").read_bytes() == weights
    train.main(quick_args(tiny_config, output_dir, "--save_strategy", "no", "--overwrite_output_dir", "true",
                          "--seed", "1"))
    assert (output_dir / "model.safetensors").read_bytes() != weights


LOAD_TRAIN = (
    "import importlib.util; spec = importlib.util.spec_from_file_location('train', "
    f"{str(REPO_ROOT / 'scripts' / 'train.py')!r}); train = importlib.util.module_from_spec(spec); "
    "spec.loader.exec_module(train)"
)


def run_script(script: str, cwd: Path, *launcher: str) -> subprocess.CompletedProcess:
    path = cwd / "run_train.py"
    path.write_text(textwrap.dedent(script))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, str(path)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


CRASH_AFTER_FIRST_CHECKPOINT = """
    import os
    from transformers import TrainerCallback
    {load_train}

    class CrashAfterCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 2:
                os._exit(17)  # a kill, not an exception: nothing after this runs

    train.main({args!r}, callbacks=[CrashAfterCheckpoint()] if {crash} else [])
"""


def test_resumed_run_ends_with_the_same_weights(tiny_config, tmp_path):
    """Killed after its step-2 checkpoint and started again (resuming is the default), a run ends where an
    uninterrupted one does: same data order, same augmentation, same optimizer state."""
    finals = {}
    for name, crash in (("uninterrupted", False), ("resumed", True)):
        args = quick_args(tiny_config, tmp_path / name, "--augmentation", "crop_flip", "--eval_strategy", "no")
        script = CRASH_AFTER_FIRST_CHECKPOINT.format(args=args, crash=crash, load_train=LOAD_TRAIN)
        result = run_script(script, tmp_path, sys.executable)
        if crash:
            assert result.returncode == 17, result.stderr[-2000:]
            assert (tmp_path / name / "checkpoint-2").is_dir() and not (tmp_path / name / "model.safetensors").exists()
            script = CRASH_AFTER_FIRST_CHECKPOINT.format(args=args, crash=False, load_train=LOAD_TRAIN)
            result = run_script(script, tmp_path, sys.executable)
            assert "Resuming from" in result.stdout + result.stderr
        assert result.returncode == 0, result.stderr[-2000:]
        finals[name] = load_file(tmp_path / name / "model.safetensors")
    for key, value in finals["uninterrupted"].items():
        torch.testing.assert_close(finals["resumed"][key], value, rtol=0, atol=0)


SAVE_RANK_WEIGHTS = """
    import torch.distributed as dist
    from safetensors.torch import save_file
    from transformers import TrainerCallback
    {load_train}

    class SaveRankWeights(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):
            weights = {{k: v.detach().contiguous() for k, v in model.named_parameters()}}
            save_file(weights, f"rank{{dist.get_rank()}}.safetensors")

    train.main({args!r}, callbacks=[SaveRankWeights()])
"""


LAUNCHERS = {
    "torchrun": ["torchrun", "--standalone", "--nproc_per_node", "2"],
    # accelerate's multi-process launcher also serves CPUs; the script's --use_cpu picks gloo.
    "accelerate": ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"],
}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_two_processes_train_the_same_weights(launcher, tiny_config, tmp_path):
    """DDP on CPU (gloo): every parameter is the same on both ranks. BatchNorm running statistics are per rank
    between DDP's buffer broadcasts (as for any BatchNorm model); the saved checkpoint holds rank 0's."""
    output_dir = tmp_path / "ddp"
    args = quick_args(tiny_config, output_dir, "--max_steps", "3", "--ddp_backend", "gloo", "--eval_strategy", "no")
    command = [str(Path(sys.executable).parent / LAUNCHERS[launcher][0]), *LAUNCHERS[launcher][1:]]
    result = run_script(SAVE_RANK_WEIGHTS.format(args=args, load_train=LOAD_TRAIN), tmp_path, *command)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and len(ranks[0]) > 0
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    state = json.loads((output_dir / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert state["global_step"] == 3 and losses and all(torch.isfinite(torch.tensor(losses)))
    run = json.loads((output_dir / "training_run.json").read_text())
    assert "2 process(es)" in run["machine"] and run["batch_size"] == 16
