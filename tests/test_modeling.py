"""The unrolled loop, checked against a plain reference, plus outputs, anytime inference and input errors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from loopy_hf import LoopyConfig, LoopyForImageClassification, LoopyModel, load_preset

TINY = {"image_size": 8, "num_labels": 5}

# Every mechanism of the paper: sum and product, with and without loop layers, tied and untied,
# per-unroll and shared BatchNorm, a loop between inner layers, broadcast loop outputs, no BatchNorm, GAP head.
SEMANTICS_CASES = {
    "add": dict(hidden_sizes=[6, 5, 3], num_unrolls=3),
    "multiply": dict(hidden_sizes=[6, 5, 3], num_unrolls=3, composition="multiply"),
    "add_loop_layers": dict(hidden_sizes=[6, 5], num_unrolls=3, loop_hidden_sizes=[4, 3]),
    "multiply_loop_layers": dict(hidden_sizes=[6, 5], num_unrolls=3, loop_hidden_sizes=[3], composition="multiply"),
    "untied": dict(hidden_sizes=[6, 5, 3], num_unrolls=3, share_conv_weights=False, loop_hidden_sizes=[3]),
    "shared_batch_norm": dict(hidden_sizes=[6, 5, 3], num_unrolls=3, share_batch_norm=True, loop_hidden_sizes=[3]),
    "inner_loop": dict(hidden_sizes=[4, 6, 5, 7], loop_start_layer=1, loop_end_layer=2, loop_hidden_sizes=[4], num_unrolls=4),
    "broadcast_multiply": dict(hidden_sizes=[6, 1], num_unrolls=2, composition="multiply"),
    "no_norm_gap_head": dict(hidden_sizes=[6, 3], num_unrolls=3, normalization="none", head="global_avg_pool"),
    "kernel_5_gelu": dict(hidden_sizes=[6, 3], num_unrolls=2, kernel_size=5, hidden_act="gelu"),
}


def tiny_model(**overrides) -> LoopyForImageClassification:
    return LoopyForImageClassification(LoopyConfig(**{**TINY, **overrides}))


def randomize_batch_norms(model: nn.Module) -> None:
    """Distinct scale, shift and running statistics in every BatchNorm, so using the wrong one shows."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 1.5)


def reference_logits(model: LoopyForImageClassification, pixel_values: torch.Tensor, num_unrolls: int, training=False):
    """The paper's unrolling written out with functional ops, reading weights from the state dict by name."""
    config = model.config
    weights = dict(model.state_dict())
    start, end = config.loop_span
    tied = config.share_conv_weights
    per_unroll_norms = tied and not config.share_batch_norm
    activation = {"relu": torch.relu, "gelu": F.gelu}[config.hidden_act]

    def conv_layer(hidden, name, norm_index):
        hidden = F.conv2d(hidden, weights[f"{name}.convolution.weight"], weights[f"{name}.convolution.bias"],
                          padding=config.kernel_size // 2)
        if config.normalization == "batch_norm":
            norm = f"{name}.normalization.{norm_index}"
            mean, var = weights[f"{norm}.running_mean"], weights[f"{norm}.running_var"]
            if training:
                mean, var = hidden.mean((0, 2, 3)), hidden.var((0, 2, 3), unbiased=False)
            hidden = (hidden - mean[:, None, None]) / torch.sqrt(var[:, None, None] + config.batch_norm_eps)
            hidden = hidden * weights[f"{norm}.weight"][:, None, None] + weights[f"{norm}.bias"][:, None, None]
        return activation(hidden)

    encoder = "loopy.encoder"
    hidden = pixel_values
    for i in range(start):
        hidden = conv_layer(hidden, f"{encoder}.before_loop.layers.{i}", 0)
    loop_input, previous = hidden, None
    for t in range(num_unrolls):
        hidden = loop_input
        if t > 0:
            carried = previous
            for j in range(len(config.loop_hidden_sizes)):
                copy, norm = (0, t - 1 if per_unroll_norms else 0) if tied else (t - 1, 0)
                carried = conv_layer(carried, f"{encoder}.loop.loop_path.{copy}.layers.{j}", norm)
            hidden = loop_input + carried if config.composition == "add" else loop_input * carried
        for j in range(end - start + 1):
            copy, norm = (0, t if per_unroll_norms else 0) if tied else (t, 0)
            hidden = conv_layer(hidden, f"{encoder}.loop.body.{copy}.layers.{j}", norm)
        previous = hidden
    for j in range(config.num_layers - end - 1):
        hidden = conv_layer(hidden, f"{encoder}.after_loop.layers.{j}", 0)
    features = hidden.flatten(1) if config.head == "flatten" else hidden.mean((2, 3))
    return features @ weights["classifier.weight"].T + weights["classifier.bias"]


@pytest.mark.parametrize("case", SEMANTICS_CASES)
def test_unrolling_matches_reference(case):
    model = tiny_model(**SEMANTICS_CASES[case]).eval()
    randomize_batch_norms(model)
    pixel_values = torch.randn(4, 3, 8, 8)
    for num_unrolls in range(1, model.config.num_unrolls + 1):
        logits = model(pixel_values, num_unrolls=num_unrolls).logits
        torch.testing.assert_close(logits, reference_logits(model, pixel_values, num_unrolls), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["add", "multiply_loop_layers", "untied"])
def test_unrolling_matches_reference_with_batch_statistics(case):
    model = tiny_model(**SEMANTICS_CASES[case]).train()
    randomize_batch_norms(model)
    pixel_values = torch.randn(4, 3, 8, 8)
    expected = reference_logits(model, pixel_values, model.config.num_unrolls, training=True)
    torch.testing.assert_close(model(pixel_values).logits, expected, rtol=1e-5, atol=1e-5)


def test_one_unroll_equals_vanilla():
    """k = 1 is the vanilla network; the loopy preset differs from vanilla only by its extra BatchNorms."""
    vanilla = LoopyForImageClassification(load_preset("vanilla")).eval()
    loopy = LoopyForImageClassification(load_preset("loopy")).eval()
    randomize_batch_norms(vanilla)
    missing, unexpected = loopy.load_state_dict(vanilla.state_dict(), strict=False)
    assert not unexpected
    assert missing and all(".normalization." in key and ".normalization.0." not in key for key in missing)
    pixel_values = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loopy(pixel_values, num_unrolls=1).logits, vanilla(pixel_values).logits)
    assert not torch.allclose(loopy(pixel_values).logits, vanilla(pixel_values).logits)


