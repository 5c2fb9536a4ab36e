"""Metrics that mean something on every corpus: BLEU only where it is defined, the metric an
experiment is judged by (`eval.primary`) leading reports, comparisons and sweeps, "best" marked
only where there is a difference, and evaluation rows of metrics.csv labelled with the step
they measured."""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path

import lightning as L
import pytest
import yaml
from fixtures_runs import write_run
from lightning.pytorch.trainer.states import TrainerFn

from tzoo.cli import main
from tzoo.recipes.experiment import experiment_from_dict
from tzoo.recipes.quiet import quiet_lightning
from tzoo.recipes.runner import EarlyStop, run_one
from tzoo.recipes.short_references import bleu_not_applicable
from tzoo.recipes.tasks import judged_by
from tzoo.recipes.translation import corpus_scores
from tzoo.reports.build import build_report
from tzoo.reports.compare import compare
from tzoo.reports.document import to_markdown
from tzoo.reports.runs import group_by_variant, load_runs
from tzoo.reports.sections import best_variant, metric_table
from tzoo.reports.stats import compare_metric
from tzoo.sweeps import load_sweep

pytestmark = pytest.mark.usefixtures("one_thread")

#: a tiny encoder-decoder translating English number words into German ones (one word each)
NUMBERS: dict = {
    "experiment": "numbers",
    "task": {"name": "translation"},
    "data": {"corpus": "numbers:en-de",
             "options": {"max_value": 999,
                         "samples": {"train": 200, "validation": 16, "test": 16,
                                     "test_long": 8}},
             "tokenizer": "char", "max_len": 40, "batch_size": 8},
    "model": {"arch": "encoder_decoder", "d_model": 16, "layers": 1, "heads": 2,
              "position": "rotary"},
    "train": {"steps": 20, "warmup": 2, "val_every": 10, "checkpoint_every": 10,
              "log_every": 1, "progress": False, "accelerator": "cpu", "threads": 1},
    "eval": {"batches": 1, "decode_batches": 1, "beam_size": 1, "max_new_tokens": 30,
             "test_batches": 1},
    "seeds": [0],
}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _evaluation_steps(run_dir: Path, column: str) -> list[int]:
    return [int(r["step"]) for r in _rows(run_dir) if r.get(column)]


def _headings(markdown: str) -> list[str]:
    """The metric of every `### `metric` (...)` table heading, in order."""
    return re.findall(r"^### `([^`]+)` \(", markdown, flags=re.MULTILINE)


def _table_after(markdown: str, metric: str) -> str:
    start = markdown.index(f"### `{metric}` (")
    end = markdown.find("\n### ", start + 1)
    return markdown[start: end if end >= 0 else None]


# ------------------------------------------------------------------------ BLEU n/a


def test_bleu_is_not_applicable_on_references_shorter_than_its_order():
    one_word = ["zweihundert", "dreiundvierzig", "eins"]
    reason = bleu_not_applicable(one_word)
    assert reason is not None and "1 word" in reason and "4 words" in reason
    assert "3 words" in bleu_not_applicable(["a b c", "d"])
    assert bleu_not_applicable(["a b c d"]) is None  # one 4-gram is enough
    # A perfect translation of one-word references: exact match 100, chrF 100, and no BLEU
    # (sacreBLEU would say 0.0)
    perfect = corpus_scores(one_word, one_word)
    assert perfect == {"chrf": pytest.approx(100.0), "exact_match": 100.0}


