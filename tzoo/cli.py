"""`tzoo`: the command line. Exit 0 on success, 2 on bad input (a message, no traceback), 1 when
something failed while running."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Sequence

from tzoo.components.errors import ConfigError, did_you_mean
from tzoo.recipes.bench.cli import add_arguments as bench_arguments
from tzoo.recipes.bench.cli import bench_command
from tzoo.recipes.store.cli import add_arguments as data_arguments

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
    from tzoo.sweeps.cli import is_sweep_file, validate_command

    if is_sweep_file(args.experiment):
        return validate_command(args.experiment, args.set, data=args.data)
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
    from tzoo.recipes.parallel import writes_results
    from tzoo.recipes.processes import choose_devices, device_env
    from tzoo.recipes.runner import Interrupted, exit_code, run_experiment

    experiment = load_experiment(args.experiment, args.set)
    shard = _shard(args.shard)
    if args.shards is not None:
        return _run_shards(args, experiment)
    if args.shard or args.devices:
        # A shard is one process on one device (round robin over --devices, default every
        # visible one); without --shard, --devices limits this process to those devices.
        devices = choose_devices(args.devices)
        os.environ.update(device_env(shard[0], devices) if args.shard else
                          {"CUDA_VISIBLE_DEVICES": ",".join(devices)} if devices else {})
    try:
        outcomes = run_experiment(experiment, out=args.out, shard=shard)
    except Interrupted:
        print("interrupted: the current run was checkpointed; run the same command to resume",
              file=sys.stderr)
        return 130
    if not writes_results(experiment.base):  # a data-parallel process other than rank 0
        return exit_code(outcomes)
    done = sum(o.status == "completed" for o in outcomes)
    print(f"{done}/{len(outcomes)} runs completed; results in {args.out or experiment.runs_dir}")
    for outcome in outcomes:
        if outcome.status != "completed":
            print(f"  {outcome.status}: {outcome.run_dir.name}: {outcome.note}")
    if args.report:
        from tzoo.reports.cli import report_command

        report_command([str(args.out or experiment.runs_dir)], None, None)
    return exit_code(outcomes)


def _run_shards(args: argparse.Namespace, experiment) -> int:
    """`--shards N`: N processes, `tzoo run ... --shard i/N` each on its own device."""
    from tzoo.recipes.processes import choose_devices, device_env, run_processes

    if args.shards < 1 or args.shard:
        raise ConfigError(f"--shards takes a number of processes >= 1 (without --shard), got "
                          f"{args.shards}", key="--shards")
    devices = choose_devices(args.devices)
    command = [sys.executable, "-m", "tzoo.cli", "run", args.experiment]
    for text in args.set:
        command += ["--set", text]
    if args.out:
        command += ["--out", args.out]
    commands = [[*command, "--shard", f"{i + 1}/{args.shards}"] for i in range(args.shards)]
    shown = ", ".join(f"{i + 1}: {device_env(i, devices).get('CUDA_VISIBLE_DEVICES', 'cpu')}"
                      for i in range(args.shards))
    print(f"{args.shards} shard processes (device per shard: {shown})", flush=True)
    codes = run_processes(commands, [device_env(i, devices) for i in range(args.shards)])
    if 130 in codes:
        return 130
    if args.report and BAD_INPUT not in codes:
        from tzoo.reports.cli import report_command

        report_command([str(args.out or experiment.runs_dir)], None, None)
    return max(codes)


def _config(args: argparse.Namespace) -> int:
    """Each planned run's resolved configuration, as its config.yaml will hold it, one YAML
    document per run."""
    import yaml

    from tzoo.recipes.experiment import load_experiment

    runs = load_experiment(args.experiment, args.set).plan()
    for index, run in enumerate(runs):
        if index:
            print("---")
        print(f"# {run.run_id}: {run.variant_name}, seed {run.seed}")
        print(yaml.safe_dump({**run.config, "seed": run.seed, "run_id": run.run_id},
                             sort_keys=False), end="")
    return 0


def _runs(args: argparse.Namespace) -> int:
    import json

    from tzoo.reports.listing import as_json, list_runs, table

    lines = list_runs(args.dirs or ["runs"])
    if args.json:
        print(json.dumps(as_json(lines), indent=2))
    else:
        print(table(lines), end="")
    return 0


def _export(args: argparse.Namespace) -> int:
    from tzoo.recipes.export import export_run

    out = export_run(args.run, args.out, args.format)
    print(f"exported {args.run} as {args.format}: {out}")
    print("  rebuild: from tzoo.recipes.export import load_exported; "
          f"load_exported('{out}').model")
    return 0


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


def _data(args: argparse.Namespace) -> int:
    from tzoo.recipes.store.cli import data_command

    return data_command(args)


def _report(args: argparse.Namespace) -> int:
    from tzoo.reports.cli import report_command

    return report_command(args.runs, args.out, args.title, args.bench, args.study,
                          args.reference, probes=not args.no_probes, shared=args.shared)


def _probe(args: argparse.Namespace) -> int:
    from tzoo.reports.probe_cli import probe_command

    return probe_command(args.run, args.what, args.batches, args.out)


def _compare(args: argparse.Namespace) -> int:
    from tzoo.reports.cli import compare_command

    return compare_command(args.a, args.b, args.markdown)


def _generate(args: argparse.Namespace) -> int:
    import torch

    from tzoo.components import beam_search, generate
    from tzoo.recipes.checkpoints import load_run

    for flag, value, ok, wanted in (
            ("--num-samples", args.num_samples, args.num_samples >= 1, "at least 1"),
            ("--beam-size", args.beam_size, args.beam_size >= 1, "at least 1"),
            ("--top-k", args.top_k, args.top_k is None or args.top_k >= 1, "at least 1"),
            ("--top-p", args.top_p, args.top_p is None or 0 < args.top_p <= 1, "in (0, 1]"),
            ("--temperature", args.temperature, args.temperature >= 0, "0 or more")):
        if not ok:
            raise ConfigError(f"must be {wanted}, got {value}", key=flag)
    if args.beam_size > 1 and args.num_samples > 1:
        raise ConfigError("beam search returns its one best hypothesis: use --num-samples "
                          "with sampling (--temperature > 0), or --beam-size alone",
                          key="--num-samples")
    loaded = load_run(args.run)
    tokenizer, model = loaded.tokenizer, loaded.model
    ids = tokenizer.encode(args.prompt) if args.prompt else [tokenizer.bos_id]
    generator = torch.Generator().manual_seed(args.seed)
    common = {"max_new_tokens": args.max_new_tokens, "eos_id": tokenizer.eos_id,
              "pad_id": tokenizer.pad_id}
    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
                "generator": generator}
    rows = args.num_samples
    if hasattr(model, "encoder"):  # translate the prompt
        source = torch.tensor([[*ids, tokenizer.eos_id]] * rows)
        if args.beam_size > 1:
            out = beam_search(model, source=source, bos_id=tokenizer.bos_id,
                              beam_size=args.beam_size, **common)
        else:
            out = generate(model, source=source, bos_id=tokenizer.bos_id, **common, **sampling)
        texts = [tokenizer.decode(row.tolist()) for row in out]
    else:
        if not model.mask.causal:
            raise ConfigError(f"{args.run} holds a bidirectional model, which cannot "
                              "generate")
        prompt = torch.tensor([ids] * rows)
        if args.beam_size > 1:
            out = beam_search(model, prompt, beam_size=args.beam_size, **common)
        else:
            out = generate(model, prompt, **common, **sampling)
        texts = [args.prompt + tokenizer.decode(row.tolist()) for row in out]
    for index, text in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {index + 1}")
        print(text)
    return 0


def _version() -> str:
    """The suite's version and the stack's, without importing torch (`tzoo --version` is
    instant)."""
    from importlib.metadata import PackageNotFoundError, version

    import tzoo

    stack = []
    for package in ("torch", "lightning", "optuna"):
        try:
            stack.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            stack.append(f"{package} not installed")
    return f"tzoo {tzoo.__version__} ({', '.join(stack)})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tzoo", description="transformer-zoo: ablate transformer components and see "
        "what each one does.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent("""\
            examples:
              tzoo list 'positions.*'
              tzoo run quickstart --set train.steps=200     (a shipped experiment, by name)
              tzoo config recipes/lm-positions.yaml         (each run's resolved YAML)
              tzoo runs runs/quickstart
              tzoo report runs/quickstart
              tzoo sweep lr-placement --workers 2
              tzoo data fetch tinyshakespeare multi30k
            """),
    )
    parser.add_argument("--version", action="version", version=_version(),
                        help="print the versions of tzoo, torch, lightning and optuna")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def set_argument(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a dotted key, e.g. --set model.layers=6 (repeatable)")

    def experiment_arguments(sub: argparse.ArgumentParser, what: str = "an experiment") -> None:
        sub.add_argument("experiment", help=f"{what}: a YAML file, or the name of a shipped "
                         "one (quickstart, lm-positions, ...; see recipes/)")
        set_argument(sub)
        sub.add_argument("--out", help="runs directory (default: runs/<experiment>)")

    sub = command("list", _list, "list the registered variants of every component family")
    sub.add_argument("pattern", nargs="?", default="*",
                     help="shell-style filter on FAMILY.NAME, e.g. 'positions.*' or '*glu'")

    sub = command("validate", _validate,
                  "check an experiment (or a sweep) and print its planned runs; trains nothing")
    experiment_arguments(sub, "an experiment or a sweep")
    sub.add_argument("--data", action="store_true",
                     help="also load the data and tokenizer (exact vocabulary, data errors)")

    sub = command("config", _config,
                  "print the resolved configuration of each planned run, as YAML")
    experiment_arguments(sub)

    sub = command("run", _run, "run every variant and seed of an experiment (resumable)")
    experiment_arguments(sub)
    sub.add_argument("--report", action="store_true", help="write the report afterwards")
    sub.add_argument("--shard", metavar="I/N",
                     help="run only the I-th of N interleaved shares of the runs, so N "
                     "processes or machines split one experiment (e.g. --shard 1/2); the "
                     "process sees one device: the I-th of --devices, round robin")
    sub.add_argument("--shards", type=int, metavar="N",
                     help="start N processes, --shard 1/N ... N/N, each on its own device")
    sub.add_argument("--devices", metavar="0,1,...",
                     help="CUDA devices to hand out, one per shard process, round robin "
                     "(default: every visible device; the CPU when there is none)")

    sub = command("runs", _runs,
                  "list runs: status, step, primary metric and wall time of each")
    sub.add_argument("dirs", nargs="*", metavar="DIR",
                     help="run, experiment or runs folders (default: runs)")
    sub.add_argument("--json", action="store_true", help="print the list as JSON")

    sub = command("sweep", _sweep, "search hyperparameters with Optuna")
    sub.add_argument("sweep", help="a sweep YAML file, or the name of a shipped one "
                     "(lr-placement; see sweeps/)")
    sub.add_argument("--workers", type=int, default=1, help="processes on this machine")
    sub.add_argument("--devices", metavar="0,1,...",
                     help="CUDA devices, one per worker, round robin (default: every visible "
                     "device; the CPU when there is none)")
    sub.add_argument("--trials", type=int, help="override the number of trials")
    sub.add_argument("--export", metavar="YAML", help="write the best trial as an experiment")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a sweep key (n_trials=10) or an experiment key "
                     "(train.steps=300) (repeatable)")

    sub = command("data", _data, "the named datasets: list, fetch, verify, path")
    data_arguments(sub)

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
    sub.add_argument("--shared", action="append", metavar="KEY=VALUE",
                     help="add a section with each variant at this shared setting and at its "
                     "own best value of KEY among the runs, e.g. train.lr=0.002 for a sweep "
                     "that tuned the learning rate per variant (repeatable)")

    sub = command("probe", _probe, "knock out heads and sublayers of one trained run, read "
                  "its logit lens, patch activations: the validation loss of each")
    sub.add_argument("run", help="a run directory with checkpoints/final.pt")
    sub.add_argument("--what", action="append", metavar="heads|blocks|lens|patch",
                     help="which interventions (comma-separated or repeated; default: all)")
    sub.add_argument("--batches", type=int,
                     help="validation batches to evaluate on (default: the run's eval.batches)")
    sub.add_argument("--out", help="also write the figures and interventions.json here")

    sub = command("compare", _compare, "compare two experiments or runs side by side")
    sub.add_argument("a", help="an experiment or run directory")
    sub.add_argument("b", help="the experiment or run directory to compare it with")
    sub.add_argument("--markdown", metavar="FILE", help="also write the comparison as markdown")

    sub = command("bench", bench_command, "measure what every variant of an experiment costs")
    experiment_arguments(sub)
    bench_arguments(sub)

    sub = command("export", _export,
                  "export a trained run's weights, config and tokenizer for use elsewhere")
    sub.add_argument("run", help="a run directory with checkpoints/final.pt")
    sub.add_argument("--format", default="safetensors", choices=["safetensors"],
                     help="model.safetensors + config.json + tokenizer.json (HF tokenizers)")
    sub.add_argument("--out", help="output folder (default: <run>/export)")

    sub = command("generate", _generate,
                  "generate text from a trained run: greedy, sampled or beam search")
    sub.add_argument("run", help="a run directory with checkpoints/final.pt")
    sub.add_argument("--prompt", default="",
                     help="text to continue (a translation model: the sentence to translate)")
    sub.add_argument("--max-new-tokens", type=int, default=200,
                     help="tokens to generate at most")
    sub.add_argument("--temperature", type=float, default=0.8,
                     help="sampling temperature; 0 decodes greedily")
    sub.add_argument("--top-k", type=int, default=None,
                     help="sample among the K most likely tokens only")
    sub.add_argument("--top-p", type=float, default=None,
                     help="nucleus sampling: among the most likely tokens whose probabilities "
                     "add up to P (Holtzman et al. 2020)")
    sub.add_argument("--num-samples", type=int, default=1,
                     help="how many samples to draw for the prompt")
    sub.add_argument("--beam-size", type=int, default=1,
                     help="beam search with this many beams (deterministic; ignores the "
                     "sampling options)")
    sub.add_argument("--seed", type=int, default=0, help="seed of the sampling generator")
    return parser


def _resolve_names(args: argparse.Namespace) -> None:
    """Shipped experiments and sweeps by name: `tzoo run quickstart`."""
    from tzoo.shipped import resolve

    if getattr(args, "experiment", None):
        kinds = ("experiment", "sweep") if args.command == "validate" else ("experiment",)
        args.experiment = resolve(args.experiment, kinds)
    if getattr(args, "sweep", None):
        args.sweep = resolve(args.sweep, ("sweep",))


def main(argv: Sequence[str] | None = None) -> int:
    from tzoo.recipes.quiet import quiet_lightning

    quiet_lightning()
    args = build_parser().parse_args(argv)
    try:
        _resolve_names(args)
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
