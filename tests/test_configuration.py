"""LoopyConfig: every impossible combination is refused with a ValueError naming field, value and what is allowed."""

import json

import pytest
from transformers import AutoConfig

from loopy_hf import LoopyConfig, LoopyForImageClassification

# (overrides, field named in the message, fragment of what is allowed)
INVALID = [
    ({"num_unrolls": 0}, "num_unrolls=0", ">= 1"),
    ({"num_unrolls": -2}, "num_unrolls=-2", ">= 1"),
    ({"hidden_sizes": []}, "hidden_sizes=[]", "at least one conv layer"),
    ({"hidden_sizes": [64, 0, 3]}, "hidden_sizes=[64, 0, 3]", ">= 1 output channel"),
    ({"kernel_size": 4}, "kernel_size=4", "odd"),
    ({"kernel_size": 0}, "kernel_size=0", "odd"),
    ({"composition": "concat"}, "composition='concat'", "'add', 'multiply'"),
    ({"normalization": "layer_norm"}, "normalization='layer_norm'", "'batch_norm', 'none'"),
    ({"head": "attention"}, "head='attention'", "'flatten', 'global_avg_pool'"),
    ({"hidden_act": "swishy"}, "hidden_act='swishy'", "ACT2FN"),
    ({"loop_start_layer": 5}, "loop_start_layer=5", "-5..4"),
    ({"loop_end_layer": 5}, "loop_end_layer=5", "-5..4"),
    ({"loop_end_layer": -6}, "loop_end_layer=-6", "-5..4"),
    ({"loop_start_layer": 3, "loop_end_layer": 1}, "loop_end_layer=1", "allowed: 3..4"),
    ({"hidden_sizes": [64, 64, 64, 64, 5]}, "hidden_sizes=[64, 64, 64, 64, 5]", "allowed: 3 or 1"),
    ({"loop_hidden_sizes": [8, 2]}, "loop_hidden_sizes=[8, 2]", "allowed: 3 or 1"),
    ({"loop_hidden_sizes": [0, 3]}, "loop_hidden_sizes=[0, 3]", ">= 1 output channel"),
    ({"loop_start_layer": 1, "loop_end_layer": 4}, "hidden_sizes=", "allowed: 64 or 1"),
    ({"num_channels": 0}, "num_channels=0", ">= 1"),
    ({"image_size": 0}, "image_size=0", ">= 1"),
    ({"batch_norm_eps": 0.0}, "batch_norm_eps=0.0", "> 0"),
    ({"share_conv_weights": False, "share_batch_norm": True}, "share_batch_norm=True", "allowed: False"),
]


@pytest.mark.parametrize("overrides, field, allowed", INVALID)
def test_invalid_config_raises_at_construction(overrides, field, allowed):
    with pytest.raises(ValueError) as error:
        LoopyConfig(**overrides)
    assert f"LoopyConfig.{field}" in str(error.value)
    assert allowed in str(error.value)


@pytest.mark.parametrize("overrides, field, allowed", INVALID)
def test_invalid_config_json_raises_in_from_pretrained(tmp_path, overrides, field, allowed):
    config_dict = {**LoopyConfig().to_dict(), **overrides}
    (tmp_path / "config.json").write_text(json.dumps(config_dict))
    for load in (LoopyConfig.from_pretrained, AutoConfig.from_pretrained):
        with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
            load(tmp_path)


def test_edited_config_is_rechecked_before_save(tmp_path):
    config = LoopyConfig()
    config.num_unrolls = 0
    with pytest.raises(Exception, match="num_unrolls=0"):
        config.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_valid_combinations_build():
    """Loops between inner layers, broadcast 1-channel loop outputs and untied weights are all allowed."""
    configs = [
        LoopyConfig(hidden_sizes=[8, 6, 8, 4], loop_start_layer=1, loop_end_layer=2, loop_hidden_sizes=[8]),
        LoopyConfig(hidden_sizes=[8, 8, 1], composition="multiply", num_unrolls=3),
        LoopyConfig(hidden_sizes=[8, 3], share_conv_weights=False, num_unrolls=2, head="global_avg_pool"),
        LoopyConfig(hidden_sizes=[3], loop_start_layer=-1, loop_end_layer=-1, normalization="none", kernel_size=5),
    ]
    for config in configs:
        LoopyForImageClassification(config)


def test_config_round_trips_through_json(tmp_path):
    config = LoopyConfig(hidden_sizes=[8, 3], num_unrolls=4, composition="multiply", loop_hidden_sizes=[3])
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, LoopyConfig)
    ignore = {"_name_or_path"}
    assert {k: v for k, v in loaded.to_dict().items() if k not in ignore} == {
        k: v for k, v in config.to_dict().items() if k not in ignore
    }