@pytest.fixture(scope="module")
def numbers_run(tmp_path_factory) -> tuple[Path, Path]:
    """One real run of the numbers task (20 steps) and its report: (run dir, report.md)."""
    root = tmp_path_factory.mktemp("numbers")
    path = root / "numbers.yaml"
    path.write_text(yaml.safe_dump(NUMBERS))
    out = root / "runs"
    assert main(["run", str(path), "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    report = build_report([out], root / "report", probes=False)
    return run_dir, report


def test_one_word_references_record_bleu_as_not_applicable(numbers_run):
    run_dir, report = numbers_run
    summary = json.loads((run_dir / "summary.json").read_text())
    for split in ("val", "test", "test_long"):
        assert summary["metrics"][f"{split}/bleu"] is None  # null, never 0
        assert "1 word" in summary["not_applicable"][f"{split}/bleu"]
        assert summary["metrics"][f"{split}/exact_match"] is not None
    assert not any(r.get("val/bleu") or r.get("test/bleu") for r in _rows(run_dir))
    text = report.read_text()
    assert "`test/bleu`" in text and "n/a — the longest reference has 1 word" in text
    assert "### `test/bleu`" not in text  # no table of a figure that means nothing


def test_the_numbers_report_leads_with_exact_match(numbers_run):
    _, report = numbers_run
    text = report.read_text()
    assert "**Judged by:** `exact_match`, then `chrf`" in text
    headings = _headings(text)
    assert headings[:3] == ["test/exact_match", "test_long/exact_match", "val/exact_match"]
    assert headings[3:6] == ["test/chrf", "test_long/chrf", "val/chrf"]
    assert text.index("### `test/exact_match` (higher is better) and cost") < text.index(
        "### `val/loss`")


def test_validation_rows_carry_the_step_they_ran_at(numbers_run):
    """Validations run every `val_every` steps; each row is labelled with the steps taken, as
    training rows are (Lightning's own label lagged one behind: 9, 19 for 10, 20)."""
    run_dir, _ = numbers_run
    every, steps = NUMBERS["train"]["val_every"], NUMBERS["train"]["steps"]
    validations = _evaluation_steps(run_dir, "val/loss")
    # the periodic ones, then the final evaluation of the trained model
    assert validations == [*range(every, steps + 1, every), steps]
    assert _evaluation_steps(run_dir, "test/loss") == [steps]
    assert "step" not in json.loads((run_dir / "summary.json").read_text())["metrics"]


def test_a_validation_after_a_checkpoint_survives_the_resume(tiny, tmp_path):
    """Stopped right after the validation at step 10 (which ran after step 10's checkpoint):
    the resumed run does not validate at 10 again, so that row is kept, and none is doubled."""
    raw = copy.deepcopy(tiny)
    raw["train"].update(steps=20, val_every=10, checkpoint_every=10, threads=1)
    (spec,) = experiment_from_dict(raw).plan()
    run_dir = tmp_path / spec.run_id

    class Stop(L.Callback):
        def on_validation_end(self, trainer, module):
            if trainer.state.fn == TrainerFn.FITTING:
                raise EarlyStop("stopped after the first validation")

    quiet_lightning()
    with pytest.raises(EarlyStop):
        run_one(spec, run_dir, "tiny", callbacks=[Stop()])
    assert _evaluation_steps(run_dir, "val/loss") == [10]
    assert run_one(spec, run_dir, "tiny").status == "completed"
    assert _evaluation_steps(run_dir, "val/loss") == [10, 20, 20]
    assert sorted(_evaluation_steps(run_dir, "train/loss")) == list(range(20))


# ------------------------------------------------------------------------ eval.primary


def _config(raw: dict) -> dict:
    return experiment_from_dict(raw).base


def test_the_default_follows_the_task_and_the_corpus(tiny):
    assert judged_by(_config(tiny)) == ("val/loss",)  # language modelling
    numbers = copy.deepcopy(NUMBERS)
    assert judged_by(_config(numbers)) == ("exact_match", "chrf")  # a generated corpus
    prose = copy.deepcopy(NUMBERS)
    prose["data"].update(corpus="builtin:pydoc", options={})
    assert judged_by(_config(prose)) == ("bleu", "chrf")  # people's sentences
    numbers["eval"]["primary"] = "test_long/chrf"
    assert judged_by(_config(numbers)) == ("test_long/chrf", "exact_match", "chrf")


@pytest.mark.parametrize(("primary", "message"), [
    ("exact_mach", "unknown translation metric 'exact_mach' (did you mean 'exact_match'?)"),
    ("test_long/blue", "unknown translation metric 'blue' (did you mean 'bleu'?)"),
    ("tst/bleu", "unknown split 'tst' in 'tst/bleu' (did you mean 'test'?)"),
])
def test_a_bad_primary_exits_2_with_did_you_mean(primary, message, write_yaml, capsys):
    raw = copy.deepcopy(NUMBERS)
    raw["eval"]["primary"] = primary
    path = write_yaml("bad.yaml", raw)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: key 'eval.primary': {message}" in err
    assert "Traceback" not in err


def test_primary_does_not_change_the_run_id(tiny):
    chosen = copy.deepcopy(tiny)
    chosen["eval"]["primary"] = "test/loss"
    assert experiment_from_dict(chosen).plan()[0].run_id == \
        experiment_from_dict(tiny).plan()[0].run_id


def _translation_runs(root: Path, metrics: dict, *, primary: str | None = None,
                      corpus: str = "numbers:en-de") -> Path:
    """Hand-written translation runs: {(variant, seed): {metric: value}}."""
    for (variant, seed), values in metrics.items():
        run = write_run(root, "mt", f"{variant.split('=')[-1]}-s{seed}", variant=variant,
                        seed=seed, metrics=values)
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["task"] = {"name": "translation"}
        config["data"]["corpus"] = corpus
        config["eval"]["primary"] = primary
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    return root / "mt"


ROTARY = "model.position=rotary"


def test_ties_are_not_marked_and_one_seed_says_so(tmp_path):
    metrics = {}
    for variant, chrf in (("base", 91.0), (ROTARY, 95.0)):
        metrics[(variant, 0)] = {"test/exact_match": 100.0, "test/chrf": chrf,
                                 "val/loss": 0.5}
    report = build_report([_translation_runs(tmp_path, metrics)], tmp_path / "report",
                          probes=False).read_text()
    exact = _table_after(report, "test/exact_match")
    assert "100.0" in exact and "**" not in exact  # both 100.0: no best
    assert "No single best `test/exact_match`: `base`, `model.position=rotary` tie at " \
           "100.0." in report
    chrf = _table_after(report, "test/chrf")
    assert "**95.00**" in chrf and "Bold marks the best mean (from one seed" in chrf
    loss = _table_after(report, "val/loss")
    assert "**" not in loss and "0.5000" in loss  # equal losses: a tie too


def test_a_real_difference_over_seeds_is_marked_without_caveat(tmp_path):
    metrics = {(variant, seed): {"test/exact_match": value + seed}
               for variant, value in (("base", 60.0), (ROTARY, 80.0)) for seed in (0, 1)}
    groups = group_by_variant(load_runs([_translation_runs(tmp_path, metrics)]))
    best = best_variant(compare_metric(groups, "test/exact_match"), "test/exact_match")
    assert (best.variant, best.tied, best.one_seed) == (ROTARY, (), False)
    table = to_markdown([metric_table(groups, "test/exact_match", costs=False)])
    assert "**80.50 ± 0.7071**" in table and "**60" not in table


def test_a_declared_primary_leads_report_and_compare(tmp_path):
    metrics = {(variant, 0): {"val/loss": loss, "test/chrf": chrf, "test/exact_match": 50.0,
                              "test/bleu": None}
               for variant, loss, chrf in (("base", 1.0, 90.0), (ROTARY, 2.0, 80.0))}
    experiment = _translation_runs(tmp_path, metrics, primary="val/loss")
    report = build_report([experiment], tmp_path / "report", probes=False).read_text()
    assert _headings(report)[:3] == ["val/loss", "test/exact_match", "test/chrf"]
    assert "**Judged by:** `val/loss`, then `exact_match`, then `chrf` (`eval.primary`)" \
        in report
    text, _ = compare(experiment / "base-s0", experiment / "rotary-s0")
    rows = [line.split()[0] for line in text.splitlines() if line.startswith(("val/", "test/"))]
    assert rows[:3] == ["val/loss", "test/exact_match", "test/chrf"]
    assert "Judged by: val/loss, then exact_match, then chrf." in text


def test_compare_leads_with_exact_match_and_reads_bleu_as_na(numbers_run):
    run_dir, _ = numbers_run
    text, _ = compare(run_dir, run_dir)
    lines = [line for line in text.splitlines() if "/" in line.split(" ")[0]]
    assert lines[0].startswith("test/exact_match") and " tie " in f" {lines[0]} "
    (bleu,) = [line for line in lines if line.startswith("test/bleu")]
    assert bleu.split()[1:3] == ["n/a", "n/a"]
    assert "n/a for test/bleu, test_long/bleu, val/bleu: the longest reference has 1 word" \
        in text


# ------------------------------------------------------------------------ sweeps


@pytest.mark.parametrize(("experiment", "metric", "direction"), [
    (NUMBERS, "val/exact_match", "maximize"),
    ({**NUMBERS, "eval": {**NUMBERS["eval"], "primary": "test/chrf"}}, "val/chrf", "maximize"),
    ({**NUMBERS, "task": {"name": "lm"}, "data": {**NUMBERS["data"], "context": 16},
      "model": {"d_model": 16, "layers": 1, "heads": 2}}, "val/loss", "minimize"),
])
def test_a_sweeps_default_objective_is_the_primary(experiment, metric, direction, write_yaml):
    write_yaml("exp.yaml", experiment)
    path = write_yaml("sweep.yaml", {"experiment": "exp.yaml", "n_trials": 1, "space": {
        "train.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True}}})
    sweep = load_sweep(path)
    assert (sweep.metric, sweep.direction) == (metric, direction)
    named = write_yaml("named.yaml", {**yaml.safe_load(path.read_text()), "metric": "val/loss"})
    assert (load_sweep(named).metric, load_sweep(named).direction) == ("val/loss", "minimize")


def test_a_sweep_on_a_metric_that_is_not_applicable_exits_2(write_yaml, tmp_path, capsys):
    experiment = {**NUMBERS, "runs_dir": str(tmp_path / "runs"),
                  "train": {**NUMBERS["train"], "steps": 10}, "eval": {**NUMBERS["eval"],
                                                                       "test": False}}
    write_yaml("exp.yaml", experiment)
    path = write_yaml("sweep.yaml", {"experiment": "exp.yaml", "n_trials": 1, "metric":
                                     "val/bleu", "space": {"train.lr": {
                                         "type": "float", "low": 1.0e-4, "high": 1.0e-2}}})
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert "key 'metric': 'val/bleu' is not applicable to these runs: the longest reference " \
           "has 1 word" in err and "Traceback" not in err
