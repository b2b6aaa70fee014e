"""Comparing and tabulating evaluations: does one model beat another (by the overlap of their 95% intervals)."""


def compare_accuracies(better: dict, worse: dict) -> str:
    """Does `better` beat `worse`? "yes" only when the intervals do not overlap; each dict is one evaluation
    (`accuracy`, `accuracy_ci95`) as scripts/evaluate.py writes it."""
    (better_low, _), (_, worse_high) = better["accuracy_ci95"], worse["accuracy_ci95"]
    if better["accuracy"] <= worse["accuracy"]:
        return "no"
    return "yes" if better_low > worse_high else "higher, but the 95% intervals overlap"


def format_accuracy(evaluation: dict, bold: bool = False) -> str:
    """`68.52% (67.60% - 69.42%)`: the accuracy with its 95% interval, for results tables."""
    low, high = evaluation["accuracy_ci95"]
    accuracy = f"**{evaluation['accuracy']:.2%}**" if bold else f"{evaluation['accuracy']:.2%}"
    return f"{accuracy} ({low:.2%} - {high:.2%})"


def format_per_unroll(evaluation: dict) -> str:
    """`29.7%, 32.3%, 68.5%`: the accuracy after each unroll, or `-` for a model without a loop."""
    return ", ".join(f"{accuracy:.1%}" for _, accuracy in evaluation["accuracy_per_unroll"]) or "-"
