"""Publishing and loading through the Hub API: the real huggingface_hub / transformers clients against the loopback
server (loopy_hf.hub_server), in subprocesses configured with HF_ENDPOINT like a user's shell."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from datasets import ClassLabel, Features, Image, load_dataset
from safetensors.torch import save_file

from conftest import DATA_DIR, REPO_ROOT, load_script
from loopy_hf.hub_server import HubServer

TOKEN = "hf_loopbacksecret0123456789"
CIFAR = str(DATA_DIR / "cifar10")
train = load_script("train")


@pytest.fixture(scope="module")
def hub():
    with HubServer() as server:
        yield server


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf_home")


def client_env(hub: HubServer, hf_home: Path, **extra) -> dict:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_MODULES_CACHE": str(hf_home / "modules"), "OMP_NUM_THREADS": "1"}
    env.update(extra)
    return env


def run(args: list[str], env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert TOKEN not in result.stdout + result.stderr, "the token must never be printed"
    return result


def run_python(code: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-c", textwrap.dedent(code)], env, cwd)


def script(name: str) -> str:
    return str(REPO_ROOT / "scripts" / f"{name}.py")


def train_tiny(output_dir: Path, num_unrolls: int) -> Path:
    config = output_dir.parent / f"{output_dir.name}.json"
    config.write_text(json.dumps({"model_type": "loopy", "hidden_sizes": [8, 3], "num_unrolls": num_unrolls}))
    train.main([
        str(REPO_ROOT / "configs" / "train" / "paper.yaml"), "--config_name", str(config), "--dataset_name", CIFAR,
        "--output_dir", str(output_dir), "--validation_size", "100", "--max_train_samples", "64",
        "--max_eval_samples", "32", "--per_device_train_batch_size", "16", "--max_steps", "4",
        "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
        "--disable_tqdm", "true", "--use_cpu", "true", "--dataloader_pin_memory", "false",
    ])
    return output_dir


@pytest.fixture(scope="module")
def published(hub, hub_home, tmp_path_factory):
    """Two trained tiny checkpoints pushed with scripts/push_to_hub.py: lnn/tiny-loopy (k = 3), lnn/tiny-plain."""
    root = tmp_path_factory.mktemp("published")
    folders = {"lnn/tiny-loopy": train_tiny(root / "loopy", 3), "lnn/tiny-plain": train_tiny(root / "plain", 1)}
    for repo_id, folder in folders.items():
        result = run([sys.executable, script("push_to_hub"), str(folder), "--repo_id", repo_id],
                     client_env(hub, hub_home))
        assert result.returncode == 0, result.stderr[-3000:]
        assert "pushed" in result.stdout
    return folders


def head(hub: HubServer, repo_id: str, ref: str = "main") -> str:
    return hub.state.repos[("model", repo_id)].refs[ref]


def reference_io(folder: Path, path: Path) -> Path:
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        save_file({"pixel_values": pixel_values, "logits": model(pixel_values).logits}, path)
    return path


def test_push_publishes_exactly_the_checkpoint_and_its_card(hub, published):
    files = set(hub.state.repos[("model", "lnn/tiny-loopy")].commits[head(hub, "lnn/tiny-loopy")].files)
    assert {"config.json", "model.safetensors", "configuration_loopy.py", "modeling_loopy.py",
            "preprocessor_config.json", "README.md", "training_run.json", "training_curves.png"} <= files
    assert not any(name.startswith("checkpoint-") or name.endswith((".bin", ".pt", ".pth")) for name in files)


def test_pull_gives_identical_logits_card_and_pipeline(hub, hub_home, published, tmp_path, cifar10_test_rows):
    io = reference_io(published["lnn/tiny-loopy"], tmp_path / "io.safetensors")
    images = tmp_path / "images"
    images.mkdir()
    for i, row in enumerate(cifar10_test_rows[:3]):
        row["img"].save(images / f"{i}.png")
    result = run_python(f"""
        import torch, loopy_hf
        from pathlib import Path
        from huggingface_hub import ModelCard
        from PIL import Image
        from safetensors.torch import load_file
        from transformers import AutoModelForImageClassification, pipeline
        io = load_file({str(io)!r})
        model = AutoModelForImageClassification.from_pretrained("lnn/tiny-loopy").eval()
        assert torch.equal(model(io["pixel_values"]).logits, io["logits"])
        card = ModelCard.load("lnn/tiny-loopy")
        assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-classification"
        assert "Loopy Neural Network" in card.text and "Caswell" in card.text
        classifier = pipeline("image-classification", model="lnn/tiny-loopy")
        predictions = classifier([Image.open(p) for p in sorted(Path({str(images)!r}).iterdir())])
        assert len(predictions) == 3 and all(p[0]["label"] in model.config.id2label.values() for p in predictions)
        print("ok")
    """, client_env(hub, hub_home), tmp_path)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_branches_and_pull_requests_load_by_revision(hub, hub_home, published, tmp_path):
    folder = published["lnn/tiny-plain"]
    env = client_env(hub, hub_home)
    branch = run([sys.executable, script("push_to_hub"), str(folder), "--repo_id", "lnn/tiny-loopy",
                  "--revision", "plain-variant"], env)
    assert branch.returncode == 0, branch.stderr[-3000:]
    pr = run([sys.executable, script("push_to_hub"), str(folder), "--repo_id", "lnn/tiny-loopy", "--create_pr"], env)
    assert pr.returncode == 0 and "refs/pr/1" in pr.stdout, pr.stderr[-3000:]
    io = reference_io(folder, tmp_path / "io.safetensors")
    result = run_python(f"""
        import torch, loopy_hf
        from safetensors.torch import load_file
        from transformers import AutoModelForImageClassification
        io = load_file({str(io)!r})
        for revision in ("plain-variant", "refs/pr/1"):
            model = AutoModelForImageClassification.from_pretrained("lnn/tiny-loopy", revision=revision).eval()
            assert model.config.num_unrolls == 1, revision
            assert torch.equal(model(io["pixel_values"]).logits, io["logits"]), revision
        main = AutoModelForImageClassification.from_pretrained("lnn/tiny-loopy")
        assert main.config.num_unrolls == 3
        print("ok")
    """, env, tmp_path)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_remote_code_loads_from_the_hub_without_the_package(hub, hub_home, published, tmp_path):
    io = reference_io(published["lnn/tiny-loopy"], tmp_path / "io.safetensors")
    result = run_python(f"""
        import sys
        sys.modules["loopy_hf"] = None
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForImageClassification
        io = load_file({str(io)!r})
        model = AutoModelForImageClassification.from_pretrained("lnn/tiny-loopy", trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert torch.equal(model(io["pixel_values"]).logits, io["logits"])
        print("ok")
    """, client_env(hub, hub_home), tmp_path)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_evaluate_script_against_hub_ids_and_push_results(hub, hub_home, published, tmp_path):
    output = tmp_path / "eval" / "results.json"
    result = run([sys.executable, script("evaluate"), "--model", "lnn/tiny-loopy", "--model", "lnn/tiny-plain",
                  "--dataset_name", CIFAR, "--split", "test", "--max_samples", "96", "--batch_size", "32",
                  "--output_file", str(output), "--push_results"], client_env(hub, hub_home))
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    loopy, plain = results
    assert loopy["commit"] and loopy["commit"] == head_before_push_results(hub, loopy)
    assert loopy["num_samples"] == 96 and loopy["split"] == "test" and loopy["dataset"] == "uoft-cs/cifar10"
    low, high = loopy["accuracy_ci95"]
    assert low <= loopy["accuracy"] <= high
    assert [k for k, _ in loopy["accuracy_per_unroll"]] == [1, 2, 3] and plain["accuracy_per_unroll"] == []
    assert loopy["accuracy_per_unroll"][-1][1] == pytest.approx(loopy["accuracy"])
    assert sum(map(sum, loopy["confusion_matrix"])) == 96
    assert {"transformers", "torch", "datasets", "evaluate"} <= set(loopy["versions"])
    folder = output.parent / "lnn--tiny-loopy"
    assert (folder / "confusion_matrix.png").is_file() and (folder / "accuracy_per_unroll.png").is_file()
    assert "| `lnn/tiny-loopy` |" in output.with_suffix(".md").read_text()

    card = run_python("""
        from huggingface_hub import ModelCard
        for repo in ("lnn/tiny-loopy", "lnn/tiny-plain"):
            result = ModelCard.load(repo).data.eval_results[0]
            print(repo, result.dataset_split, result.metric_type, result.metric_value)
    """, client_env(hub, hub_home), tmp_path)
    assert card.returncode == 0, card.stderr[-3000:]
    assert f"lnn/tiny-loopy test accuracy {round(loopy['accuracy'], 4)}" in card.stdout
    assert f"lnn/tiny-plain test accuracy {round(plain['accuracy'], 4)}" in card.stdout


def head_before_push_results(hub: HubServer, result: dict) -> str:
    """The commit evaluated: the parent of the model-index commit that --push_results added on main."""
    repo = hub.state.repos[("model", result["model"])]
    return repo.commits[repo.refs["main"]].parent


def test_repush_of_an_unchanged_folder_makes_no_commit(hub, hub_home, published):
    push = [sys.executable, script("push_to_hub"), str(published["lnn/tiny-plain"]), "--repo_id", "lnn/repush"]
    first = run(push, client_env(hub, hub_home))
    assert first.returncode == 0 and "pushed" in first.stdout, first.stderr[-3000:]
    commits = len(hub.state.repos[("model", "lnn/repush")].commits)
    again = run(push, client_env(hub, hub_home))
    assert again.returncode == 0 and "no changes" in again.stdout, again.stdout + again.stderr[-2000:]
    assert len(hub.state.repos[("model", "lnn/repush")].commits) == commits


def test_server_error_mid_push_is_reported_and_changes_nothing(hub, hub_home, published, tmp_path):
    folder = published["lnn/tiny-loopy"]
    (folder / "training_run.json").write_text((folder / "training_run.json").read_text().replace("paper", "paper "))
    before = dict(hub.state.repos[("model", "lnn/tiny-loopy")].refs)
    hub.state.fail_next_commits = 1
    result = run([sys.executable, script("push_to_hub"), str(folder), "--repo_id", "lnn/tiny-loopy"],
                 client_env(hub, hub_home))
    assert result.returncode == 1
    assert "rejected by the Hub (HTTP 500)" in result.stderr and "simulated failure" in result.stderr
    assert "Traceback" not in result.stderr
    assert hub.state.repos[("model", "lnn/tiny-loopy")].refs == before


def test_dry_run_builds_the_folder_without_a_network(published, tmp_path):
    target = tmp_path / "dry"
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}
    result = run([sys.executable, script("push_to_hub"), str(published["lnn/tiny-loopy"]), "--repo_id",
                  "lnn/tiny-loopy", "--dry_run", str(target)], env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"README.md", "model.safetensors", "config.json", "modeling_loopy.py"} <= {p.name for p in target.iterdir()}
    assert "# lnn/tiny-loopy:" in (target / "README.md").read_text()


def five_class_cifar(root: Path, per_split: dict[str, int]) -> str:
    """Real CIFAR-10 images of airplane, automobile, bird, cat and deer, as a local dataset in the Hub's layout."""
    names = ["airplane", "automobile", "bird", "cat", "deer"]
    features = Features({"img": Image(), "label": ClassLabel(names=names)})
    for split, count in per_split.items():
        rows = load_dataset(CIFAR, split=split).filter(lambda label: label < 5, input_columns="label")
        rows = rows.select(range(count)).cast(features)
        rows.to_parquet(root / f"{split}-00000-of-00001.parquet")
    return str(root)


def test_fine_tune_from_the_hub_on_a_new_label_set_beats_chance(hub, hub_home, published, tmp_path):
    dataset = five_class_cifar(tmp_path / "cifar5", {"train": 3000, "test": 500})
    env = client_env(hub, hub_home)
    finetuned = tmp_path / "finetuned"
    result = run([sys.executable, script("train"), str(REPO_ROOT / "configs" / "train" / "cpu.yaml"),
                  "--model_name_or_path", "lnn/tiny-plain", "--ignore_mismatched_sizes", "true",
                  "--dataset_name", dataset, "--validation_size", "250", "--output_dir", str(finetuned),
                  "--num_train_epochs", "2", "--per_device_train_batch_size", "32", "--disable_tqdm", "true"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((finetuned / "config.json").read_text())["id2label"]["4"] == "deer"
    output = tmp_path / "eval" / "results.json"
    evaluation = run([sys.executable, script("evaluate"), "--model", str(finetuned), "--dataset_name", dataset,
                      "--split", "test", "--output_file", str(output)], env)
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    accuracy = json.loads(output.read_text())[0]["accuracy"]
    assert accuracy > 0.30, f"5-class accuracy {accuracy:.3f} is not above chance (0.20) by a clear margin"


def test_cached_checkpoint_loads_offline_after_the_server_stops(hub_home, tmp_path, published):
    folder = published["lnn/tiny-plain"]
    io = reference_io(folder, tmp_path / "io.safetensors")
    home = tmp_path / "home"
    with HubServer() as server:
        env = client_env(server, home)
        assert run([sys.executable, script("push_to_hub"), str(folder), "--repo_id", "lnn/cached"], env).returncode == 0
        warm = run_python("""
            import loopy_hf
            from transformers import AutoImageProcessor, AutoModelForImageClassification
            AutoModelForImageClassification.from_pretrained("lnn/cached")
            AutoImageProcessor.from_pretrained("lnn/cached")
        """, env, tmp_path)
        assert warm.returncode == 0, warm.stderr[-3000:]
    offline = run_python(f"""
        import torch, loopy_hf
        from safetensors.torch import load_file
        from transformers import AutoModelForImageClassification, AutoImageProcessor
        io = load_file({str(io)!r})
        model = AutoModelForImageClassification.from_pretrained("lnn/cached").eval()
        AutoImageProcessor.from_pretrained("lnn/cached")
        assert torch.equal(model(io["pixel_values"]).logits, io["logits"])
        print("ok")
    """, client_env(server, home, HF_HUB_OFFLINE="1"), tmp_path)
    assert offline.returncode == 0 and "ok" in offline.stdout, offline.stderr[-3000:]
