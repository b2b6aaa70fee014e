"""Loopy Neural Network models: `LoopyModel` and `LoopyForImageClassification`.

This file is copied next to every saved checkpoint (``trust_remote_code``), so it imports
only installed packages and its sibling `configuration_loopy`.
"""

import threading
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndNoAttention, ImageClassifierOutputWithNoAttention

from .configuration_loopy import LoopyConfig


_recomputing = threading.local()


@contextmanager
def _batch_norm_statistics_frozen():
    """Active while gradient checkpointing recomputes an unroll in the backward pass."""
    _recomputing.active = True
    try:
        yield
    finally:
        _recomputing.active = False


def _checkpoint_contexts():
    return nullcontext(), _batch_norm_statistics_frozen()


class LoopyBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose running statistics are updated once per forward, even under gradient checkpointing.

    The recomputation normalizes with the same batch statistics but leaves the running ones alone; without
    this, every checkpointed unroll would move its running mean and variance twice per step.
    """

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        if self.training and getattr(_recomputing, "active", False):
            # Momentum 0 keeps the running statistics as they are, with the same op (and saved tensors) as forward.
            return F.batch_norm(
                hidden_state, self.running_mean, self.running_var, self.weight, self.bias, True, 0.0, self.eps
            )
        return super().forward(hidden_state)


class LoopyConvLayer(nn.Module):
    """conv (stride 1, same padding) -> BatchNorm -> activation, with one BatchNorm per use when not shared."""

    def __init__(self, config: LoopyConfig, in_channels: int, out_channels: int, num_norms: int = 1):
        super().__init__()
        self.convolution = nn.Conv2d(in_channels, out_channels, config.kernel_size, padding=config.kernel_size // 2)
        self.normalization = (
            nn.ModuleList(LoopyBatchNorm2d(out_channels, eps=config.batch_norm_eps) for _ in range(num_norms))
            if config.normalization == "batch_norm"
            else None
        )
        self.activation = ACT2FN[config.hidden_act]

    def forward(self, hidden_state: torch.Tensor, norm_index: int = 0) -> torch.Tensor:
        hidden_state = self.convolution(hidden_state)
        if self.normalization is not None:
            hidden_state = self.normalization[norm_index](hidden_state)
        return self.activation(hidden_state)


class LoopyStack(nn.Module):
    """Conv layers applied in order; `norm_index` picks each layer's BatchNorm for this use."""

    def __init__(self, config: LoopyConfig, in_channels: int, out_channels: list[int], num_norms: int = 1):
        super().__init__()
        channels = [in_channels, *out_channels]
        self.layers = nn.ModuleList(
            LoopyConvLayer(config, channels[i], channels[i + 1], num_norms) for i in range(len(out_channels))
        )

    def forward(self, hidden_state: torch.Tensor, norm_index: int = 0) -> torch.Tensor:
        for layer in self.layers:
            hidden_state = layer(hidden_state, norm_index)
        return hidden_state


class LoopyMerge(nn.Module):
    """Where the loop re-enters: `merge(h, o)` is `h + o` or `h * o`.

    Its outputs are the paper's "attention maps": a forward hook on this module sees one per unroll t > 1.
    """

    def __init__(self, composition: str):
        super().__init__()
        self.composition = composition

    def forward(self, loop_input: torch.Tensor, loop_output: torch.Tensor) -> torch.Tensor:
        if self.composition == "add":
            return loop_input + loop_output
        return loop_input * loop_output

    def extra_repr(self) -> str:
        return f"composition={self.composition!r}"