def test_conv_weights_are_shared_and_their_gradient_is_the_sum_over_unrolls():
    """A tied model equals an untied one holding copies of its weights; the tied gradient is the copies' sum."""
    k = 3
    tied = tiny_model(hidden_sizes=[6, 5, 3], loop_hidden_sizes=[3], num_unrolls=k).train()
    untied = tiny_model(hidden_sizes=[6, 5, 3], loop_hidden_sizes=[3], num_unrolls=k, share_conv_weights=False).train()
    randomize_batch_norms(tied)

    calls = []
    conv = tied.loopy.encoder.loop.body[0].layers[0].convolution
    conv.register_forward_hook(lambda module, args, output: calls.append(module.weight))
    assert len(tied.loopy.encoder.loop.body) == 1

    # Copy: the same conv into every unroll's copy, the unroll's own BatchNorm into the copy's only BatchNorm.
    untied_state = {}
    for key in untied.state_dict():
        parts = key.split(".")
        if parts[2:4] in (["loop", "body"], ["loop", "loop_path"]):
            copy = int(parts[4])
            parts[4] = "0"
            if "normalization" in parts:
                parts[parts.index("normalization") + 1] = str(copy)
        untied_state[key] = tied.state_dict()[".".join(parts)]
    untied.load_state_dict(untied_state)

    pixel_values, labels = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    tied_loss = tied(pixel_values, labels=labels).loss
    untied_loss = untied(pixel_values, labels=labels).loss
    torch.testing.assert_close(tied_loss, untied_loss)
    assert len(calls) == k and all(weight is calls[0] for weight in calls)

    tied_loss.backward()
    untied_loss.backward()
    for j in range(3):
        summed = sum(untied.loopy.encoder.loop.body[t].layers[j].convolution.weight.grad for t in range(k))
        torch.testing.assert_close(tied.loopy.encoder.loop.body[0].layers[j].convolution.weight.grad, summed)
    path_sum = sum(untied.loopy.encoder.loop.loop_path[t].layers[0].convolution.bias.grad for t in range(k - 1))
    torch.testing.assert_close(tied.loopy.encoder.loop.loop_path[0].layers[0].convolution.bias.grad, path_sum)


def test_output_shapes_and_hidden_states():
    model = tiny_model(hidden_sizes=[6, 5, 3], num_unrolls=3).eval()
    pixel_values = torch.randn(2, 3, 8, 8)

    outputs = model(pixel_values)
    assert outputs.logits.shape == (2, 5)
    assert outputs.hidden_states is None and outputs.loss is None

    outputs = model(pixel_values, output_hidden_states=True)
    assert len(outputs.hidden_states) == 3
    assert all(h.shape == (2, 3, 8, 8) for h in outputs.hidden_states)
    assert len(model(pixel_values, num_unrolls=2, output_hidden_states=True).hidden_states) == 2

    model.config.output_hidden_states = True
    assert len(model(pixel_values).hidden_states) == 3
    base = LoopyModel(model.config).eval()
    base_outputs = base(pixel_values)
    assert len(base_outputs.hidden_states) == 3
    assert base_outputs.last_hidden_state.shape == (2, 3, 8, 8)
    assert base_outputs.pooler_output.shape == (2, 3 * 8 * 8)
    # The last unroll's output is what the head reads when the loop ends at the last layer.
    torch.testing.assert_close(base_outputs.hidden_states[-1], base_outputs.last_hidden_state)


