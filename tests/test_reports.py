"""The report builder, read from hand-written run directories (see fixtures_runs.py)."""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from fixtures_runs import (
    BASE,
    BLEU,
    DIVERGED_REASON,
    FAILED_REASON,
    ROTARY,
    VAL_LOSS,
    CharTokenizer,
    TinyLM,
    completed_metrics,
    fake_load_run,
    make_experiment,
    write_run,
)
from scipy import stats as sps

from tzoo.cli import main
from tzoo.components.errors import ConfigError
from tzoo.reports.build import build_report
from tzoo.reports.cli import compare_command, report_command
from tzoo.reports.compare import compare
from tzoo.reports.direction import better, lower_is_better
from tzoo.reports.probe_runner import probe_model, probe_run
from tzoo.reports.runs import group_by_fingerprint, group_by_variant, load_run, load_runs
from tzoo.reports.stats import ONE_SEED, summarise, welch
from tzoo.reports.study import resolve_study
from tzoo.sweeps.results import SweepResult, read_studies, write_study_json

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full report (with stand-in probes) shared by the read-only tests below."""
    root = tmp_path_factory.mktemp("runs")
    experiment = make_experiment(root, checkpoint=True)
    out = tmp_path_factory.mktemp("report")
    bench = out.parent / "bench.json"
    bench.write_text(json.dumps([
        {"variant": BASE, "train_tokens_per_s": 12_345.0, "peak_mem_mb": 812.5, "mfu": 0.31},
        {"variant": ROTARY, "train_tokens_per_s": 11_800.0, "peak_mem_mb": 820.0, "mfu": 0.29},
    ]))
    return build_report([experiment], out, command="tzoo report runs/positions",
                        bench=bench, probe_loader=fake_load_run)


def _section(markdown: str, heading: str) -> str:
    """The text of the `## heading` section up to the next level-2 heading."""
    start = markdown.index(f"## {heading}")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end >= 0 else None]


def _assert_png(path: Path) -> None:
    import matplotlib.image
    from PIL import Image

    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as image:
        image.verify()
    assert matplotlib.image.imread(path).size > 0


# --- statistics in the table ------------------------------------------------------------------


def test_table_has_means_and_stds(report: Path) -> None:
    text = report.read_text()
    for variant in (BASE, ROTARY):
        losses = [VAL_LOSS[(variant, s)] for s in (0, 1)]
        bleus = [BLEU[(variant, s)] for s in (0, 1)]
        for values in (losses, bleus):
            expected = f"{statistics.mean(values):#.4g} ± {statistics.stdev(values):#.4g}"
            assert expected in text, expected
    # The diverged seed (NaN loss) is counted apart, not pooled into the rotary mean.
    assert f"| `{ROTARY}` | 2 +1 diverged |" in _section(text, "Results")


def test_delta_and_p_value_are_welch(report: Path) -> None:
    base = [VAL_LOSS[(BASE, s)] for s in (0, 1)]
    rotary = [VAL_LOSS[(ROTARY, s)] for s in (0, 1)]
    p = sps.ttest_ind(rotary, base, equal_var=False).pvalue
    delta = welch(rotary, base)
    assert delta.p_value == pytest.approx(p)
    assert delta.diff == pytest.approx(statistics.mean(rotary) - statistics.mean(base))
    text = report.read_text()
    assert "Welch's t-test" in text
    assert f"| {p:.2f} |" in text


def test_summary_statistics() -> None:
    values = [1.0, 2.0, 4.0]
    s = summarise(values)
    assert s is not None
    assert s.mean == pytest.approx(statistics.mean(values))
    assert s.std == pytest.approx(statistics.stdev(values))
    half = sps.t.ppf(0.975, 2) * statistics.stdev(values) / math.sqrt(3)
    assert (s.ci_low, s.ci_high) == pytest.approx((s.mean - half, s.mean + half))
    one = summarise([3.0, None, float("nan")])
    assert one is not None and one.n == 1 and math.isnan(one.std)
    assert welch([1.0], [1.0, 2.0]).note == ONE_SEED


def test_direction_rule() -> None:
    assert lower_is_better("val/loss@2x") and lower_is_better("val/ppl")
    assert lower_is_better("val/bpc")
    assert lower_is_better("test/bleu") is False and lower_is_better("val/exact_match") is False
    assert lower_is_better("tokens_per_s") is None
    assert better("val/loss", 1.0, 2.0) == -1 and better("val/chrf", 1.0, 2.0) == 1


# --- runs that did not complete -----------------------------------------------------------------


def test_non_completed_runs_are_listed_with_reasons(report: Path) -> None:
    section = _section(report.read_text(), "Runs that did not complete")
    assert "| `rotary-s2` |" in section and "diverged" in section
    assert DIVERGED_REASON in section
    assert "| `alibi-s0` |" in section and "failed" in section and FAILED_REASON in section
    assert "| `base-s3` |" in section and "running" in section


def test_malformed_and_partial_runs_are_tolerated(tmp_path: Path) -> None:
    run = write_run(tmp_path, "exp", "broken", variant=BASE, seed=0)
    (run / "summary.json").write_text("{not json")
    (run / "metrics.csv").write_text("step,train/loss\n1,")
    partial = write_run(tmp_path, "exp", "partial", variant=BASE, seed=1, summary=False)
    assert load_run(run).status == "unreadable"
    assert load_run(partial).status == "running"
    assert load_run(partial).experiment == "exp"
    out = build_report([tmp_path / "exp"], tmp_path / "out", probes=False)
    section = _section(out.read_text(), "Runs that did not complete")
    assert "unreadable" in section and "running" in section


# --- figures and HTML ---------------------------------------------------------------------------


def test_every_referenced_plot_is_a_valid_png(report: Path) -> None:
    links = IMAGE_LINK.findall(report.read_text())
    names = {Path(link).name for link in links}
    assert {"loss_curves.png", "final_metrics.png", "extrapolation.png",
            "grad_norms.png"} <= names
    assert {"attention_self.png", "induction.png", "position_similarity.png",
            "contextual_drift.png"} <= names
    for link in links:
        assert not Path(link).is_absolute() and not link.startswith(("http", "/"))
        _assert_png(report.parent / link)


def test_html_is_self_contained(report: Path) -> None:
    html = (report.parent / "index.html").read_text()
    external = re.compile(
        r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)|url\(\s*["']?\s*(?:https?:|//)|@import""",
        re.IGNORECASE,
    )
    assert not external.search(html)
    sources = re.findall(r"<img\b[^>]*\bsrc\s*=\s*[\"']([^\"']*)", html, re.IGNORECASE)
    assert len(sources) == len(IMAGE_LINK.findall(report.read_text()))
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in html.lower() and "<link" not in html.lower()