class LoopyUnroll(GradientCheckpointingLayer):
    """One unroll of the loop: the loop path from the previous unroll, the merge, then the loop body.

    Conv weights are the same modules in every unroll (unless `share_conv_weights=False`, which gives each unroll
    its own copy), so autograd adds their gradients over unrolls. BatchNorms are chosen per unroll.
    """

    def __init__(self, config: LoopyConfig):
        super().__init__()
        start, end = config.loop_span
        body_sizes = config.hidden_sizes[start : end + 1]
        k = config.num_unrolls
        self.share_conv_weights = config.share_conv_weights
        # Tied weights keep one BatchNorm per use unless shared; untied copies each have their own anyway.
        self.per_use_norms = config.share_conv_weights and not config.share_batch_norm
        num_norms = k if self.per_use_norms else 1
        # The loop path runs between unrolls: k - 1 times (never when k = 1, but its layers still exist).
        body_copies, path_copies = (1, 1) if config.share_conv_weights else (k, max(k - 1, 1))

        self.body = nn.ModuleList(
            LoopyStack(config, config.loop_input_channels, body_sizes, num_norms) for _ in range(body_copies)
        )
        self.loop_path = nn.ModuleList(
            LoopyStack(config, body_sizes[-1], config.loop_hidden_sizes, max(num_norms - 1, 1))
            for _ in range(path_copies)
        )
        self.merge = LoopyMerge(config.composition)

    def _select(self, stacks: nn.ModuleList, use: int) -> tuple[LoopyStack, int]:
        """The stack for this use (its own copy when untied) and the index of the BatchNorm to apply."""
        if not self.share_conv_weights:
            return stacks[use], 0
        return stacks[0], use if self.per_use_norms else 0

    def forward(self, loop_input: torch.Tensor, previous_output: torch.Tensor | None, unroll: int) -> torch.Tensor:
        hidden_state = loop_input
        if previous_output is not None:
            path, norm_index = self._select(self.loop_path, unroll - 1)
            hidden_state = self.merge(loop_input, path(previous_output, norm_index))
        body, norm_index = self._select(self.body, unroll)
        return body(hidden_state, norm_index)


class LoopyEncoder(nn.Module):
    """Layers before the loop (run once), the unrolled loop, then the layers after it (run once)."""

    def __init__(self, config: LoopyConfig):
        super().__init__()
        start, end = config.loop_span
        sizes = config.hidden_sizes
        self.before_loop = LoopyStack(config, config.num_channels, sizes[:start])
        self.loop = LoopyUnroll(config)
        self.after_loop = LoopyStack(config, sizes[end], sizes[end + 1 :])

    def forward(
        self, pixel_values: torch.Tensor, num_unrolls: int, output_hidden_states: bool
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        loop_input = self.before_loop(pixel_values)
        loop_output = None
        unroll_outputs = () if output_hidden_states else None
        for unroll in range(num_unrolls):
            loop_output = self.loop(loop_input, loop_output, unroll)
            if output_hidden_states:
                unroll_outputs += (loop_output,)
        return self.after_loop(loop_output), unroll_outputs


class LoopyPreTrainedModel(PreTrainedModel):
    config: LoopyConfig
    config_class = LoopyConfig
    base_model_prefix = "loopy"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["LoopyEncoder"]

    def _set_gradient_checkpointing(self, enable: bool = True, gradient_checkpointing_func=None, every_n_layers=1):
        """Checkpoint each unroll; the recomputation must not update BatchNorm running statistics a second time."""
        checkpoint_func = gradient_checkpointing_func or torch.utils.checkpoint.checkpoint
        if getattr(checkpoint_func, "keywords", {}).get("use_reentrant", False):
            raise ValueError(
                "gradient_checkpointing_kwargs={'use_reentrant': True} is not supported by loopy models; allowed: "
                "use_reentrant=False (the default), which lets BatchNorm statistics be updated once per step"
            )

        def checkpoint_unroll(function, *args, **kwargs):
            return checkpoint_func(function, *args, context_fn=_checkpoint_contexts, **kwargs)

        super()._set_gradient_checkpointing(enable, checkpoint_unroll, every_n_layers)

    def _init_weights(self, module: nn.Module) -> None:
        """The paper's init: Glorot-uniform with ReLU gain for convs, Glorot-uniform for the classifier, zero biases."""
        if isinstance(module, nn.Conv2d):
            init.xavier_uniform_(module.weight, gain=nn.init.calculate_gain("relu"))
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)


