"""Size and cost of a configuration: parameter counts and analytic FLOPs per image."""

import torch

from .configuration_loopy import LoopyConfig
from .modeling_loopy import LoopyForImageClassification


def count_parameters(config: LoopyConfig, include_batch_norm_statistics: bool = False) -> int:
    """Parameters of `LoopyForImageClassification(config)`.

    With `include_batch_norm_statistics=True` the BatchNorm running mean and variance count too, as in the paper
    authors' logs (their vanilla model: 71,705).
    """
    with torch.device("meta"):
        model = LoopyForImageClassification(config)
    total = sum(p.numel() for p in model.parameters())
    if include_batch_norm_statistics:
        total += sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    return total


def _conv_flops(config: LoopyConfig, in_channels: int, out_channels: list[int]) -> int:
    """2 x multiply-accumulates of a chain of same-padding convs over an `image_size` x `image_size` map."""
    channels = [in_channels, *out_channels]
    pixels = config.image_size**2
    return sum(2 * c_in * c_out * config.kernel_size**2 * pixels for c_in, c_out in zip(channels, channels[1:]))


def count_flops(config: LoopyConfig, num_unrolls: int | None = None) -> int:
    """Forward FLOPs for one image: 2 x the multiply-accumulates of every conv and of the classifier.

    BatchNorm, activations and merges are elementwise and left out (under 1% here). The loop body runs
    `num_unrolls` times (default `config.num_unrolls`), the loop path between unrolls `num_unrolls - 1` times.
    """
    num_unrolls = config.num_unrolls if num_unrolls is None else num_unrolls
    start, end = config.loop_span
    sizes = config.hidden_sizes
    before = _conv_flops(config, config.num_channels, sizes[:start])
    body = _conv_flops(config, config.loop_input_channels, sizes[start : end + 1])
    path = _conv_flops(config, sizes[end], config.loop_hidden_sizes)
    after = _conv_flops(config, sizes[end], sizes[end + 1 :])
    features = sizes[-1] * (config.image_size**2 if config.head == "flatten" else 1)
    head = 2 * features * config.num_labels
    return before + num_unrolls * body + (num_unrolls - 1) * path + after + head
