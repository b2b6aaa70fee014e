"""An `evaluate` metric for image classification that ships with loopy_hf (no Hub download, no scikit-learn):
top-1 accuracy with a 95% Wilson confidence interval, per-class accuracy and the confusion matrix.

    metric = evaluate.load(loopy_hf.metrics.IMAGE_CLASSIFICATION_METRIC)
    metric.compute(predictions=[0, 2, 1], references=[0, 1, 1], num_classes=3)
"""

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Top-1 accuracy with its 95% Wilson score interval, accuracy per class (recall), and the
confusion matrix (rows: true class, columns: predicted class)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class indices.
    references (`list[int]`): true class indices.
    num_classes (`int`, optional): number of classes (default: 1 + the largest index seen).
Returns:
    accuracy (`float`), accuracy_ci95 (`[low, high]`), per_class_accuracy (`list[float]`, NaN for absent classes),
    confusion_matrix (`list[list[int]]`), num_samples (`int`).
"""

_CITATION = """@article{wilson1927probable, title={Probable inference, the law of succession, and statistical
inference}, author={Wilson, Edwin B}, journal={JASA}, volume={22}, number={158}, pages={209--212}, year={1927}}"""

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def wilson_interval(correct: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: well-behaved near 0 and 1, unlike the normal approximation."""
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    center = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, center - half), min(1.0, center + half)


class ImageClassification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, num_classes: int | None = None):
        predictions, references = np.asarray(predictions, dtype=np.int64), np.asarray(references, dtype=np.int64)
        num_classes = num_classes or int(max(predictions.max(initial=0), references.max(initial=0)) + 1)
        correct = predictions == references
        confusion = np.bincount(references * num_classes + predictions, minlength=num_classes**2)
        confusion = confusion.reshape(num_classes, num_classes)
        per_class = [float(correct[references == c].mean()) if (references == c).any() else float("nan")
                     for c in range(num_classes)]
        return {
            "accuracy": float(correct.mean()) if len(correct) else 0.0,
            "accuracy_ci95": list(wilson_interval(int(correct.sum()), len(correct))),
            "per_class_accuracy": per_class,
            "confusion_matrix": confusion.tolist(),
            "num_samples": len(correct),
        }