def test_return_dict_false_gives_tuples():
    model = tiny_model(hidden_sizes=[6, 3], num_unrolls=2).eval()
    pixel_values, labels = torch.randn(2, 3, 8, 8), torch.tensor([1, 4])
    logits = model(pixel_values).logits

    outputs = model(pixel_values, return_dict=False)
    assert isinstance(outputs, tuple) and len(outputs) == 1
    torch.testing.assert_close(outputs[0], logits)
    loss, tuple_logits, hidden_states = model(pixel_values, labels=labels, output_hidden_states=True, return_dict=False)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))
    assert len(hidden_states) == 2
    last, pooled = LoopyModel(model.config).eval()(pixel_values, return_dict=False)
    assert last.shape == (2, 3, 8, 8) and pooled.shape == (2, 192)


def test_loss_follows_problem_type():
    pixel_values = torch.randn(4, 3, 8, 8)
    model = tiny_model(hidden_sizes=[6, 3], num_labels=3).eval()
    multi_hot = torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]])
    loss = model(pixel_values, labels=multi_hot).loss
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(model(pixel_values).logits, multi_hot))
    assert model.config.problem_type == "multi_label_classification"

    regression = tiny_model(hidden_sizes=[6, 3], num_labels=1).eval()
    targets = torch.randn(4)
    loss = regression(pixel_values, labels=targets).loss
    torch.testing.assert_close(loss, F.mse_loss(regression(pixel_values).logits.squeeze(-1), targets))


def test_merge_outputs_are_reachable_with_hooks():
    """The paper's "attention maps": a forward hook on the named merge module sees merge(x, out_t) per unroll."""
    model = tiny_model(hidden_sizes=[6, 3], num_unrolls=4, composition="multiply").eval()
    merges = []
    model.loopy.encoder.loop.merge.register_forward_hook(lambda module, args, output: merges.append(output))
    pixel_values = torch.randn(2, 3, 8, 8)
    hidden_states = model(pixel_values, output_hidden_states=True).hidden_states
    assert len(merges) == 3
    for t, merged in enumerate(merges):
        torch.testing.assert_close(merged, pixel_values * hidden_states[t])


def test_anytime_inference_rejects_too_many_unrolls():
    model = tiny_model(hidden_sizes=[6, 3], num_unrolls=3)
    for bad in (0, 4):
        with pytest.raises(ValueError, match=rf"num_unrolls={bad} is invalid.*allowed: 1\.\.3"):
            model(torch.randn(1, 3, 8, 8), num_unrolls=bad)


def test_wrong_inputs_get_clear_errors():
    model = tiny_model(hidden_sizes=[6, 3])
    with pytest.raises(ValueError, match="pixel_values has 1 channels.*num_channels=3"):
        model(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="16x16 images.*image_size 8x8"):
        model(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="expected 4 dimensions"):
        model(torch.randn(3, 8, 8))
    gap = tiny_model(hidden_sizes=[6, 3], head="global_avg_pool").eval()
    assert gap(torch.randn(2, 3, 16, 12)).logits.shape == (2, 5)


def test_init_follows_the_paper():
    model = LoopyForImageClassification(load_preset("paper-loopy"))
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(module.weight)
            gain = 2**0.5 if isinstance(module, nn.Conv2d) else 1.0
            bound = gain * (6 / (fan_in + fan_out)) ** 0.5
            assert module.weight.abs().max() <= bound
            assert module.weight.abs().max() > 0.9 * bound  # uniform over the whole range, not a narrower init
            assert torch.all(module.bias == 0)
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)


def test_channels_last_gives_the_same_logits():
    model = tiny_model(hidden_sizes=[6, 5, 3], num_unrolls=3, loop_hidden_sizes=[3]).eval()
    randomize_batch_norms(model)
    pixel_values = torch.randn(4, 3, 8, 8)
    expected = model(pixel_values).logits
    model = model.to(memory_format=torch.channels_last)
    logits = model(pixel_values.contiguous(memory_format=torch.channels_last)).logits
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_torch_compile_gives_the_same_logits():
    model = tiny_model(hidden_sizes=[6, 3], num_unrolls=3, composition="multiply").eval()
    randomize_batch_norms(model)
    pixel_values = torch.randn(4, 3, 8, 8)
    expected = model(pixel_values).logits
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(pixel_values).logits, expected, rtol=1e-5, atol=1e-5)
    # No recompilation per sample or per call: a second batch reuses the graph.
    torch.testing.assert_close(compiled(pixel_values * 2).logits, model(pixel_values * 2).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["add", "inner_loop", "untied"])
def test_logits_per_unroll_equal_anytime_forwards(case):
    model = tiny_model(**SEMANTICS_CASES[case]).eval()
    randomize_batch_norms(model)
    pixel_values = torch.randn(3, 3, 8, 8)
    per_unroll = model.logits_per_unroll(pixel_values)
    assert per_unroll.shape == (model.config.num_unrolls, 3, 5)
    for t in range(model.config.num_unrolls):
        torch.testing.assert_close(per_unroll[t], model(pixel_values, num_unrolls=t + 1).logits, rtol=1e-5, atol=1e-5)
