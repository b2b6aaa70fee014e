"""The paper's comparison from the published headline checkpoints: results/headline.{json,md}.

    python scripts/compare_headline.py [--checkpoints checkpoints/lnn] [--output_dir results]

Reads each folder's training_run.json and evaluation_results.json (written by scripts/train.py and
scripts/evaluate.py) and the paper's numbers (configs/data/paper_results.json). A difference counts as real when
the two 95% confidence intervals do not overlap.
"""

import argparse
import json
from pathlib import Path

from loopy_hf.comparison import compare_accuracies, format_accuracy, format_per_unroll

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADLINE = {"vanilla": "loopy-cifar10-vanilla", "loopy": "loopy-cifar10", "deep": "loopy-cifar10-deep"}


def load_row(folder: Path) -> dict:
    training = json.loads((folder / "training_run.json").read_text())
    evaluation = json.loads((folder / "evaluation_results.json").read_text())
    return {"training": training, "evaluation": evaluation}


def build(checkpoints: Path) -> dict:
    paper = json.loads((REPO_ROOT / "configs" / "data" / "paper_results.json").read_text())
    rows = {name: load_row(checkpoints / repo) for name, repo in HEADLINE.items()}
    ev = {name: row["evaluation"] for name, row in rows.items()}
    return {
        "rows": rows, "paper": paper,
        "claims": {
            "loopy beats vanilla": compare_accuracies(ev["loopy"], ev["vanilla"]),
            "loopy beats deep": compare_accuracies(ev["loopy"], ev["deep"]),
            "deep beats vanilla": compare_accuracies(ev["deep"], ev["vanilla"]),
        },
    }


def markdown(result: dict) -> str:
    lines = ["| model | repo | parameters | GFLOPs / image | test accuracy (95% CI) | accuracy per unroll 1..k "
             "| best validation | training time | paper's test accuracy |", "|---|---|---:|---:|---|---|---:|---:|---:|"]
    for name, row in result["rows"].items():
        ev, tr = row["evaluation"], row["training"]
        lines.append(
            f"| {name} | `lnn/{HEADLINE[name]}` | {ev['parameters']:,} | {ev['gflops_per_image']:.3f} | "
            f"{format_accuracy(ev, bold=True)} | {format_per_unroll(ev)} | {tr['validation_accuracy']} | "
            f"{tr['wall_time']} | {result['paper']['test_accuracy'][name]:.1%} |"
        )
    any_row = next(iter(result["rows"].values()))
    lines += ["", f"Test split: {any_row['evaluation']['num_samples']:,} images of "
              f"`{any_row['evaluation']['dataset']}`. Training: `{any_row['training']['recipe']}`, seed "
              f"{any_row['training']['seed']}, {any_row['training']['epochs']} epochs, on "
              f"{any_row['training']['machine']}.", "", "| the paper's claim | holds here? |", "|---|---|"]
    lines += [f"| {claim} | {verdict} |" for claim, verdict in result["claims"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, default=REPO_ROOT / "checkpoints" / "lnn")
    parser.add_argument("--output_dir", type=Path, default=REPO_ROOT / "results")
    parser.add_argument("--write_readme", action="store_true", help="also put the table into README.md")
    args = parser.parse_args(argv)
    result = build(args.checkpoints)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "headline.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.output_dir / "headline.md").write_text(markdown(result))
    print(markdown(result))
    if args.write_readme:
        from readme_sections import write_section  # scripts/ is this script's own folder

        write_section("headline-results", markdown(result))
    return result


if __name__ == "__main__":
    main()
