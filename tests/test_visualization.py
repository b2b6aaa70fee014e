"""Guided backpropagation per unroll and merge maps, read through hooks."""

import pytest
import torch
from torch import nn

from conftest import DATA_DIR, load_script
from loopy_hf import LoopyConfig, LoopyForImageClassification, save_checkpoint
from loopy_hf.visualization import guided_backprop_per_unroll, merge_maps, min_max_to_uint8


def tiny(**overrides) -> LoopyForImageClassification:
    config = LoopyConfig(hidden_sizes=[6, 5, 3], num_unrolls=3, image_size=8, num_labels=4, **overrides)
    return LoopyForImageClassification(config).eval()


def test_first_unroll_of_the_first_layer_is_the_plain_gradient():
    """With one ReLU between input and objective and an upstream gradient of 1, guided equals plain backprop."""
    model = tiny()
    pixel_values = torch.randn(2, 3, 8, 8)
    guided = guided_backprop_per_unroll(model, pixel_values, layer=0, filter_index=2)
    assert guided.shape == (3, 2, 3, 8, 8)
    image = pixel_values.clone().requires_grad_(True)
    model.loopy.encoder.loop.body[0].layers[0](image)[:, 2].sum().backward()
    torch.testing.assert_close(guided[0], image.grad)
    assert not torch.allclose(guided[0], guided[2]), "later unrolls see the loop, so their gradients differ"
    assert all(isinstance(layer.activation, nn.ReLU) for layer in model.loopy.encoder.loop.body[0].layers)


def test_guided_backprop_works_for_untied_weights_and_rejects_layers_outside_the_loop():
    model = LoopyForImageClassification(LoopyConfig(hidden_sizes=[4, 6, 3], loop_start_layer=1, loop_end_layer=1,
                                                    loop_hidden_sizes=[4], num_unrolls=2, image_size=8,
                                                    share_conv_weights=False)).eval()
    assert guided_backprop_per_unroll(model, torch.randn(1, 3, 8, 8), layer=1, filter_index=0).shape[0] == 2
    with pytest.raises(ValueError, match="layer=0 is outside the loop body"):
        guided_backprop_per_unroll(model, torch.randn(1, 3, 8, 8), layer=0, filter_index=0)
    with pytest.raises(ValueError, match="filter_index=9 is invalid"):
        guided_backprop_per_unroll(model, torch.randn(1, 3, 8, 8), layer=1, filter_index=9)


def test_merge_maps_are_the_merged_tensors():
    for composition in ("add", "multiply"):
        model = tiny(composition=composition)
        pixel_values = torch.randn(2, 3, 8, 8)
        maps = merge_maps(model, pixel_values)
        hidden = model(pixel_values, output_hidden_states=True).hidden_states
        expected = [pixel_values + h if composition == "add" else pixel_values * h for h in hidden[:-1]]
        torch.testing.assert_close(maps, torch.stack(expected))


def test_min_max_rescales_each_image_to_the_full_range():
    images = min_max_to_uint8(torch.randn(2, 3, 3, 4, 4))
    assert images.dtype == torch.uint8
    assert images.flatten(-3).amin(-1).eq(0).all() and images.flatten(-3).amax(-1).eq(255).all()


def test_visualize_script_writes_grids_for_real_images(tmp_path):
    folder = save_checkpoint(LoopyForImageClassification(LoopyConfig(hidden_sizes=[8, 3], num_unrolls=3)),
                             tmp_path / "model")
    visualize = load_script("visualize")
    for extra, name in (([], "guided.png"), (["--merge_maps"], "merge.png")):
        output = visualize.main(["--model", str(folder), "--dataset_name", str(DATA_DIR / "cifar10"),
                                 "--images", "0", "1", "--output", str(tmp_path / name), *extra])
        assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
