"""Publish a trained output folder to the Hub as one commit, with a model card rendered from the template.

    python scripts/push_to_hub.py out/loopy --repo_id lnn/loopy-cifar10 [--evaluation results/eval/out--loopy] \
        [--private] [--revision BRANCH] [--create_pr] [--dry_run DIR]

What is pushed: config.json (with auto_map) and the code files, model.safetensors, preprocessor_config.json, the
training records (training_run.json, all_results.json, trainer_state.json, training_curves.png), the evaluation
(evaluation_results.json and its plots, from --evaluation) and README.md rendered from model_cards/template.md.
Nothing else (checkpoints, optimizer states) leaves the folder. --dry_run builds exactly that folder locally.

The token comes from HF_TOKEN or `hf auth login`; it is never printed. Pushing an unchanged folder makes no new
commit. A push the server rejects is reported with the server's message and leaves the repo as it was.
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from loopy_hf.model_card import EVALUATION_FILE, TRAINING_RUN_FILE, render_model_card

MODEL_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
TRAINING_FILES = (TRAINING_RUN_FILE, "all_results.json", "train_results.json", "eval_results.json",
                  "trainer_state.json", "training_curves.png")
EVALUATION_FILES = (EVALUATION_FILE, "confusion_matrix.png", "accuracy_per_unroll.png")
# The three headline checkpoints and the repos they are published to.
DEFAULT_REPOS = {"loopy": "lnn/loopy-cifar10", "vanilla": "lnn/loopy-cifar10-vanilla", "deep": "lnn/loopy-cifar10-deep"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a scripts/train.py output folder")
    parser.add_argument("--repo_id", default=None,
                        help=f"the Hub repo (default by preset: {', '.join(f'{k} -> {v}' for k, v in DEFAULT_REPOS.items())})")
    parser.add_argument("--evaluation", type=Path, default=None, help="a scripts/evaluate.py per-model folder")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None, help="push to this branch (created from main if missing)")
    parser.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--commit_message", default=None)
    parser.add_argument("--dry_run", type=Path, default=None, metavar="DIR", help="build the folder in DIR; no network")
    return parser.parse_args(argv)


def code_files(folder: Path) -> list[str]:
    """The Python files `auto_map` points to (they let the checkpoint load with `trust_remote_code`)."""
    files = set()
    for path in (folder / "config.json", folder / "preprocessor_config.json"):
        auto_map = json.loads(path.read_text()).get("auto_map", {}) if path.is_file() else {}
        files |= {f"{reference.split('.')[0]}.py" for reference in auto_map.values()}
    return sorted(files)


def check_folder(folder: Path, evaluation: Path | None) -> None:
    if not folder.is_dir():
        raise ValueError(f"folder={str(folder)!r} is not a folder; allowed: a scripts/train.py output folder")
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"folder={str(folder)!r} lacks {missing}; allowed: a folder written by scripts/train.py "
                         "or loopy_hf.save_checkpoint (weights as model.safetensors)")
    if "auto_map" not in json.loads((folder / "config.json").read_text()):
        raise ValueError(f"{folder / 'config.json'} has no auto_map; save the model with loopy_hf imported")
    absent = [name for name in code_files(folder) if not (folder / name).is_file()]
    if absent:
        raise ValueError(f"folder={str(folder)!r} lacks the code files {absent} named by its auto_map")
    if evaluation is not None and not (evaluation / EVALUATION_FILE).is_file():
        raise ValueError(f"evaluation={str(evaluation)!r} holds no {EVALUATION_FILE}; allowed: a folder written "
                         "by scripts/evaluate.py")


def default_repo_id(folder: Path) -> str:
    run = folder / TRAINING_RUN_FILE
    preset = json.loads(run.read_text()).get("preset") if run.is_file() else None
    if preset not in DEFAULT_REPOS:
        raise ValueError(f"no default --repo_id for preset {preset!r}; allowed presets: {sorted(DEFAULT_REPOS)}, "
                         "or pass --repo_id")
    return DEFAULT_REPOS[preset]


def build_upload_folder(folder: Path, evaluation: Path | None, repo_id: str, target: Path) -> Path:
    """Copy what is published into `target` and render the model card there."""
    target.mkdir(parents=True, exist_ok=True)
    # Evaluation files come from --evaluation, or from the folder itself (a published folder carries them).
    sources = [folder / name for name in (*MODEL_FILES, *code_files(folder), *TRAINING_FILES)]
    sources += [(evaluation or folder) / name for name in EVALUATION_FILES]
    for source in sources:
        if source.is_file():
            shutil.copy2(source, target / source.name)
    render_model_card(target, repo_id=repo_id).save(target / "README.md")
    return target


def push(upload: Path, args) -> str:
    api = HfApi()
    api.create_repo(args.repo_id, private=args.private, exist_ok=True)
    if args.revision:
        api.create_branch(args.repo_id, branch=args.revision, exist_ok=True)
    try:
        head = api.model_info(args.repo_id, revision=args.revision).sha
    except (RepositoryNotFoundError, RevisionNotFoundError):
        head = None
    commit = api.upload_folder(
        folder_path=upload, repo_id=args.repo_id, revision=args.revision, create_pr=args.create_pr,
        commit_message=args.commit_message or f"Upload {args.folder.name} with scripts/push_to_hub.py",
    )
    if commit.pr_url:
        return f"opened {commit.pr_url} (load it with revision={commit.pr_revision!r})"
    if commit.oid == head:
        return f"no changes: {args.repo_id}@{args.revision or 'main'} is already at {head}"
    return f"pushed {commit.commit_url}"


def main(argv=None) -> int:
    args = parse_args(argv)
    check_folder(args.folder, args.evaluation)
    args.repo_id = args.repo_id or default_repo_id(args.folder)
    if args.dry_run:
        if args.dry_run.exists() and any(args.dry_run.iterdir()):
            raise ValueError(f"dry_run={str(args.dry_run)!r} is not empty; allowed: a new or empty folder")
        args.dry_run.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{args.dry_run.name}.", dir=args.dry_run.parent))
        build_upload_folder(args.folder, args.evaluation, args.repo_id, staging)
        shutil.rmtree(args.dry_run, ignore_errors=True)
        staging.rename(args.dry_run)  # the folder appears complete or not at all
        print(f"dry run: {args.repo_id} would receive {sorted(p.name for p in args.dry_run.iterdir())} "
              f"(built in {args.dry_run})")
        return 0
    with tempfile.TemporaryDirectory() as staging:
        upload = build_upload_folder(args.folder, args.evaluation, args.repo_id, Path(staging))
        try:
            print(push(upload, args))
        except HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else "?"
            message = error.server_message or str(error).splitlines()[0]
            print(f"push to {args.repo_id} rejected by the Hub (HTTP {status}): {message}. "
                  "The repo was not changed.", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
