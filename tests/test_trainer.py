"""transformers.Trainer drives the model: gradient accumulation gives the same update as one large batch."""

import torch
from transformers import Trainer, TrainingArguments

from loopy_hf import LoopyConfig, LoopyForImageClassification, image_processor_for


class ProcessedImages(torch.utils.data.Dataset):
    def __init__(self, rows, processor):
        self.pixel_values = processor([row["img"] for row in rows], return_tensors="pt")["pixel_values"]
        self.labels = torch.tensor([row["label"] for row in rows])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"pixel_values": self.pixel_values[index], "labels": self.labels[index]}


def train(model, dataset, output_dir, batch_size, accumulation_steps):
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation_steps,
        max_steps=2,
        optim="sgd",
        learning_rate=0.05,
        lr_scheduler_type="constant",
        use_cpu=True,
        seed=0,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=dataset).train()
    return model.state_dict()


def test_gradient_accumulation_matches_one_large_batch(tmp_path, cifar10_test_rows):
    # BatchNorm statistics depend on the batch, so the comparison runs without normalization.
    config = LoopyConfig(hidden_sizes=[8, 3], num_unrolls=3, normalization="none", num_labels=10)
    dataset = ProcessedImages(cifar10_test_rows, image_processor_for(config))
    initial = LoopyForImageClassification(config).state_dict()

    one_batch = LoopyForImageClassification(config)
    one_batch.load_state_dict(initial)
    accumulated = LoopyForImageClassification(config)
    accumulated.load_state_dict(initial)

    after_one_batch = train(one_batch, dataset, tmp_path / "a", batch_size=8, accumulation_steps=1)
    after_accumulation = train(accumulated, dataset, tmp_path / "b", batch_size=4, accumulation_steps=2)
    changed = [key for key in initial if not torch.equal(initial[key], after_one_batch[key])]
    assert changed, "two optimizer steps changed no weight"
    for key in initial:
        torch.testing.assert_close(after_accumulation[key], after_one_batch[key], rtol=1e-5, atol=1e-6)
