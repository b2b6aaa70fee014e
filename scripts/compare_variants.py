"""The paper's own experiment variants (paper-* presets) beside the paper's numbers: results/variants/.

    make train-variants SEED=0        # and SEED=1, SEED=2 ... for more seeds: out/variants/seed<N>/<preset>
    python scripts/evaluate.py --model out/variants/seed0/paper-vanilla --model out/variants/seed0/paper-loopy \
        ... (every run folder) --dataset_name ../shared/data/cifar10 --split test \
        --output_file results/variants/evaluation.json
    python scripts/compare_variants.py [--runs out/variants] [--write_readme]

Joins each run's training_run.json (written by scripts/train.py) with its test evaluation, keeps both in
results/variants/variants.json so the table can be rebuilt without the training folders, and judges the paper's
orderings seed by seed as scripts/compare_headline.py does (a difference is real when the 95% intervals do not
overlap).
"""

import argparse
import json
import statistics
from pathlib import Path

from loopy_hf.comparison import compare_accuracies, format_accuracy, format_per_unroll

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "results" / "variants"
SUMMARY_KEYS = ("model", "dataset", "split", "num_samples", "accuracy", "accuracy_ci95", "accuracy_per_unroll",
                "parameters", "gflops_per_image", "machine", "versions")


def load_runs(runs: Path, evaluation_file: Path, presets: dict) -> dict:
    """{variant name: [{seed, training, evaluation}, ...]} for every evaluated run folder `<runs>/seed<N>/<preset>`."""
    by_preset = {preset: [] for preset in presets.values()}
    for entry in json.loads(evaluation_file.read_text()):
        folder = Path(entry["model"])
        if folder.name in by_preset and folder.parent.name.startswith("seed"):
            training = json.loads((runs / folder.parent.name / folder.name / "training_run.json").read_text())
            evaluation = {key: entry[key] for key in SUMMARY_KEYS}
            by_preset[folder.name].append({"seed": training["seed"], "training": training, "evaluation": evaluation})
    for preset, seeds in by_preset.items():
        if not seeds:
            raise ValueError(f"{evaluation_file} has no evaluation of a run of {preset!r} under {runs}/seed<N>/")
        seeds.sort(key=lambda run: run["seed"])
    return {name: by_preset[preset] for name, preset in presets.items()}


def judge(better: list[dict], worse: list[dict]) -> str:
    """The interval verdict for each seed both variants share, summarised."""
    worse_by_seed = {run["seed"]: run["evaluation"] for run in worse}
    verdicts = [compare_accuracies(run["evaluation"], worse_by_seed[run["seed"]])
                for run in better if run["seed"] in worse_by_seed]
    if len(set(verdicts)) == 1:
        return f"{verdicts[0]} ({'the one seed' if len(verdicts) == 1 else f'all {len(verdicts)} seeds'})"
    return "; ".join(f"{verdict}: {verdicts.count(verdict)} of {len(verdicts)} seeds" for verdict in sorted(set(verdicts)))


def build(runs: Path, evaluation_file: Path) -> dict:
    paper = json.loads((REPO_ROOT / "configs" / "data" / "paper_results.json").read_text())
    rows = load_runs(runs, evaluation_file, paper["variant_presets"])
    claims = {f"{better} beats {worse}": judge(rows[better], rows[worse]) for better, worse in paper["variant_claims"]}
    return {"rows": rows, "paper": paper, "claims": claims}


def accuracy_cell(seeds: list[dict]) -> str:
    accuracies = [run["evaluation"]["accuracy"] for run in seeds]
    if len(accuracies) == 1:
        return format_accuracy(seeds[0]["evaluation"], bold=True)
    listed = ", ".join(f"{a:.2%}" for a in accuracies)
    return f"**{statistics.mean(accuracies):.2%} ± {statistics.stdev(accuracies):.2%}** ({listed})"


def markdown(result: dict) -> str:
    paper = result["paper"]
    lines = ["| variant | preset | seeds | parameters | GFLOPs / image | test accuracy | accuracy per unroll 1..k "
             "(seed 0) | best validation | training time | paper (batch 5) | paper (batch 32) |",
             "|---|---|---:|---:|---:|---|---|---|---|---:|---:|"]
    for name, seeds in result["rows"].items():
        first = seeds[0]["evaluation"]
        batch_32 = paper["batch_32_test_accuracy"].get(name)
        lines.append(
            f"| {name} | `{paper['variant_presets'][name]}` | {len(seeds)} | {first['parameters']:,} | "
            f"{first['gflops_per_image']:.3f} | {accuracy_cell(seeds)} | {format_per_unroll(first)} | "
            f"{', '.join(run['training']['validation_accuracy'] for run in seeds)} | "
            f"{', '.join(run['training']['wall_time'] for run in seeds)} | {paper['test_accuracy'][name]:.1%} | "
            f"{f'{batch_32:.1%}' if batch_32 else '-'} |"
        )
    training = next(iter(result["rows"].values()))[0]["training"]
    lines += ["", f"Test split: {first['num_samples']:,} images of `{first['dataset']}`; with several seeds the "
              f"accuracy is mean ± std (each seed listed). Training: `{training['recipe']}` "
              f"({training['optimizer']} {training['learning_rate']}, batch {training['batch_size']}, "
              f"augmentation: {training['augmentation']}), {training['precision']}, {training['epochs']} epochs, on "
              f"{training['machine']}.", "", "| the paper's ordering | holds here? (per seed: do the 95% intervals "
              "separate?) |", "|---|---|"]
    lines += [f"| {claim} | {verdict} |" for claim, verdict in result["claims"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=REPO_ROOT / "out" / "variants",
                        help="folder with the training runs as seed<N>/<paper-* preset>")
    parser.add_argument("--evaluation", type=Path, default=RESULTS / "evaluation.json",
                        help="scripts/evaluate.py's --output_file for those runs")
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    parser.add_argument("--write_readme", action="store_true", help="also put the table into README.md")
    args = parser.parse_args(argv)
    result = build(args.runs, args.evaluation)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "variants.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.output_dir / "variants.md").write_text(markdown(result))
    print(markdown(result))
    if args.write_readme:
        from readme_sections import write_section  # scripts/ is this script's own folder

        write_section("variants-results", markdown(result))
    return result


if __name__ == "__main__":
    main()
