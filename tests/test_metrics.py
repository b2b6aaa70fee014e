"""The shipped `evaluate` metric module: Wilson interval, per-class accuracy, confusion matrix."""

import math

import evaluate
import pytest

from loopy_hf.metrics import IMAGE_CLASSIFICATION_METRIC
from loopy_hf.metrics.image_classification import wilson_interval


def test_wilson_interval_matches_known_values():
    # Textbook values: 3 of 4 -> [0.3006, 0.9544]; 0 of 10 -> [0, 0.2775]; 50 of 100 -> [0.4038, 0.5962].
    for (correct, total), (low, high) in {(3, 4): (0.3006, 0.9544), (0, 10): (0.0, 0.2775),
                                         (50, 100): (0.4038, 0.5962)}.items():
        assert wilson_interval(correct, total) == pytest.approx((low, high), abs=1e-4)


def test_metric_module_loads_offline_and_computes_every_field():
    metric = evaluate.load(IMAGE_CLASSIFICATION_METRIC)
    scores = metric.compute(predictions=[0, 2, 1, 1, 0], references=[0, 1, 1, 1, 2], num_classes=4)
    assert scores["accuracy"] == pytest.approx(0.6) and scores["num_samples"] == 5
    assert scores["per_class_accuracy"][:3] == pytest.approx([1.0, 2 / 3, 0.0])
    assert math.isnan(scores["per_class_accuracy"][3])
    assert scores["confusion_matrix"] == [[1, 0, 0, 0], [0, 2, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    low, high = scores["accuracy_ci95"]
    assert low < 0.6 < high
