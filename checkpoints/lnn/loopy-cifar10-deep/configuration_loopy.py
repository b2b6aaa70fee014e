"""Loopy Neural Network configuration.

This file is copied next to every saved checkpoint (``trust_remote_code``), so it imports
only installed packages.
"""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig
from transformers.activations import ACT2FN


COMPOSITIONS = ("add", "multiply")
NORMALIZATIONS = ("batch_norm", "none")
HEADS = ("flatten", "global_avg_pool")


@strict
class LoopyConfig(PreTrainedConfig):
    r"""
    Configuration of a Loopy Neural Network (LNN): a stack of conv layers with one feedback loop that
    carries the output of a deeper layer back to the input of an earlier one, unrolled `num_unrolls`
    times with shared weights (Caswell, Shen & Wang, "Loopy Neural Nets", 2016).

    Every conv layer is `kernel_size` conv (stride 1, same padding) -> BatchNorm (optional) -> activation.
    The loop body is layers `loop_start_layer..loop_end_layer` (inclusive). Unroll 1 runs the body on its
    input `h`; unroll t > 1 runs it on `merge(h, loop_layers(out_{t-1}))`, where merge is `h + o` or `h * o`.
    Layers before the body run once, layers after it run once on the last unroll's output, then the head.

    Args:
        num_channels (`int`, defaults to 3): channels of the input image.
        image_size (`int`, defaults to 32): input height and width; the `flatten` head needs exactly this size.
        hidden_sizes (`list[int]`, defaults to `(64, 64, 64, 64, 3)`): output channels of each conv layer.
        kernel_size (`int`, defaults to 3): odd kernel size of every conv layer (padding keeps the spatial size).
        normalization (`str`, defaults to `"batch_norm"`): `"batch_norm"` or `"none"`.
        hidden_act (`str`, defaults to `"relu"`): activation after every conv layer (a key of `ACT2FN`).
        loop_start_layer (`int`, defaults to 0): first layer inside the loop, where the loop re-enters.
        loop_end_layer (`int`, defaults to -1): last layer inside the loop, whose output the loop carries back.
            Negative values count from the end, as in Python.
        composition (`str`, defaults to `"add"`): how the loop output joins the re-entered tensor,
            `"add"` (elementwise sum) or `"multiply"` (elementwise product).
        loop_hidden_sizes (`list[int]`, defaults to `()`): output channels of the optional conv layers on the loop
            path (run between unrolls). The last one (or the loop body's output, without loop layers) must have as
            many channels as the tensor the loop re-enters, or 1 (broadcast over channels).
        num_unrolls (`int`, defaults to 1): times the loop body runs (k). With 1 the loop is never used.
        share_conv_weights (`bool`, defaults to `True`): whether all unrolls use the same conv weights. `False` gives
            the authors' untied "deep" graph: its own conv layers per unroll, merges kept.
        share_batch_norm (`bool`, defaults to `False`): whether unrolls share one BatchNorm per layer. By default each
            unroll has its own (scale, shift and running statistics), as in the authors' code.
        head (`str`, defaults to `"flatten"`): `"flatten"` (the paper: flatten -> linear) or `"global_avg_pool"`
            (average over space -> linear; accepts any image size).
        batch_norm_eps (`float`, defaults to 1e-5): BatchNorm epsilon.

    Example:

    ```python
    >>> from loopy_hf import LoopyConfig, LoopyForImageClassification
    >>> config = LoopyConfig(hidden_sizes=[64, 64, 3], num_unrolls=3, num_labels=10)
    >>> model = LoopyForImageClassification(config)
    ```
    """

    model_type = "loopy"

    num_channels: int = 3
    image_size: int = 32
    hidden_sizes: list[int] | tuple[int, ...] = (64, 64, 64, 64, 3)
    kernel_size: int = 3
    normalization: str = "batch_norm"
    hidden_act: str = "relu"
    loop_start_layer: int = 0
    loop_end_layer: int = -1
    composition: str = "add"
    loop_hidden_sizes: list[int] | tuple[int, ...] = ()
    num_unrolls: int = 1
    share_conv_weights: bool = True
    share_batch_norm: bool = False
    head: str = "flatten"
    batch_norm_eps: float = 1e-5

    def __post_init__(self, **kwargs):
        self.hidden_sizes = list(self.hidden_sizes)
        self.loop_hidden_sizes = list(self.loop_hidden_sizes)
        # Raise plain ValueErrors here: at construction and when `from_pretrained` reads a config.json.
        check_loopy_config(self)
        super().__post_init__(**kwargs)

    def validate_loopy_architecture(self):
        """Re-checks the fields (`@strict` runs this before every save), e.g. after they were edited."""
        check_loopy_config(self)

    @property
    def num_layers(self) -> int:
        return len(self.hidden_sizes)

    @property
    def loop_span(self) -> tuple[int, int]:
        """`(start, end)` indices of the loop body, both non-negative and inclusive."""
        return self.loop_start_layer % self.num_layers, self.loop_end_layer % self.num_layers

    @property
    def loop_input_channels(self) -> int:
        """Channels of the tensor the loop re-enters (the input of the loop's first layer)."""
        start, _ = self.loop_span
        return self.num_channels if start == 0 else self.hidden_sizes[start - 1]

    @property
    def loop_output_channels(self) -> int:
        """Channels the loop carries back (its last loop layer, or the body's last layer)."""
        _, end = self.loop_span
        return self.loop_hidden_sizes[-1] if self.loop_hidden_sizes else self.hidden_sizes[end]


