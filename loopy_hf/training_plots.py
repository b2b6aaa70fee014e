"""A PNG of a training run's curves (training loss, validation loss and accuracy) from Trainer's log history."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(log_history: list[dict], path: str | Path, title: str = "") -> Path:
    train = [(e["epoch"], e["loss"]) for e in log_history if "loss" in e and "epoch" in e]
    evals = [(e["epoch"], e["eval_loss"], e.get("eval_accuracy")) for e in log_history if "eval_loss" in e]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    if train:
        loss_axis.plot(*zip(*train), label="training loss")
    if evals:
        loss_axis.plot([e[0] for e in evals], [e[1] for e in evals], "o-", label="validation loss")
        accuracy_axis.plot([e[0] for e in evals], [e[2] for e in evals], "o-", color="tab:green")
    loss_axis.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_axis.legend()
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
