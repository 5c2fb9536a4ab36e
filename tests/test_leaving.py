"""Results that leave the suite: a run's tokenizer loads with HuggingFace `tokenizers`, a run
exports to safetensors and is rebuilt logit for logit, and translation figures carry their
sacreBLEU signatures into summaries and reports."""

from __future__ import annotations

import copy
import json
import os

import pytest
import sacrebleu
import torch
import yaml
from conftest import TINY
from tokenizers import Tokenizer as HFTokenizer

from tzoo.cli import main
from tzoo.components import ModelConfig, build_model
from tzoo.components.errors import ConfigError
from tzoo.recipes.checkpoints import load_run, save_final
from tzoo.recipes.experiment import experiment_from_dict
from tzoo.recipes.export import load_exported
from tzoo.recipes.runner import run_experiment
from tzoo.recipes.tasks import metric_names
from tzoo.recipes.tokenization import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    load_tokenizer,
    metadata_path,
)
from tzoo.recipes.translation import corpus_scores, score_signatures
from tzoo.reports.build import build_report

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = "Hello wörld!\n\tΣ 日本 \x00\x7f <eos-like> end"


def _tokenizers():
    return [CharTokenizer.train(["Hello world!\n\t end"]), ByteTokenizer(),
            BPETokenizer.train(["Hello world! some text, again and again. " * 30], 300)]


@pytest.mark.parametrize("tokenizer", _tokenizers(), ids=lambda t: t.kind)
def test_saved_tokenizer_loads_with_hf_tokenizers(tokenizer, tmp_path):
    path = tokenizer.save(tmp_path / "tokenizer.json")
    hf = HFTokenizer.from_file(str(path))
    assert hf.get_vocab_size() == tokenizer.vocab_size
    assert hf.encode(TEXT).ids == tokenizer.encode(TEXT)
    ids = tokenizer.encode(TEXT)
    assert hf.decode(ids) == tokenizer.decode(ids)
    for i, special in enumerate(("<pad>", "<bos>", "<eos>", "<mask>", "<sep>", "<unk>")):
        assert hf.token_to_id(special) == i
    meta = json.loads(metadata_path(path).read_text())
    assert metadata_path(path).name == "tokenizer.tzoo.json"
    assert meta["kind"] == tokenizer.kind and meta["fingerprint"] == tokenizer.fingerprint
    loaded = load_tokenizer(path)
    assert loaded.fingerprint == tokenizer.fingerprint  # a resumed run sees the same one
    assert loaded.encode(TEXT) == tokenizer.encode(TEXT)