class LoopyModel(LoopyPreTrainedModel):
    """The loopy conv stack without a classifier; `pooler_output` holds the features the head reads."""

    def __init__(self, config: LoopyConfig):
        super().__init__(config)
        self.encoder = LoopyEncoder(config)
        self.pooler = nn.Flatten() if config.head == "flatten" else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.post_init()

    @property
    def num_features(self) -> int:
        """Width of `pooler_output`."""
        channels = self.config.hidden_sizes[-1]
        return channels * self.config.image_size**2 if self.config.head == "flatten" else channels

    def forward(
        self,
        pixel_values: torch.Tensor,
        num_unrolls: int | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPoolingAndNoAttention | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`): images.
            num_unrolls (`int`, *optional*): unroll the loop this many times, 1..`config.num_unrolls`
                (anytime inference with fewer unrolls than trained). Defaults to `config.num_unrolls`.
            output_hidden_states (`bool`, *optional*): also return the loop body's output at every unroll.
            return_dict (`bool`, *optional*): return a `ModelOutput` instead of a plain tuple.

        Returns:
            `BaseModelOutputWithPoolingAndNoAttention`: `last_hidden_state` (the last conv layer's output),
            `pooler_output` (the head's features) and, if asked, `hidden_states` (one tensor per unroll).
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        num_unrolls = self._check_num_unrolls(num_unrolls)
        self._check_pixel_values(pixel_values)

        last_hidden_state, hidden_states = self.encoder(pixel_values, num_unrolls, output_hidden_states)
        pooled_output = self.pooler(last_hidden_state)

        if not return_dict:
            return tuple(v for v in (last_hidden_state, pooled_output, hidden_states) if v is not None)
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=last_hidden_state, pooler_output=pooled_output, hidden_states=hidden_states
        )

    def _check_num_unrolls(self, num_unrolls: int | None) -> int:
        if num_unrolls is None:
            return self.config.num_unrolls
        if not 1 <= num_unrolls <= self.config.num_unrolls:
            raise ValueError(
                f"num_unrolls={num_unrolls} is invalid: this model was configured with num_unrolls="
                f"{self.config.num_unrolls}; allowed: 1..{self.config.num_unrolls}"
            )
        return num_unrolls

    def _check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        config = self.config
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values has shape {tuple(pixel_values.shape)}; expected 4 dimensions "
                f"(batch_size, {config.num_channels}, height, width)"
            )
        if pixel_values.shape[1] != config.num_channels:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[1]} channels (shape {tuple(pixel_values.shape)}); this model "
                f"expects num_channels={config.num_channels}. Preprocess images with the checkpoint's image processor."
            )
        height, width = pixel_values.shape[-2:]
        if config.head == "flatten" and (height, width) != (config.image_size, config.image_size):
            raise ValueError(
                f"pixel_values are {height}x{width} images; this model's flatten head expects image_size "
                f"{config.image_size}x{config.image_size}. Resize the images (the checkpoint's image processor does)."
            )


class LoopyForImageClassification(LoopyPreTrainedModel):
    """A loopy network with a linear classifier on the flattened (or pooled) features of its last conv layer."""

    # The loss is a mean over the batch: Trainer must average it over gradient-accumulation steps itself.
    accepts_loss_kwargs = False

    def __init__(self, config: LoopyConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.loopy = LoopyModel(config)
        self.classifier = (
            nn.Linear(self.loopy.num_features, config.num_labels) if config.num_labels > 0 else nn.Identity()
        )
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        num_unrolls: int | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutputWithNoAttention | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`): images.
            labels (`torch.Tensor`, *optional*): class indices of shape `(batch_size,)` (single-label), multi-hot
                floats of shape `(batch_size, num_labels)` (multi-label) or targets (regression); the loss type
                follows `config.problem_type`, inferred when unset.
            num_unrolls (`int`, *optional*): unroll the loop this many times, 1..`config.num_unrolls`.
            output_hidden_states (`bool`, *optional*): also return the loop body's output at every unroll.
            return_dict (`bool`, *optional*): return a `ModelOutput` instead of a plain tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.loopy(
            pixel_values, num_unrolls=num_unrolls, output_hidden_states=output_hidden_states, return_dict=True
        )
        logits = self.classifier(outputs.pooler_output)
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None

        if not return_dict:
            output = tuple(v for v in (logits, outputs.hidden_states) if v is not None)
            return (loss, *output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)

    @torch.no_grad()
    def logits_per_unroll(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits after each unroll 1..k from one forward pass, shape `(num_unrolls, batch_size, num_labels)`.

        Entry t equals `forward(pixel_values, num_unrolls=t + 1).logits` in eval mode (the anytime curve), at the
        cost of one forward pass plus the layers after the loop and the head per unroll.
        """
        outputs = self.loopy(pixel_values, output_hidden_states=True, return_dict=True)
        after_loop, pooler = self.loopy.encoder.after_loop, self.loopy.pooler
        return torch.stack([self.classifier(pooler(after_loop(hidden))) for hidden in outputs.hidden_states])


__all__ = ["LoopyPreTrainedModel", "LoopyModel", "LoopyForImageClassification"]
