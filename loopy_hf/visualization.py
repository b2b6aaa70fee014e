"""What the paper visualizes: guided backpropagation per unroll and the merge-node "attention maps".

Both read the model through module hooks (no copy of the model code): the conv layer of the loop body that
runs once per unroll, and `LoopyMerge`, which runs once per unroll t > 1.
"""

from contextlib import contextmanager

import torch
from torch import nn

from .modeling_loopy import LoopyConvLayer, LoopyForImageClassification


class _GuidedReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden):
        ctx.save_for_backward(hidden)
        return hidden.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (hidden,) = ctx.saved_tensors
        # Guided backpropagation: pass back only positive gradients through positive inputs.
        return grad * (hidden > 0) * (grad > 0)


class GuidedReLU(nn.Module):
    def forward(self, hidden):
        return _GuidedReLUFunction.apply(hidden)


@contextmanager
def guided_relus(model: nn.Module):
    """Every conv layer's ReLU backpropagates the guided way while the context is open."""
    layers = [m for m in model.modules() if isinstance(m, LoopyConvLayer)]
    originals = [layer.activation for layer in layers]
    if not all(isinstance(a, nn.ReLU) for a in originals):
        raise ValueError("guided backpropagation needs hidden_act='relu'")
    for layer in layers:
        layer.activation = GuidedReLU()
    try:
        yield
    finally:
        for layer, activation in zip(layers, originals):
            layer.activation = activation


def loop_layer_copies(model: LoopyForImageClassification, layer: int) -> list[LoopyConvLayer]:
    """The module(s) of conv layer `layer` (index in the whole stack) inside the loop body: one, or one per unroll."""
    start, end = model.config.loop_span
    if not start <= layer <= end:
        raise ValueError(f"layer={layer} is outside the loop body (layers {start}..{end}); allowed: {start}..{end}, "
                         "the layers that run once per unroll")
    return [stack.layers[layer - start] for stack in model.loopy.encoder.loop.body]


def guided_backprop_per_unroll(model: LoopyForImageClassification, pixel_values: torch.Tensor, layer: int,
                               filter_index: int) -> torch.Tensor:
    """Input gradients of the summed activation map of `filter_index` in conv `layer`, at each unroll 1..k.

    Returns `(num_unrolls, batch, channels, height, width)`. BatchNorm runs in eval mode, as in the paper.
    """
    model.eval()
    num_unrolls = model.config.num_unrolls
    outputs = []
    hooks = [copy.register_forward_hook(lambda module, args, output: outputs.append(output))
             for copy in loop_layer_copies(model, layer)]
    gradients = []
    try:
        with guided_relus(model):
            for unroll in range(num_unrolls):
                outputs.clear()
                image = pixel_values.clone().requires_grad_(True)
                model(image, num_unrolls=unroll + 1)
                channels = outputs[unroll].shape[1]
                if not 0 <= filter_index < channels:
                    raise ValueError(f"filter_index={filter_index} is invalid; allowed: 0..{channels - 1}")
                outputs[unroll][:, filter_index].sum().backward()
                gradients.append(image.grad.detach())
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack(gradients)


@torch.no_grad()
def merge_maps(model: LoopyForImageClassification, pixel_values: torch.Tensor) -> torch.Tensor:
    """`merge(x, out_t)` at every unroll t = 2..k: `(num_unrolls - 1, batch, channels, height, width)`."""
    if model.config.num_unrolls < 2:
        raise ValueError(f"num_unrolls={model.config.num_unrolls}: the loop never merges; allowed: a model with k >= 2")
    model.eval()
    merged = []
    hook = model.loopy.encoder.loop.merge.register_forward_hook(lambda module, args, output: merged.append(output))
    try:
        model(pixel_values)
    finally:
        hook.remove()
    return torch.stack(merged)


def min_max_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Rescales each image (last three dimensions) to 0..255, as the paper displays gradients and maps."""
    flat = images.flatten(-3)
    low, high = flat.min(-1, keepdim=True).values, flat.max(-1, keepdim=True).values
    scaled = (flat - low) / (high - low).clamp(min=1e-12) * 255
    return scaled.round().to(torch.uint8).view(images.shape)