def test_html_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed; the HTML is only checked statically")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,900",
         (report.parent / "index.html").resolve().as_uri()],
        check=False, capture_output=True, timeout=60,
    )
    assert shot.is_file() and shot.stat().st_size > 1000
    _assert_png(shot)


# --- data fingerprints, bench, sweep -----------------------------------------------------------


def test_different_data_fingerprints_are_never_pooled(tmp_path: Path) -> None:
    for seed, loss in ((0, 1.0), (1, 1.2)):
        write_run(tmp_path, "mixed", f"a{seed}", variant=BASE, seed=seed,
                  metrics={"val/loss": loss}, fingerprint="fp-A")
    for seed, loss in ((0, 5.0), (1, 5.4)):
        write_run(tmp_path, "mixed", f"b{seed}", variant=BASE, seed=seed,
                  metrics={"val/loss": loss}, fingerprint="fp-B")
    assert set(group_by_fingerprint(load_runs([tmp_path / "mixed"]))) == {"fp-A", "fp-B"}
    text = build_report([tmp_path / "mixed"], tmp_path / "out", probes=False).read_text()
    assert "2 different data sets" in text
    assert "Results for data `fp-A`" in text and "Results for data `fp-B`" in text
    assert f"{statistics.mean([1.0, 1.2]):#.4g} ± {statistics.stdev([1.0, 1.2]):#.4g}" in text
    assert f"{statistics.mean([5.0, 5.4]):#.4g} ± {statistics.stdev([5.0, 5.4]):#.4g}" in text
    pooled = [1.0, 1.2, 5.0, 5.4]
    assert f"{statistics.mean(pooled):#.4g} ± {statistics.stdev(pooled):#.4g}" not in text


def test_bench_table(report: Path) -> None:
    section = _section(report.read_text(), "Cost benchmark")
    assert "12.3k" in section and "31.0%" in section and "812.5" in section


