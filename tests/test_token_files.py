"""Token files: an LM corpus of split files tokenized once into memory-mapped ids, the same
tokens, tokenizer, fingerprint and bits-per-character scale as the in-memory path."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tzoo.components.errors import ConfigError
from tzoo.recipes import data as data_module
from tzoo.recipes import token_files
from tzoo.recipes.batches import EvalWindows, TrainWindows
from tzoo.recipes.data import prepare_data
from tzoo.recipes.tokenization import _pieces


def _words(rng: random.Random, n: int) -> str:
    vocabulary = ["the", "cat", "sat", "on", "a", "mat", "Überfall", "naïve", "@-@", "=", "."]
    lines = []
    for _ in range(n):
        line = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 14)))
        lines.append(f" {line} " if rng.random() < 0.8 else "")
    return "\n".join(lines) + "\n"


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """A folder of split files; train.txt is long enough to be cut into several pieces,
    valid.txt has characters train.txt lacks, and test.txt has Windows line ends (read as \\n
    by both paths)."""
    monkeypatch.setenv("TZOO_TOKEN_DIR", str(tmp_path / "tokens"))
    rng = random.Random(0)
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.txt").write_text(_words(rng, 12000), encoding="utf-8")
    # characters the training text lacks (one below its highest code point, one far above)
    (folder / "valid.txt").write_text(_words(rng, 300) + " ß 𝔸 €\n", encoding="utf-8")
    (folder / "test.txt").write_bytes(_words(rng, 300).replace("\n", "\r\n").encode())
    assert (folder / "train.txt").stat().st_size > 3 * token_files.PIECE
    yield folder
    data_module._CACHE.clear()


def _config(folder, tokenizer: str, mode) -> dict:
    return {"task": {"name": "lm"},
            "data": {"corpus": f"file:{folder}", "options": {}, "tokenizer": tokenizer,
                     "token_files": mode}}


def test_file_pieces_are_the_pieces_of_the_whole_text(tmp_path):
    rng = random.Random(1)
    for trial in range(30):
        text = _words(rng, rng.randint(0, 40)) + rng.choice(["", "tail", "\n\n"])
        path = tmp_path / f"{trial}.txt"
        path.write_text(text, encoding="utf-8")
        for size, read in ((16, 7), (50, 1000), (64, 64)):
            assert list(token_files.file_pieces(path, size, read)) == _pieces(text, size)


@pytest.mark.parametrize("tokenizer", ["char", "byte", "bpe:300"])
def test_token_files_equal_the_in_memory_path(corpus, tokenizer):
    in_memory = prepare_data(_config(corpus, tokenizer, False))
    mapped = prepare_data(_config(corpus, tokenizer, True))
    assert in_memory.tokens is None and mapped.tokens is not None
    assert mapped.fingerprint == in_memory.fingerprint
    assert mapped.corpus.fingerprint == in_memory.corpus.fingerprint
    assert mapped.tokenizer.to_json() == in_memory.tokenizer.to_json()
    assert mapped.chars_per_token == pytest.approx(in_memory.chars_per_token, rel=1e-12)
    for split in ("train", "validation", "test"):
        memory_stream, file_stream = in_memory.lm_stream(split), mapped.lm_stream(split)
        assert file_stream.tokens is None  # nothing loaded: windows are read from the file
        assert np.array_equal(file_stream.source.read(slice(None)),
                              memory_stream.tokens.numpy()), split
    # the batches are the same too: windows are read from the file and widened to int64
    memory_batches = TrainWindows(in_memory.lm_stream("train"), context=32, batch_size=4, seed=3)
    file_batches = TrainWindows(mapped.lm_stream("train"), context=32, batch_size=4, seed=3)
    for step in (0, 7):
        a, b = memory_batches.batch_at(step)["tokens"], file_batches.batch_at(step)["tokens"]
        assert b.dtype == torch.int64 and torch.equal(a, b)
    evaluation = EvalWindows(mapped.lm_stream("validation"), context=16, batch_size=2)
    assert torch.equal(evaluation[3]["tokens"],
                       EvalWindows(in_memory.lm_stream("validation"), context=16)[3]["tokens"])


def test_token_files_are_written_once_and_reused(corpus, tmp_path, capsys):
    prepare_data(_config(corpus, "char", True))
    assert "tokenizing" in capsys.readouterr().out
    folder = next(p for p in (tmp_path / "tokens").iterdir() if p.is_dir())
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert {"train.bin", "validation.bin", "test.bin", "tokenizer.json",
            "meta.json"} <= set(stamps)
    data_module._CACHE.clear()  # a new process, as far as memoisation goes
    again = prepare_data(_config(corpus, "char", True))
    assert capsys.readouterr().out == ""
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    # an incomplete set (meta.json is written last) is written again, not used
    (folder / "validation.bin").write_bytes(b"\x00\x00")
    data_module._CACHE.clear()
    rebuilt = prepare_data(_config(corpus, "char", True))
    assert "tokenizing" in capsys.readouterr().out
    assert np.array_equal(rebuilt.lm_stream("validation").source.read(slice(None)),
                          again.lm_stream("validation").source.read(slice(None)))
    # a changed corpus is a new fingerprint, so new token files
    with (corpus / "valid.txt").open("a") as f:
        f.write(" one more line \n")
    data_module._CACHE.clear()
    changed = prepare_data(_config(corpus, "char", True))
    assert changed.fingerprint != again.fingerprint


def test_auto_uses_token_files_only_for_large_split_corpora(corpus, monkeypatch):
    assert prepare_data(_config(corpus, "char", "auto")).tokens is None  # a small corpus
    data_module._CACHE.clear()
    monkeypatch.setattr(token_files, "AUTO_BYTES", 1000)
    assert prepare_data(_config(corpus, "char", "auto")).tokens is not None
    single = corpus.parent / "single.txt"
    single.write_text("no splits here\n" * 100)
    with pytest.raises(ConfigError, match="needs split files") as err:
        prepare_data(_config(single, "char", True))
    assert err.value.key == "data.token_files"
