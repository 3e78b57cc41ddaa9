"""``python -m training <command>``.

fit, validate, test: LightningCLI for one model (``--config configs/<model>.yaml``).
pipeline, evaluate, push: the multi-step commands (docs/architecture.md), each a thin call
of its function (training.pipeline.pipeline, training.evaluate.evaluate, training.push.push).
"""

from __future__ import annotations

import argparse
import sys

from training.cli import fit_cli
from training.memory import keep_freed_memory

STEP_COMMANDS = ("pipeline", "evaluate", "push")


def step_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("pipeline", help="train all models, evaluate, export a bundle")
    run.add_argument("--config", default="configs/pipeline.yaml")
    run.add_argument("--dataset", help="data set (default: the plan's)")
    run.add_argument("--profile", choices=("quick", "large", "full"), default="full")
    run.add_argument("--output", help="bundle folder (default artifacts/<dataset>)")
    evaluate = commands.add_parser(
        "evaluate", help="metrics, A/B test and context impact of a bundle"
    )
    evaluate.add_argument("--bundle", required=True)
    evaluate.add_argument("--output", default="reports")
    evaluate.add_argument(
        "--update-bundle", action="store_true", help="also rewrite the bundle's metrics"
    )
    push = commands.add_parser("push", help="push a bundle to the Hugging Face Hub")
    push.add_argument("--bundle", required=True)
    push.add_argument("--repo-id", required=True, help="OWNER/NAME")
    push.add_argument("--private", action="store_true")
    push.add_argument("--revision", help="branch or tag to push to")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in STEP_COMMANDS:
        fit_cli(argv)
        return
    args = step_parser().parse_args(argv)
    keep_freed_memory()  # the pipeline's evaluation scores users in [chunk, catalogue] blocks
    if args.command == "pipeline":
        from training.pipeline import pipeline

        pipeline(args.config, args.dataset, args.profile, args.output)
    elif args.command == "evaluate":
        from training.evaluate import evaluate

        evaluate(args.bundle, args.output, update_bundle=args.update_bundle)
    else:
        from training.push import push

        push(bundle=args.bundle, repo_id=args.repo_id, private=args.private, revision=args.revision)


if __name__ == "__main__":
    main()