@pytest.mark.parametrize("tokenizer", _tokenizers(), ids=lambda t: t.kind)
def test_tokenizers_of_older_runs_still_load(tokenizer, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(tokenizer.to_json())  # format 1: the suite's own JSON, no metadata
    loaded = load_tokenizer(path)
    assert loaded.fingerprint == tokenizer.fingerprint
    assert loaded.encode(TEXT) == tokenizer.encode(TEXT)


def test_a_tokenizer_without_its_metadata_is_refused(tmp_path):
    path = CharTokenizer.train(["abc"]).save(tmp_path / "tokenizer.json")
    metadata_path(path).unlink()
    with pytest.raises(ConfigError, match=r"tokenizer\.tzoo\.json"):
        load_tokenizer(path)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    config = copy.deepcopy(TINY)
    config["model"].update(attention={"name": "gqa", "kv_heads": 1}, output="tied")
    (outcome,) = run_experiment(experiment_from_dict(config),
                                out=tmp_path_factory.mktemp("lm") / "runs",
                                echo=lambda _: None)
    assert outcome.status == "completed"
    return outcome.run_dir


def test_a_runs_tokenizer_json_loads_with_hf_tokenizers(lm_run):
    hf = HFTokenizer.from_file(str(lm_run / "tokenizer.json"))
    ours = load_run(lm_run).tokenizer
    sample = "0123 4567 7654"
    assert hf.encode(sample).ids == ours.encode(sample)


def _logits_equal(model_a, model_b, vocab: int, **inputs) -> None:
    torch.manual_seed(1)
    tokens = torch.randint(6, vocab, (3, 9))
    with torch.no_grad():
        if "source" in inputs:
            a = model_a(inputs["source"], tokens)
            b = model_b(inputs["source"], tokens)
        else:
            a, b = model_a(tokens), model_b(tokens)
    assert torch.equal(a, b)


def test_export_safetensors_rebuilds_the_model_logit_for_logit(lm_run, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(lm_run), "--format", "safetensors", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer.tzoo.json"]
    original = load_run(lm_run)
    vocab = original.model.config.vocab_size
    exported = load_exported(out)
    _logits_equal(original.model, exported.model, vocab)
    assert exported.tokenizer.fingerprint == original.tokenizer.fingerprint
    # the four-line recipe in config.json works from the folder alone
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["run_id"] == lm_run.name and config["model"]["output"] == "tied"
    cwd = os.getcwd()
    try:
        os.chdir(out)
        scope: dict = {}
        exec(config["rebuild"], scope)  # the documented recipe, run as written
    finally:
        os.chdir(cwd)
    _logits_equal(original.model, scope["model"], vocab)
    # the weights are plain safetensors: every name of the model's state dict
    from safetensors.torch import load_file

    assert set(load_file(str(out / "model.safetensors"))) == set(
        original.model.state_dict())
    assert main(["export", str(tmp_path)]) == 2  # not a finished run
    assert "final checkpoint" in capsys.readouterr().err


def test_export_an_encoder_decoder(tmp_path):
    run_dir = tmp_path / "run"
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="encoder_decoder", vocab_size=20, d_model=16,
                                    layers=1, heads=2, position="relative", output="untied"))
    save_final(run_dir, model, task_supplies_prefix=False)
    CharTokenizer.train(["abcdefghijklmn"]).save(run_dir / "tokenizer.json")
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "translation"}}))
    assert main(["export", str(run_dir)]) == 0
    exported = load_exported(run_dir / "export")
    source = torch.randint(6, 20, (3, 7))
    _logits_equal(load_run(run_dir).model, exported.model, 20, source=source)


HYPOTHESES = ["the cat sat on a mat", "a dog barks loud", "hello there"]
REFERENCES = ["the cat sat on the mat", "the dog barks loudly", "hello there"]


def test_bleu_and_chrf_are_sacrebleu_both():
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    assert scores["bleu"] == sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score
    assert scores["chrf"] == sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score
    signatures = score_signatures()
    assert signatures["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|")
    assert signatures["chrf"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|")
    assert signatures["bleu"].endswith(f"version:{sacrebleu.__version__}")


def test_translation_summary_and_report_carry_signatures(tmp_path):
    config = copy.deepcopy(TINY)
    config["task"] = {"name": "translation"}
    config["data"].update(corpus="synthetic:reverse", max_len=12,
                          options={"vocab": 6, "length": 5,
                                   "samples": {"train": 100, "validation": 16, "test": 8,
                                               "test_long": 8}})
    config["train"]["steps"] = 4
    config["eval"].update(max_new_tokens=8, beam_size=2)
    experiment = experiment_from_dict(config)
    (outcome,) = run_experiment(experiment, out=tmp_path / "runs" / "mt", echo=lambda _: None)
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    signed = sorted(m for m in summary["metrics"] if m.endswith(("/bleu", "/chrf")))
    assert signed == ["test/bleu", "test/chrf", "test_long/bleu", "test_long/chrf",
                      "val/bleu", "val/chrf"]
    expected = score_signatures()
    assert summary["signatures"] == {m: expected[m.split("/")[1]] for m in signed}
    # the metrics a sweep may name are exactly what the run recorded
    assert sorted(summary["metrics"]) == sorted(
        metric_names(experiment.base, ["train", "validation", "test", "test_long"]))

    report = build_report([tmp_path / "runs" / "mt"], tmp_path / "report", title="mt",
                          command="tzoo report", probes=False)
    text = report.read_text()
    # five-symbol references are too short for BLEU (#20): chrF carries its signature, BLEU
    # reads n/a with its reason instead of a figure to sign
    for metric in ("test/chrf", "val/chrf"):
        signature = expected[metric.split("/")[1]]
        assert f"`{metric}`: sacreBLEU signature `{signature}`" in text
    assert "`test/bleu`" in text and "n/a" in text
