"""Whether one model's test accuracy beats another's, judged by the overlap of their 95% confidence intervals."""


def compare_accuracies(better: dict, worse: dict) -> str:
    """Does `better` beat `worse`? "yes" only when the intervals do not overlap; each dict is one evaluation
    (`accuracy`, `accuracy_ci95`) as scripts/evaluate.py writes it."""
    (better_low, _), (_, worse_high) = better["accuracy_ci95"], worse["accuracy_ci95"]
    if better["accuracy"] <= worse["accuracy"]:
        return "no"
    return "yes" if better_low > worse_high else "higher, but the 95% intervals overlap"
