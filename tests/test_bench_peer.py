"""`python -m tzoo.recipes.bench.peer`: the wrapper around the shared peer harness. The harness
itself and nanoGPT's model.py live outside the repository, so these tests drive the wrapper with
a stand-in harness script (a real subprocess writing the harness's JSON) and check the refusals,
the ratios and the report."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap

import pytest
import torch

from tzoo.recipes.bench import peer


def _run(nanogpt, a, b, tokens, peak, built=300.0, step=0.1):
    return {"peer": "nanogpt" if a == "nanogpt" else f"factory=tzoo_factory:{a}", "round": b,
            "tokens_per_s": tokens, "peak_rss_mb": peak, "rss_built_mb": built,
            "step_s_median": step}


def _harness_doc(runs):
    return {"runs": runs, "flops_per_token": {"total": 1000}, "matmul_limit_gflops": 1.0,
            "versions": {"cpu": "test cpu x2"}}


def test_ratios_are_medians_of_per_round_ratios():
    doc = _harness_doc([
        _run(None, "nanogpt", 0, 100.0, 400.0), _run(None, "nanogpt", 1, 200.0, 420.0),
        _run(None, "nanogpt", 2, 100.0, 410.0),
        _run(None, "learned", 0, 110.0, 400.0), _run(None, "learned", 1, 180.0, 400.0),
        _run(None, "learned", 2, 100.0, 400.0),
        _run(None, "alibi", 0, 55.0, 500.0), _run(None, "alibi", 1, 90.0, 500.0),
        _run(None, "alibi", 2, 50.0, 500.0),
        {"peer": "factory=tzoo_factory:relative", "round": 0, "error": "boom"},
    ])
    summary = peer.summarise(doc)
    learned, alibi = summary["learned"], summary["alibi"]
    assert learned["speed_vs_nanogpt"] == {"median": 1.0, "min": 0.9, "max": pytest.approx(1.1)}
    assert alibi["speed_vs_base"]["median"] == pytest.approx(0.5)
    assert alibi["train_mb"]["median"] == 200.0  # peak minus the RSS after building
    assert alibi["train_mb_vs_base"]["median"] == pytest.approx(2.0)
    assert learned["mfu"] == pytest.approx(110.0 * 1000 / 1e9)
    assert summary["_errors"] == ["relative"]
    text = peer.summary_markdown({"summary": summary})
    assert "| alibi |" in text and "0.50 (0.50–0.50)" in text and "Failed: relative" in text


def test_missing_or_foreign_nanogpt_is_refused_with_exit_2(tmp_path, capsys):
    harness = tmp_path / "peer_bench.py"
    harness.write_text("")
    assert peer.main(["--harness", str(harness), "--nanogpt", "", "--out",
                      str(tmp_path / "out")]) == 2
    assert "NANOGPT_MODEL_PATH" in capsys.readouterr().err
    other = tmp_path / "model.py"
    other.write_text("print('not nanoGPT')\n")
    assert peer.main(["--harness", str(harness), "--nanogpt", str(other), "--out",
                      str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "sha256" in err and peer.NANOGPT_SHA256 in err
    assert not (tmp_path / "out").exists()


def test_bad_shapes_and_variants_are_refused():
    with pytest.raises(peer.PeerError, match="CONTEXTxBATCH"):
        peer.parse_shapes("256x16,1024")
    assert peer.parse_shapes("256x16, 2048X2") == [(256, 16), (2048, 2)]


# A stand-in for ../shared/bench/peer_bench.py: the same command line and output files.
STAND_IN = textwrap.dedent('''
    import argparse, json, os
    p = argparse.ArgumentParser()
    p.add_argument("--peers"); p.add_argument("--factory", action="append", default=[])
    for flag in ("--ctx", "--batch", "--rounds", "--steps", "--warmup", "--threads"):
        p.add_argument(flag, type=int)
    p.add_argument("--no-profile", action="store_true"); p.add_argument("--scaling-peer")
    p.add_argument("--json-out"); p.add_argument("--md-out")
    a = p.parse_args()
    assert os.environ["NANOGPT_MODEL_PATH"].endswith("model.py")
    peers = [a.peers] + ["factory=" + f for f in a.factory]
    runs = [{"peer": name, "round": r, "tokens_per_s": 1000.0 * (i + 1), "peak_rss_mb": 500.0,
             "rss_built_mb": 300.0, "step_s_median": a.ctx / 1e4}
            for r in range(a.rounds) for i, name in enumerate(peers)]
    json.dump({"runs": runs, "flops_per_token": {"total": 100}, "matmul_limit_gflops": 1.0,
               "versions": {"cpu": "stand-in"}}, open(a.json_out, "w"))
    open(a.md_out, "w").write("harness table for ctx %d\\n" % a.ctx)
''')


def test_a_run_writes_peer_md_and_json_per_shape(tmp_path, monkeypatch):
    harness = tmp_path / "peer_bench.py"
    harness.write_text(STAND_IN)
    nanogpt = tmp_path / "scratch" / "model.py"
    nanogpt.parent.mkdir()
    nanogpt.write_text("# stands in for nanoGPT\n")
    monkeypatch.setattr(peer, "NANOGPT_SHA256", hashlib.sha256(nanogpt.read_bytes()).hexdigest())
    monkeypatch.setattr(sys, "argv", ["peer", "--shapes", "32x4,64x2"])
    out = tmp_path / "out"
    code = peer.main(["--harness", str(harness), "--nanogpt", str(nanogpt.parent), "--shapes",
                      "32x4,64x2", "--variants", "learned,alibi", "--rounds", "2", "--out",
                      str(out)])
    assert code == 0
    doc = json.loads((out / "peer.json").read_text())
    assert [(s["context"], s["batch"], s["threads"]) for s in doc["shapes"]] == [
        (32, 4, 2), (64, 2, 2)]
    alibi = doc["shapes"][0]["summary"]["alibi"]
    assert alibi["speed_vs_nanogpt"]["median"] == 3.0 and alibi["speed_vs_base"]["median"] == 1.5
    text = (out / "peer.md").read_text()
    assert "python -m tzoo.recipes.bench.peer --shapes 32x4,64x2" in text
    assert "## Context 64, batch 2 (128 tokens per step), 2 threads" in text
    assert "harness table for ctx 64" in text
    assert "Load average" in text and "stand-in" in text


def test_the_monolithic_factory_builds_nanogpts_shape():
    model = peer.monolithic_learned(vocab_size=11, block_size=8, d_model=16, n_layer=2,
                                    n_head=2, d_ff=64)
    assert model(torch.randint(0, 11, (2, 8))).shape == (2, 8, 11)