def _require(condition: bool, field: str, value, allowed: str) -> None:
    if not condition:
        raise ValueError(f"LoopyConfig.{field}={value!r} is invalid: {allowed}.")


def check_loopy_config(config: LoopyConfig) -> None:
    """Raises a `ValueError` naming the field, its value and what is allowed, for any impossible combination."""
    _require(config.num_channels >= 1, "num_channels", config.num_channels, "must be >= 1")
    _require(config.image_size >= 1, "image_size", config.image_size, "must be >= 1")
    _require(len(config.hidden_sizes) >= 1, "hidden_sizes", config.hidden_sizes, "needs at least one conv layer")
    _require(
        all(size >= 1 for size in config.hidden_sizes),
        "hidden_sizes", config.hidden_sizes, "every layer needs >= 1 output channel",
    )
    _require(
        all(size >= 1 for size in config.loop_hidden_sizes),
        "loop_hidden_sizes", config.loop_hidden_sizes, "every loop layer needs >= 1 output channel",
    )
    _require(
        config.kernel_size >= 1 and config.kernel_size % 2 == 1,
        "kernel_size", config.kernel_size, "must be a positive odd number so that padding keeps the spatial size",
    )
    _require(config.normalization in NORMALIZATIONS, "normalization", config.normalization, f"allowed: {NORMALIZATIONS}")
    _require(config.hidden_act in ACT2FN, "hidden_act", config.hidden_act, "allowed: a key of transformers ACT2FN")
    _require(config.composition in COMPOSITIONS, "composition", config.composition, f"allowed: {COMPOSITIONS}")
    _require(config.head in HEADS, "head", config.head, f"allowed: {HEADS}")
    _require(config.num_unrolls >= 1, "num_unrolls", config.num_unrolls, "must be >= 1 (1: the loop is never used)")
    _require(config.batch_norm_eps > 0, "batch_norm_eps", config.batch_norm_eps, "must be > 0")

    n = config.num_layers
    for field in ("loop_start_layer", "loop_end_layer"):
        index = getattr(config, field)
        _require(-n <= index < n, field, index, f"must index one of the {n} conv layers ({-n}..{n - 1})")
    start, end = config.loop_span
    _require(
        start <= end,
        "loop_end_layer", config.loop_end_layer,
        f"the loop leaves from a layer at or after where it re-enters (loop_start_layer={config.loop_start_layer}, "
        f"layer {start}); allowed: {start}..{n - 1}",
    )
    source = "loop_hidden_sizes[-1]" if config.loop_hidden_sizes else f"hidden_sizes[{end}]"
    _require(
        config.loop_output_channels in (config.loop_input_channels, 1),
        "loop_hidden_sizes" if config.loop_hidden_sizes else "hidden_sizes",
        config.loop_hidden_sizes or config.hidden_sizes,
        f"the loop output ({source}={config.loop_output_channels} channels) is combined with the input of layer "
        f"{start}, which has {config.loop_input_channels} channels; allowed: {config.loop_input_channels} or 1",
    )
    _require(
        config.share_conv_weights or not config.share_batch_norm,
        "share_batch_norm", config.share_batch_norm,
        "a BatchNorm shared across unrolls needs shared conv weights; with share_conv_weights=False allowed: False",
    )


__all__ = ["LoopyConfig"]
