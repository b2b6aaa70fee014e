"""The committed headline checkpoints (checkpoints/lnn/*): loadable, documented, and as accurate as their cards say."""

import json

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoImageProcessor, AutoModelForImageClassification

import loopy_hf  # noqa: F401 - registers the loopy classes with the Auto classes
from conftest import REPO_ROOT

CHECKPOINTS = REPO_ROOT / "checkpoints" / "lnn"
REPOS = {"loopy-cifar10": 5, "loopy-cifar10-vanilla": 1, "loopy-cifar10-deep": 1}


@pytest.mark.parametrize("repo", REPOS)
def test_published_checkpoint_matches_its_card_on_real_test_images(repo, cifar10_test_rows):
    folder = CHECKPOINTS / repo
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    assert model.config.num_unrolls == REPOS[repo]
    evaluation = json.loads((folder / "evaluation_results.json").read_text())
    assert evaluation["num_samples"] == 10_000 and evaluation["split"] == "test"
    card = ModelCard.load(folder / "README.md")
    assert card.data.eval_results[0].metric_value == round(evaluation["accuracy"], 4)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-classification"
    processor = AutoImageProcessor.from_pretrained(folder)
    with torch.no_grad():
        logits = model(processor([r["img"] for r in cifar10_test_rows], return_tensors="pt")["pixel_values"]).logits
    labels = torch.tensor([r["label"] for r in cifar10_test_rows])
    # The first 16 test images: the checkpoint's own evaluation files say >60% over 10,000; demand clearly above chance.
    assert (logits.argmax(-1) == labels).float().mean() >= 0.4


@pytest.mark.parametrize("repo", REPOS)
def test_published_remote_code_is_the_package_code(repo):
    # The code files are in each folder so that `trust_remote_code` works without loopy_hf; they must not drift.
    for name in ("modeling_loopy.py", "configuration_loopy.py"):
        assert (CHECKPOINTS / repo / name).read_text() == (REPO_ROOT / "loopy_hf" / name).read_text()
