"""The committed result tables: verdicts follow from the intervals, and every table is regenerated from its JSON."""

import json

from conftest import REPO_ROOT, load_script

from loopy_hf.comparison import compare_accuracies

RESULTS = REPO_ROOT / "results"
compare_headline = load_script("compare_headline")
compare_variants = load_script("compare_variants")


def evaluation(accuracy, low, high):
    return {"accuracy": accuracy, "accuracy_ci95": [low, high]}


def assert_committed(table: str, stem: str, section: str):
    """results/<stem>.md and the README's generated section both hold exactly `table`."""
    assert (RESULTS / f"{stem}.md").read_text() == table
    readme = (REPO_ROOT / "README.md").read_text()
    assert readme.split(f"<!-- {section}:start -->\n", 1)[1].split(f"\n<!-- {section}:end -->", 1)[0] == table.strip()


def test_compare_accuracies_needs_separate_intervals():
    assert compare_accuracies(evaluation(0.70, 0.69, 0.71), evaluation(0.60, 0.59, 0.61)) == "yes"
    assert compare_accuracies(evaluation(0.70, 0.65, 0.75), evaluation(0.68, 0.63, 0.73)).startswith("higher, but")
    assert compare_accuracies(evaluation(0.60, 0.59, 0.61), evaluation(0.70, 0.69, 0.71)) == "no"
    assert compare_accuracies(evaluation(0.70, 0.69, 0.71), evaluation(0.70, 0.69, 0.71)) == "no"


def test_variant_verdicts_pair_runs_by_seed():
    def runs(*accuracies):
        return [{"seed": seed, "evaluation": evaluation(a, a - 0.01, a + 0.01)} for seed, a in enumerate(accuracies)]

    assert compare_variants.judge(runs(0.7), runs(0.6)) == "yes (the one seed)"
    assert compare_variants.judge(runs(0.7, 0.7), runs(0.6, 0.6)) == "yes (all 2 seeds)"
    # seed 2 of `better` has no partner, so it is not judged
    mixed = compare_variants.judge(runs(0.7, 0.5, 0.7), runs(0.6, 0.6))
    assert mixed == "no: 1 of 2 seeds; yes: 1 of 2 seeds"


def test_headline_table_is_generated_from_its_json():
    result = json.loads((RESULTS / "headline.json").read_text())
    for claim, verdict in result["claims"].items():
        better, worse = claim.split(" beats ")
        assert compare_accuracies(result["rows"][better]["evaluation"], result["rows"][worse]["evaluation"]) == verdict
    assert_committed(compare_headline.markdown(result), "headline", "headline-results")


def test_variants_table_is_generated_from_its_json():
    result = json.loads((RESULTS / "variants" / "variants.json").read_text())
    for claim, verdict in result["claims"].items():
        better, worse = claim.split(" beats ")
        assert compare_variants.judge(result["rows"][better], result["rows"][worse]) == verdict
    assert_committed(compare_variants.markdown(result), "variants/variants", "variants-results")