def test_sweep_section_from_study_and_journal(tmp_path: Path) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = tmp_path / "sweep.log"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="lr-sweep", storage=storage,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("lr", 1e-4, 1e-1, log=True) - 0.01) ** 2
                   + 0.01 * t.suggest_int("layers", 1, 4), n_trials=12)
    # Every accepted form resolves to the same study; one full report is enough.
    for given in (study, journal, str(journal)):
        assert len(resolve_study(given).trials) == 12
    experiment = make_experiment(tmp_path)
    out = build_report([experiment], tmp_path / "out", study=(journal, "lr-sweep"),
                       probes=False)
    section = _section(out.read_text(), "Sweep")
    assert "`lr-sweep`" in section and "12 trials" in section
    assert "sweep_history.png" in section and "sweep_importances.png" in section
    assert "Where the trials went" in section and "sweep_landscape.png" in section  # lr, layers
    for link in IMAGE_LINK.findall(section):
        _assert_png(out.parent / link)
    with pytest.raises(ConfigError):
        build_report([experiment], tmp_path / "out", study=(journal, "nope"), probes=False)


# --- compare -------------------------------------------------------------------------------------


def test_compare_names_the_better_side_per_metric(tmp_path: Path) -> None:
    # "small" wins on loss (lower), "large" wins on BLEU (higher).
    for seed in (0, 1):
        write_run(tmp_path, "small", f"s{seed}", variant=BASE, seed=seed,
                  metrics={"val/loss": 1.5 + 0.1 * seed, "test/bleu": 20.0 + seed})
        write_run(tmp_path, "large", f"l{seed}", variant=BASE, seed=seed,
                  metrics={"val/loss": 2.0 + 0.1 * seed, "test/bleu": 30.0 + seed})
    text, markdown = compare(tmp_path / "small", tmp_path / "large")
    rows = {line.split()[0]: line for line in text.splitlines()
            if line.startswith(("val/", "test/"))}
    assert rows["val/loss"].split()[-2] == "small"
    assert rows["test/bleu"].split()[-2] == "large"
    assert "1.550 ± 0.07071" in text
    assert re.search(r"\| `val/loss` \|[^\n]*\| small \|", markdown)
    assert re.search(r"\| `test/bleu` \|[^\n]*\| large \|", markdown)


def test_compare_matches_variants_within_experiments(tmp_path: Path) -> None:
    a = make_experiment(tmp_path / "a")
    b = make_experiment(tmp_path / "b")
    text, markdown = compare(a, b)
    assert ROTARY in text and "| variant |" in markdown


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_report_and_compare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    experiment = make_experiment(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["tzoo", "report", "runs/positions"])
    assert report_command(["runs/positions"], None, "Position ablation") == 0
    report = tmp_path / "reports" / "positions" / "report.md"
    text = report.read_text()
    assert text.startswith("# Position ablation")
    assert "tzoo report runs/positions" in text
    assert (report.parent / "index.html").is_file()
    assert compare_command(str(experiment), str(experiment), str(tmp_path / "c.md")) == 0
    assert "val/loss" in capsys.readouterr().out and (tmp_path / "c.md").is_file()
    with pytest.raises(ConfigError, match="no run directories"):
        report_command([str(tmp_path / "missing")], None, None)
    with pytest.raises(ConfigError):
        compare_command(str(tmp_path / "missing"), str(experiment), None)


# --- probes --------------------------------------------------------------------------------------


def _tiny_models() -> list:
    models = [pytest.param(lambda: TinyLM(vocab=40), id="stand-in")]
    try:
        from tzoo.components.model import build_model
    except ImportError as exc:  # the model is under construction elsewhere
        reason = f"tzoo.components.model not importable: {exc}"
        models.append(pytest.param(None, id="real", marks=pytest.mark.skip(reason=reason)))
        return models
    spec = {"vocab_size": 40, "d_model": 16, "layers": 2, "heads": 2, "max_len": 64}
    models.append(pytest.param(lambda: build_model(spec).eval(), id="real-learned"))
    models.append(pytest.param(lambda: build_model({**spec, "position": "rotary"}).eval(),
                               id="real-rotary"))
    models.append(pytest.param(lambda: build_model({**spec, "arch": "encoder_decoder"}).eval(),
                               id="real-encoder-decoder"))
    return models


