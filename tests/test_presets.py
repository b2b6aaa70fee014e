"""Presets: loadable as JSON files and by name, with the parameter counts and FLOPs the project reports."""

import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoConfig

from conftest import REPO_ROOT
from loopy_hf import LoopyConfig, LoopyForImageClassification, count_flops, count_parameters, list_presets, load_preset

PRESETS_DIR = REPO_ROOT / "configs" / "models"

# Trainable parameters, counted by hand: conv 3x3 (9 * c_in * c_out + c_out), BatchNorm (2 * c per copy),
# classifier (features * 10 + 10).
EXPECTED_PARAMETERS = {
    # 1792 + 3 * 36928 + 1731 convs, 4 * 128 + 6 BatchNorm, 30730 classifier
    "vanilla": 145_555,
    # the same plus 4 more BatchNorm copies (5 unrolls): + 4 * 518
    "loopy": 147_627,
    # 1792 + 23 * 36928 + 1731 convs, 24 * 128 + 6 BatchNorm, 30730 classifier
    "deep": 886_675,
    "paper-vanilla": 71_443,
    "paper-loopy": 71_967,
    "paper-deep-untied": 152_869,
    # 1792 + 36928 convs, 256 BatchNorm, loop layer 1731 + 6 * 2 copies, classifier 65536 * 10 + 10
    "paper-add-layer": 696_601,
    "paper-mul-layer": 696_601,
    # 160 + 1160 + 73 convs, 2 * (16 + 8 + 1) per BatchNorm copy, classifier 784 * 10 + 10
    "mnist-k1": 9_293,
    "mnist-k2": 9_343,
    "mnist-k3": 9_393,
}

# The paper authors' logs count BatchNorm running statistics too (PAPER.md).
AUTHORS_LOGGED_PARAMETERS = {"paper-vanilla": 71_705, "paper-loopy": 72_753, "paper-deep-untied": 153_655}


def test_every_preset_file_is_listed():
    assert sorted(p.stem for p in PRESETS_DIR.glob("*.json")) == list_presets()
    assert set(list_presets()) == set(EXPECTED_PARAMETERS)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_preset_parameter_count(name):
    config = load_preset(name)
    model = LoopyForImageClassification(config)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMETERS[name] == count_parameters(config)


@pytest.mark.parametrize("name", sorted(AUTHORS_LOGGED_PARAMETERS))
def test_paper_presets_match_the_authors_logs(name):
    assert count_parameters(load_preset(name), include_batch_norm_statistics=True) == AUTHORS_LOGGED_PARAMETERS[name]


def test_vanilla_and_loopy_differ_only_by_per_unroll_batch_norms():
    vanilla = LoopyForImageClassification(load_preset("vanilla")).state_dict()
    loopy = LoopyForImageClassification(load_preset("loopy")).state_dict()
    extra = set(loopy) - set(vanilla)
    assert set(vanilla) <= set(loopy)
    assert extra and all(".normalization." in key for key in extra)
    assert all(vanilla[key].shape == loopy[key].shape for key in vanilla)


@pytest.mark.parametrize("name", ["vanilla", "paper-loopy", "paper-deep-untied", "paper-mul-layer", "mnist-k3"])
def test_presets_load_as_json_files_and_by_name(name):
    path = PRESETS_DIR / f"{name}.json"
    by_name = load_preset(name).to_dict()
    for loaded in (LoopyConfig.from_json_file(path), LoopyConfig.from_pretrained(path), AutoConfig.from_pretrained(path)):
        assert isinstance(loaded, LoopyConfig)
        assert {k: v for k, v in loaded.to_dict().items() if k != "_name_or_path"} == {
            k: v for k, v in by_name.items() if k != "_name_or_path"
        }


def test_preset_overrides_and_unknown_names():
    assert load_preset("loopy", num_unrolls=3).num_unrolls == 3
    with pytest.raises(ValueError, match="preset='lopy' is unknown; allowed: .*loopy"):
        load_preset("lopy")
    with pytest.raises(ValueError, match="num_unrolls=0"):
        load_preset("loopy", num_unrolls=0)


@pytest.mark.parametrize("name", ["loopy", "paper-add-layer", "paper-deep-untied", "mnist-k2"])
def test_analytic_flops_match_torch_flop_counter(name):
    config = load_preset(name)
    model = LoopyForImageClassification(config).eval()
    pixel_values = torch.randn(1, config.num_channels, config.image_size, config.image_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(pixel_values)
    assert count_flops(config) == counter.get_total_flops()
    assert count_flops(config, num_unrolls=1) < count_flops(config) or config.num_unrolls == 1


def test_readme_preset_table_is_generated():
    """The README table is the output of scripts/preset_table.py, not typed by hand."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "preset_table.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
