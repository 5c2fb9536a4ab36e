"""`tzoo`: the command line. Exit 0 on success, 2 on bad input (a message, no traceback), 1 when
something failed while running."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence

from tzoo.components.errors import ConfigError, did_you_mean

BAD_INPUT, FAILED = 2, 1


def _list(args: argparse.Namespace) -> int:
    from tzoo.components import REGISTRIES, list_variants

    rows = list_variants(args.pattern)
    if not rows:
        family = args.pattern.split(".")[0]
        raise ConfigError(
            f"no variant matches '{args.pattern}'{did_you_mean(family, REGISTRIES)}; "
            f"families: {', '.join(REGISTRIES)}"
        )
    width = max(len(f"{family}.{name}") for family, name, _ in rows)
    current = None
    for family, name, summary in rows:
        if family != current:
            if current is not None:
                print()
            print(f"{family}: {REGISTRIES[family].description}")
            current = family
        print(f"  {family + '.' + name:<{width}}  {summary}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from tzoo.components import build_model
    from tzoo.recipes.data import prepare_data
    from tzoo.recipes.experiment import load_experiment
    from tzoo.recipes.tasks import resolve_model

    experiment = load_experiment(args.experiment, args.set)
    runs = experiment.plan()
    print(f"{experiment.name}: {len(runs)} runs ({experiment.mode}, seeds {experiment.seeds}) "
          f"-> {args.out or experiment.runs_dir}")
    for run in runs:
        vocab = None
        if args.data:
            vocab = prepare_data(run.config).tokenizer.vocab_size
        model = build_model(resolve_model(run.config, vocab_size=vocab),
                            task_supplies_prefix=True)
        print(f"  {run.run_id:<40} {run.variant_name:<40} "
              f"{model.num_parameters():>10,} params")
    if not args.data:
        print("(parameter counts use the default vocabulary; --data loads the corpus and "
              "tokenizer to count exactly)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from tzoo.recipes.experiment import load_experiment
    from tzoo.recipes.runner import Interrupted, exit_code, run_experiment

    experiment = load_experiment(args.experiment, args.set)
    try:
        outcomes = run_experiment(experiment, out=args.out, shard=_shard(args.shard))
    except Interrupted:
        print("interrupted: the current run was checkpointed; run the same command to resume",
              file=sys.stderr)
        return 130
    done = sum(o.status == "completed" for o in outcomes)
    print(f"{done}/{len(outcomes)} runs completed; results in {args.out or experiment.runs_dir}")
    for outcome in outcomes:
        if outcome.status != "completed":
            print(f"  {outcome.status}: {outcome.run_dir.name}: {outcome.note}")
    if args.report:
        from tzoo.reports.cli import report_command

        report_command([str(args.out or experiment.runs_dir)], None, None)
    return exit_code(outcomes)


def _shard(text: str | None) -> tuple[int, int]:
    """'1/3' -> (0, 3): shards are numbered from 1 on the command line."""
    if not text:
        return 0, 1
    part, _, total = text.partition("/")
    try:
        index, count = int(part), int(total)
    except ValueError:
        index, count = 0, 0
    if not 1 <= index <= count:
        raise ConfigError(f"--shard takes I/N with 1 <= I <= N (e.g. 1/2), got '{text}'",
                          key="--shard")
    return index - 1, count


def _sweep(args: argparse.Namespace) -> int:
    from tzoo.sweeps.cli import sweep_command

    return sweep_command(args)


def _report(args: argparse.Namespace) -> int:
    from tzoo.reports.cli import report_command

    return report_command(args.runs, args.out, args.title, args.bench, args.study,
                          args.reference, probes=not args.no_probes)


def _probe(args: argparse.Namespace) -> int:
    from tzoo.reports.probe_cli import probe_command

    return probe_command(args.run, args.what, args.batches, args.out)


def _compare(args: argparse.Namespace) -> int:
    from tzoo.reports.cli import compare_command

    return compare_command(args.a, args.b, args.markdown)


def _bench(args: argparse.Namespace) -> int:
    from tzoo.recipes.bench.cli import bench_command

    return bench_command(args)


def _generate(args: argparse.Namespace) -> int:
    import torch

    from tzoo.components import generate
    from tzoo.recipes.checkpoints import load_run

    loaded = load_run(args.run)
    tokenizer = loaded.tokenizer
    ids = tokenizer.encode(args.prompt) if args.prompt else [tokenizer.bos_id]
    generator = torch.Generator().manual_seed(args.seed)
    model = loaded.model
    if hasattr(model, "encoder"):
        source = torch.tensor([[*ids, tokenizer.eos_id]])
        out = generate(model, source=source, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                       max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                       top_k=args.top_k, generator=generator)
        print(tokenizer.decode(out[0].tolist()))
        return 0
    if not model.mask.causal:
        raise ConfigError(f"{args.run} holds a bidirectional model, which cannot generate")
    prompt = torch.tensor([ids])
    out = generate(model, prompt, max_new_tokens=args.max_new_tokens,
                   temperature=args.temperature, top_k=args.top_k, generator=generator)
    print(args.prompt + tokenizer.decode(out[0].tolist()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tzoo", description="transformer-zoo: ablate transformer components and see "
        "what each one does.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent("""\
            examples:
              tzoo list 'positions.*'
              tzoo validate recipes/quickstart.yaml
              tzoo run recipes/quickstart.yaml --set train.steps=200
              tzoo report runs/quickstart
              tzoo sweep sweeps/lr-placement.yaml --workers 2
            """),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def experiment_arguments(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("experiment", help="an experiment YAML file")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a dotted key, e.g. --set model.layers=6 (repeatable)")
        sub.add_argument("--out", help="runs directory (default: runs/<experiment>)")

    sub = command("list", _list, "list the registered variants of every component family")
    sub.add_argument("pattern", nargs="?", default="*",
                     help="shell-style filter on FAMILY.NAME, e.g. 'positions.*' or '*glu'")

    sub = command("validate", _validate, "check an experiment and print its planned runs")
    experiment_arguments(sub)
    sub.add_argument("--data", action="store_true",
                     help="also load the data and tokenizer (exact vocabulary, data errors)")

    sub = command("run", _run, "run every variant and seed of an experiment (resumable)")
    experiment_arguments(sub)
    sub.add_argument("--report", action="store_true", help="write the report afterwards")
    sub.add_argument("--shard", metavar="I/N",
                     help="run only the I-th of N interleaved shares of the runs, so N "
                     "processes or machines split one experiment (e.g. --shard 1/2)")

    sub = command("sweep", _sweep, "search hyperparameters with Optuna")
    sub.add_argument("sweep", help="a sweep YAML file")
    sub.add_argument("--workers", type=int, default=1, help="processes on this machine")
    sub.add_argument("--trials", type=int, help="override the number of trials")
    sub.add_argument("--export", metavar="YAML", help="write the best trial as an experiment")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    sub = command("report", _report, "write report.md and index.html from run directories")
    sub.add_argument("runs", nargs="+", help="experiment or run directories (globs allowed)")
    sub.add_argument("--out", help="output folder (default: reports/<experiment>)")
    sub.add_argument("--title", help="report title")
    sub.add_argument("--bench", metavar="FILE",
                     help="a `tzoo bench` JSON to include as cost tables (default: bench.json "
                     "beside the runs)")
    sub.add_argument("--study", metavar="JOURNAL[:NAME]",
                     help="an Optuna journal (and study name) for the sweep section (default: "
                     "study.journal beside the runs, when it holds one study)")
    sub.add_argument("--no-probes", action="store_true",
                     help="leave out the probes of trained models (faster; a sweep's many "
                     "trials make a long probe section)")
    sub.add_argument("--reference", action="append", metavar="AXIS=VALUE",
                     help="compare each variant with the one that has this value on AXIS and "
                     "its own values on the other axes (repeatable; default: the experiment's "
                     "ablate.reference, else the base)")

    sub = command("probe", _probe, "knock out heads and sublayers of one trained run, read "
                  "its logit lens, patch activations: the validation loss of each")
    sub.add_argument("run", help="a run directory with checkpoints/final.pt")
    sub.add_argument("--what", action="append", metavar="heads|blocks|lens|patch",
                     help="which interventions (comma-separated or repeated; default: all)")
    sub.add_argument("--batches", type=int,
                     help="validation batches to evaluate on (default: the run's eval.batches)")
    sub.add_argument("--out", help="also write the figures and interventions.json here")

    sub = command("compare", _compare, "compare two experiments or runs side by side")
    sub.add_argument("a")
    sub.add_argument("b")
    sub.add_argument("--markdown", metavar="FILE", help="also write the comparison as markdown")

    sub = command("bench", _bench, "measure what every variant of an experiment costs")
    experiment_arguments(sub)
    sub.add_argument("--repeats", type=int, default=5)
    sub.add_argument("--json", metavar="FILE")
    sub.add_argument("--markdown", metavar="FILE")
    sub.add_argument("--scaling", action="store_true",
                     help="also sweep context length and depth (slower)")
    sub.add_argument("--generation", action="store_true",
                     help="also time decoding with/without the KV cache and a growing chat "
                     "(decoder-only with a cache vs encoder-decoder re-encoding)")
    sub.add_argument("--overhead", action="store_true",
                     help="also time the runner (Lightning) against a bare PyTorch loop and "
                     "the data-loading share, on the experiment's base configuration")
    sub.add_argument("--compile", action="store_true",
                     help="with --overhead: also time the bare loop under torch.compile")
    sub.add_argument("--no-table", action="store_true", help="skip the variants table")
    sub.add_argument("--threads", type=int, help="torch threads (sets train.threads)")
    sub.add_argument("--steps", type=int, default=3, help="training steps per round")
    sub.add_argument("--overhead-steps", type=int, default=100,
                     help="steps per round of --overhead (a multiple of train.log_every)")
    sub.add_argument("--contexts", default="128,256,512,1024",
                     help="--scaling context lengths (comma-separated)")
    sub.add_argument("--depths", default="1,2,4,8", help="--scaling layer counts")
    sub.add_argument("--gen-tokens", type=int, default=512, help="--generation length")
    sub.add_argument("--chat-turns", type=int, default=8, help="--generation chat turns")
    sub.add_argument("--peak-sizes", default="1024,1536,2048",
                     help="square matmul sizes for the fp32 peak behind MFU")
    sub.add_argument("--plots", metavar="DIR", default="reports/bench",
                     help="where mode results, PNG plots and README.md go")

    sub = command("generate", _generate, "generate text from a trained run")
    sub.add_argument("run", help="a run directory with checkpoints/final.pt")
    sub.add_argument("--prompt", default="")
    sub.add_argument("--max-new-tokens", type=int, default=200)
    sub.add_argument("--temperature", type=float, default=0.8)
    sub.add_argument("--top-k", type=int, default=None)
    sub.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tzoo.recipes.quiet import quiet_lightning

    quiet_lightning()
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as error:
        # Errors found while loading data or building runs name the file that asked for them.
        source = getattr(args, "experiment", None) or getattr(args, "sweep", None)
        print(f"tzoo {args.command}: error: {error.located(source=source)}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tzoo list | head`: the reader left, nothing more to say
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