@pytest.mark.parametrize("make_model", _tiny_models())
def test_probes_produce_pngs(make_model, tmp_path: Path) -> None:
    model = make_model()
    results = {r.name: r for r in probe_model(model, CharTokenizer(), tmp_path)}
    assert set(results) == {"attention_maps", "position_similarity", "position_decoding",
                            "induction", "neighbours", "contextual_drift"}
    for result in results.values():
        if result.skipped:
            # Only the learned-position probe may not apply (to rotary etc.).
            assert result.name == "position_similarity", result.skipped
            assert "does not apply" in result.skipped
            continue
        assert result.caption
        for figure in result.figures:
            _assert_png(figure)
    induction = results["induction"].numbers["max_induction"]
    assert 0.0 <= induction <= 1.0
    assert results["contextual_drift"].numbers["cos_embedding"] == pytest.approx(1.0, abs=1e-4)
    headers, rows = results["neighbours"].table
    assert len(rows) == 6 and len(headers) == 2


def test_probes_skip_without_loader_or_checkpoint(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = make_experiment(tmp_path / "runs")
    no_ckpt = load_run(experiment / "base-s0")
    (skipped,) = probe_run(no_ckpt, tmp_path / "p")
    assert "no checkpoint" in (skipped.skipped or "")
    with_ckpt = load_run(write_run(tmp_path / "runs", "other", "r", variant=BASE, seed=0,
                                   metrics=completed_metrics(BASE, 0), checkpoint=True))
    # The real loader is imported lazily; a stand-in module exercises that import path.
    fake = types.ModuleType("tzoo.recipes.checkpoints")
    fake.load_run = fake_load_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tzoo.recipes.checkpoints", fake)
    results = probe_run(with_ckpt, tmp_path / "p")
    assert len(results) == 6 and all(r.figures or r.table for r in results)
    monkeypatch.setitem(sys.modules, "tzoo.recipes.checkpoints", None)  # -> ImportError
    (skipped,) = probe_run(with_ckpt, tmp_path / "p")
    assert "probe skipped" in (skipped.skipped or "")


def test_position_decoding_finds_learned_positions_and_none_in_a_nope_embedding(tmp_path):
    import torch

    from tzoo.components import ModelConfig, build_model
    from tzoo.reports.probes import position_decoding

    torch.manual_seed(0)
    common = dict(vocab_size=40, d_model=32, layers=2, heads=4, max_len=16)
    learned = build_model(ModelConfig(position="learned", **common)).eval()
    nope = build_model(ModelConfig(position="none", **common)).eval()
    with_table = position_decoding(learned, tmp_path / "learned", length=16)
    without = position_decoding(nope, tmp_path / "nope", length=16)
    assert with_table.numbers["r2_embedding"] > 0.5  # a random table is already decodable
    assert without.numbers["r2_embedding"] < 0.1  # token embeddings alone carry no position
    _assert_png(with_table.figures[0])
    _assert_png(without.figures[0])


def test_same_variant_name_with_different_configs_is_not_pooled(tmp_path: Path) -> None:
    """Seeds of one configuration pool; a run of the same variant name over a different base
    (here d_model 64 instead of 32) is its own group, named with its config digest."""
    for seed in (0, 1):
        write_run(tmp_path, "mixed", f"rotary-s{seed}", variant=ROTARY, seed=seed,
                  metrics={"val/loss": 2.0 + seed / 10})
    other = write_run(tmp_path, "mixed", "rotary-wide-s0", variant=ROTARY, seed=0,
                      metrics={"val/loss": 1.5})
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["model"]["d_model"] = 64
    (other / "config.yaml").write_text(yaml.safe_dump(config))

    groups = group_by_variant(load_runs([tmp_path / "mixed"]))
    assert sorted(len(g.runs) for g in groups) == [1, 2]
    names = [g.name for g in groups]
    assert len(set(names)) == 2 and all(re.fullmatch(rf"{re.escape(ROTARY)} \[[0-9a-f]{{8}}\]", n)
                                        for n in names)
    assert {r.run_id for g in groups if len(g.runs) == 2 for r in g.runs} == {"rotary-s0",
                                                                               "rotary-s1"}


def _grid_runs(root: Path) -> None:
    """A 2×2 grid (residual × layers), two seeds a cell; loss = depth effect + residual
    effect, so the within-depth contrast of `none` is exactly +1.0 at both depths."""
    for residual, shift in (("add", 0.0), ("none", 1.0)):
        for layers, depth in ((2, 0.5), (6, 0.0)):
            name = f"model.residual={residual}, model.layers={layers}"
            for seed in (0, 1):
                path = write_run(root, "grid", f"{residual}-{layers}-s{seed}", variant=BASE,
                                 seed=seed, metrics={"val/loss": 2.0 + depth + shift + seed / 100})
                summary = json.loads((path / "summary.json").read_text())
                summary.update(variant_name=name, base_variant=False,
                               variant={"model.residual": residual, "model.layers": layers})
                (path / "summary.json").write_text(json.dumps(summary))


def test_reference_compares_each_cell_within_its_slice(tmp_path: Path) -> None:
    _grid_runs(tmp_path)
    groups = group_by_variant(load_runs([tmp_path / "grid"]), {"model.residual": "add"})
    by_name = {g.name: g for g in groups}
    anchors = sorted(g.name for g in groups if g.is_reference)
    assert anchors == ["model.residual=add, model.layers=2", "model.residual=add, model.layers=6"]
    for layers in (2, 6):
        group = by_name[f"model.residual=none, model.layers={layers}"]
        assert group.reference is by_name[f"model.residual=add, model.layers={layers}"]
    report = build_report([tmp_path / "grid"], tmp_path / "out", probes=False,
                          reference={"model.residual": "add"}).read_text()
    assert "Δ vs reference" in report and "(reference)" in report
    assert report.count("| +1.000 (") == 2  # Δ of `none` at each depth, not depth mixed in


def test_reference_flag_and_declared_reference(tmp_path: Path, capsys) -> None:
    _grid_runs(tmp_path)
    out = tmp_path / "flag"
    assert main(["report", str(tmp_path / "grid"), "--out", str(out),
                 "--reference", "model.residual=add"]) == 0
    assert "--reference model.residual=add" in (out / "report.md").read_text()
    assert "Δ vs reference" in (out / "report.md").read_text()
    # Declared by the experiment (`ablate.reference`, recorded in each summary): the default.
    for summary_path in (tmp_path / "grid").glob("*/summary.json"):
        summary = json.loads(summary_path.read_text())
        summary["reference"] = {"model.residual": "add"}
        summary_path.write_text(json.dumps(summary))
    groups = group_by_variant(load_runs([tmp_path / "grid"]))
    assert sum(g.is_reference for g in groups) == 2
    # A typo names the flag and suggests the axis; exit code 2, nothing written.
    assert main(["report", str(tmp_path / "grid"), "--out", str(tmp_path / "typo"),
                 "--reference", "model.residul=add"]) == 2
    assert "did you mean 'model.residual'" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_welch_without_spread() -> None:
    """Both sides equal up to rounding: no test. One side without spread: a valid Welch test
    (scipy's precision warning is not passed on)."""
    assert welch([1.0, 1.0, 1.0 - 1e-16], [1.0, 1.0, 1.0]).note == "n/a (no spread)"
    one_sided = welch([99.9, 100.0, 100.0], [100.0, 100.0, 100.0])
    assert one_sided.note is None and one_sided.p_value == pytest.approx(0.4226, abs=1e-3)


def test_a_journal_with_several_studies_gets_a_section_each(tmp_path: Path) -> None:
    """A sweep with `per` keeps one study per value in one journal: the report shows each."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = tmp_path / "study.journal"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    for name, target in (("sw-pre", 0.01), ("sw-post", 0.001)):
        study = optuna.create_study(study_name=name, storage=storage,
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(lambda t, target=target: (t.suggest_float("lr", 1e-4, 1e-1, log=True)
                                                 - target) ** 2, n_trials=6)
    text = build_report([make_experiment(tmp_path)], tmp_path / "out", study=journal,
                        probes=False).read_text()
    assert "## Sweep: sw-post" in text and "## Sweep: sw-pre" in text
    links = IMAGE_LINK.findall(text)
    histories = [link for link in links if link.endswith("sweep_history.png")]
    assert len(histories) == len(set(histories)) == 2
    for link in histories:
        _assert_png(tmp_path / "out" / link)


def test_a_sweep_report_reads_the_same_from_study_json_alone(tmp_path: Path,
                                                             monkeypatch) -> None:
    """study.json is the snapshot of a sweep's storage: `tzoo report` on runs whose folder
    holds it and no journal draws the same sweep sections, without importing Optuna."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = tmp_path / "study.journal"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    for name, target in (("sw-pre", 0.01), ("sw-post", 0.001)):
        study = optuna.create_study(study_name=name, storage=storage,
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(lambda t, target=target: (t.suggest_float("lr", 1e-4, 1e-1, log=True)
                                                 - target) ** 2
                       + 0.01 * t.suggest_int("layers", 1, 4), n_trials=6)
    experiment = make_experiment(tmp_path)
    write_study_json(SweepResult(sweep="sw", metric="val/loss", direction="minimize",
                                 per="model.placement", storage=str(journal),
                                 space=["lr", "layers"], studies=read_studies(journal)),
                     experiment)
    from_storage = build_report([experiment], tmp_path / "storage", study=journal,
                                probes=False).read_text()
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` fails from here on
    out = tmp_path / "snapshot"
    assert main(["report", str(experiment), "--out", str(out), "--no-probes"]) == 0
    from_snapshot = (out / "report.md").read_text()
    for name in ("sw-pre", "sw-post"):
        section = _section(from_snapshot, f"Sweep: {name}")
        assert section == _section(from_storage, f"Sweep: {name}")
        assert "sweep_history.png" in section and "sweep_importances.png" in section
        assert "sweep_landscape.png" in section  # drawn from the snapshot, without optuna
        for link in IMAGE_LINK.findall(section):
            _assert_png(out / link)


def test_no_probes_flag_leaves_the_probe_section_out(tmp_path: Path) -> None:
    _grid_runs(tmp_path)
    out = tmp_path / "plain"
    assert main(["report", str(tmp_path / "grid"), "--out", str(out), "--no-probes"]) == 0
    text = (out / "report.md").read_text()
    assert "--no-probes" in text and "What the models learned" not in text
    assert "What each part does" not in text  # the interventions are probes too
    assert not (out / "probes").exists() and not (out / "interventions").exists()


def test_run_list_shows_directories_relative_to_where_the_report_ran(tmp_path: Path,
                                                                      monkeypatch) -> None:
    write_run(tmp_path, "rel", "r-s0", variant=BASE, seed=0, metrics={"val/loss": 2.0})
    monkeypatch.chdir(tmp_path)
    text = build_report(["rel"], tmp_path / "out", probes=False).read_text()
    assert "| `rel/r-s0` |" in text and str(tmp_path) not in _section(text, "All runs")


def test_runs_that_split_repeated_tokens_get_the_phase_change_panel():
    """Where any run records `val/loss_repeat` (eval.repeat_loss), the loss curves gain a panel
    of it: the induction study's phase change is that curve."""
    from tzoo.reports.plots import curve_panels

    plain = [{"run-a": {"train/loss": [], "val/loss": []}}]
    assert [metric for metric, _ in curve_panels(plain)] == ["train/loss", "val/loss"]
    split = [*plain, {"run-b": {"val/loss": [], "val/loss_repeat": []}}]
    assert [metric for metric, _ in curve_panels(split)] == ["train/loss", "val/loss",
                                                             "val/loss_repeat"]


def test_a_test_split_that_repeats_validation_gets_a_note_not_a_table(tmp_path: Path) -> None:
    # Tiny Shakespeare has no test split: its validation split is evaluated twice, and a second
    # table of the same numbers would read as a held-out estimate.
    for variant in (BASE, ROTARY):
        for seed in (0, 1):
            loss = 2.0 + 0.1 * seed + (0.2 if variant == BASE else 0.0)
            write_run(tmp_path, "twin", f"{variant[-6:]}-s{seed}", variant=variant, seed=seed,
                      metrics={"val/loss": loss, "test/loss": loss})
    text = build_report([tmp_path / "twin"], tmp_path / "out", probes=False).read_text()
    assert "`test/loss` equals `val/loss` in every completed run" in text
    assert "### `test/loss`" not in text and "### `val/loss`" in text
    # One run that differs: the test split is a split of its own, and gets its table.
    write_run(tmp_path, "twin", "other-s2", variant=ROTARY, seed=2,
              metrics={"val/loss": 2.0, "test/loss": 2.05})
    text = build_report([tmp_path / "twin"], tmp_path / "out2", probes=False).read_text()
    assert "equals `val/loss`" not in text and "### `test/loss`" in text


def test_a_p_value_is_never_printed_as_zero() -> None:
    from tzoo.reports.fmt import p_value

    assert p_value(0.00034) == "0.00034"  # three decimals printed "0.000" in a takeaway
    assert p_value(5e-5) == "5.0e-05" and p_value(0.016) == "0.016" and p_value(0.5) == "0.50"
    assert all(float(p_value(p)) > 0 for p in (1e-12, 1e-4, 0.00099, 0.001, 0.0999))
