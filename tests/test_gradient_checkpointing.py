"""Gradient checkpointing over unrolls: same gradients, and BatchNorm running statistics updated once per step."""

import pytest
import torch
from transformers import Trainer, TrainingArguments

from loopy_hf import LoopyConfig, LoopyForImageClassification


def one_training_step(model, pixel_values, labels):
    model.train()
    model(pixel_values, labels=labels).loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    return grads, buffers


@pytest.mark.parametrize("overrides", [{}, {"loop_hidden_sizes": [3]}, {"share_batch_norm": True}])
def test_checkpointing_keeps_gradients_and_running_statistics(overrides):
    config = LoopyConfig(hidden_sizes=[6, 5, 3], num_unrolls=4, image_size=8, num_labels=4, **overrides)
    plain = LoopyForImageClassification(config)
    checkpointed = LoopyForImageClassification(config)
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.gradient_checkpointing_enable()
    assert checkpointed.loopy.encoder.loop.gradient_checkpointing

    pixel_values, labels = torch.randn(8, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    plain_grads, plain_buffers = one_training_step(plain, pixel_values, labels)
    checkpointed_grads, checkpointed_buffers = one_training_step(checkpointed, pixel_values, labels)

    assert plain_grads.keys() == checkpointed_grads.keys()
    for name in plain_grads:
        torch.testing.assert_close(checkpointed_grads[name], plain_grads[name], rtol=1e-5, atol=1e-6)
    for name in plain_buffers:
        torch.testing.assert_close(checkpointed_buffers[name], plain_buffers[name], rtol=0, atol=0)
    tracked = [int(b) for name, b in checkpointed_buffers.items() if name.endswith("num_batches_tracked")]
    uses_per_step = config.num_unrolls if config.share_batch_norm else 1  # a shared BatchNorm runs in every unroll
    assert tracked and set(tracked) == {uses_per_step}


def test_reentrant_checkpointing_is_refused():
    model = LoopyForImageClassification(LoopyConfig(hidden_sizes=[6, 3], num_unrolls=2, image_size=8))
    with pytest.raises(ValueError, match="use_reentrant"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})


def test_training_arguments_enable_checkpointing(tmp_path):
    model = LoopyForImageClassification(LoopyConfig(hidden_sizes=[6, 3], num_unrolls=3, image_size=8, num_labels=2))
    dataset = [{"pixel_values": torch.randn(3, 8, 8), "labels": i % 2} for i in range(8)]
    args = TrainingArguments(output_dir=str(tmp_path), gradient_checkpointing=True, max_steps=1, use_cpu=True,
                             per_device_train_batch_size=4, report_to=[], save_strategy="no", disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=dataset).train()
    assert model.loopy.encoder.loop.gradient_checkpointing
