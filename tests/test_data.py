"""The data layer: corpora URIs, tokenizers, and step-indexed batches."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import datasets
import pytest
import torch

from tzoo.components.errors import ConfigError
from tzoo.recipes.batches import (
    EvalPairBatches,
    EvalWindows,
    LMStream,
    PairsDataset,
    TrainPairs,
    TrainWindows,
    collate_pairs,
    step_seed,
)
from tzoo.recipes.corpora import LOADERS, corpus_kind, load_corpus
from tzoo.recipes.tokenization import (
    BPE_MIN_VOCAB,
    SPECIAL_TOKENS,
    build_tokenizer,
    load_tokenizer,
    tokenizer_for_corpus,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SMALL = {"samples": {"train": 200, "validation": 20, "test": 20, "test_long": 20}}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- hf:


def test_hf_offline_becomes_config_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'huggingface.co'")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ConfigError) as err:
        load_corpus("hf:wikitext:wikitext-2-raw-v1", task="lm")
    assert "wikitext" in str(err.value) and "file:" in str(err.value)
    assert err.value.key == "data.corpus"


def test_hf_without_network_fails_fast_from_the_cache(monkeypatch):
    """No route to the Hub: straight to the local cache (offline mode), not ~25 s of retries;
    a dataset that is not cached is a clear error naming it and the host."""
    def no_route(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", no_route)
    seen = {}

    def cache_only(name, config=None):
        seen["offline"] = datasets.config.HF_HUB_OFFLINE
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", cache_only)
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_corpus("hf:tiny_shakespeare", task="lm")
    assert time.monotonic() - started < 5
    assert seen["offline"] is True and datasets.config.HF_HUB_OFFLINE is not True
    message = str(err.value)
    assert "tiny_shakespeare" in message and "huggingface.co" in message and "file:" in message


def test_hf_translation_pair_field(monkeypatch):
    def rows(n: int) -> datasets.Dataset:
        pairs = [{"en": f"house {i}\u00a0", "de": f"Haus {i} "} for i in range(n)]
        return datasets.Dataset.from_dict({"translation": pairs})

    calls = []

    def fake_load(name, config=None):
        calls.append((name, config))
        return datasets.DatasetDict({"train": rows(10), "validation": rows(3), "test": rows(2)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    corpus = load_corpus(
        "hf:wmt14:de-en", task="translation", options={"source_lang": "en", "target_lang": "de"}
    )
    assert calls == [("wmt14", "de-en")]
    assert corpus.splits["train"][1] == {"source": "house 1", "target": "Haus 1"}
    assert corpus.splits["test"].num_rows == 2


# --------------------------------------------------------------------------- file:


def test_file_lm_single_file_char_split(tmp_path):
    text = "".join(f"line {i}\n" for i in range(100))
    corpus = load_corpus(f"file:{write(tmp_path / 'input.txt', text)}", task="lm")
    train, valid = corpus.splits["train"]["text"], corpus.splits["validation"]["text"]
    assert train[0] + valid[0] == text
    assert len(train[0]) == int(len(text) * 0.9)
    assert corpus.splits["test"]["text"] == valid  # no test file: validation doubles as test


def test_file_lm_named_splits_folder_and_glob(tmp_path):
    for name in ("train", "valid", "test"):
        write(tmp_path / f"{name}.txt", f"{name} text\n")
    write(tmp_path / "README.md", "not data\n")
    by_folder = load_corpus(f"file:{tmp_path}", task="lm")
    by_glob = load_corpus(f"file:{tmp_path}/*.txt", task="lm")
    for corpus in (by_folder, by_glob):
        assert corpus.splits["validation"]["text"] == ["valid text\n"]
        assert corpus.splits["test"]["text"] == ["test text\n"]


def test_file_parallel_pairs(tmp_path):
    write(tmp_path / "train.en", "a dog\nthe\u00a0cat  \n")
    write(tmp_path / "train.de", "ein Hund\ndie Katze\n")
    write(tmp_path / "val.en", "a bird\n")
    write(tmp_path / "val.de", "ein Vogel\n")
    write(tmp_path / "test_2016.en", "a fish\n")
    write(tmp_path / "test_2016.de", "ein Fisch\n")
    write(tmp_path / "test_2017_flickr.en", "a cow\n")
    write(tmp_path / "test_2017_flickr.de", "eine Kuh\n")
    opts = {"source_lang": "en", "target_lang": "de"}
    corpus = load_corpus(f"file:{tmp_path}", task="translation", options=opts)
    assert list(corpus.splits) == ["train", "validation", "test", "test_2017_flickr"]
    assert corpus.splits["train"]["source"] == ["a dog", "the cat"]
    assert corpus.splits["test"][0] == {"source": "a fish", "target": "ein Fisch"}
    template = load_corpus(f"file:{tmp_path}/{{split}}.{{lang}}", task="translation", options=opts)
    assert template.fingerprint != corpus.fingerprint  # different uri, same content
    assert template.splits["train"]["target"] == corpus.splits["train"]["target"]
    flipped = load_corpus(
        f"file:{tmp_path}", task="translation", options={"source_lang": "de", "target_lang": "en"}
    )
    assert flipped.splits["validation"][0] == {"source": "ein Vogel", "target": "a bird"}


def test_file_tsv_and_jsonl(tmp_path):
    write(tmp_path / "tsv" / "train.tsv", "one\teins\ntwo\tzwei\n")
    write(tmp_path / "tsv" / "valid.tsv", "three\tdrei\n")
    corpus = load_corpus(f"file:{tmp_path / 'tsv'}", task="translation")
    assert corpus.splits["train"]["target"] == ["eins", "zwei"]
    lines = [json.dumps({"en": f"n{i}", "de": f"z{i}"}) for i in range(20)]
    path = write(tmp_path / "pairs.jsonl", "\n".join(lines) + "\n")
    corpus = load_corpus(
        f"file:{path}",
        task="translation",
        options={"source_column": "en", "target_column": "de"},
    )
    assert corpus.splits["train"].num_rows == 18 and corpus.splits["validation"].num_rows == 2
    assert corpus.splits["validation"][0] == {"source": "n18", "target": "z18"}


def test_file_errors_name_the_problem(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigError, match=r"file not found: '.*nope\.txt'"):
        load_corpus(f"file:{missing}", task="lm")
    empty = write(tmp_path / "empty.txt", "\n  \n")
    with pytest.raises(ConfigError, match="empty"):
        load_corpus(f"file:{empty}", task="lm")
    write(tmp_path / "par" / "train.en", "a\nb\nc\n")
    write(tmp_path / "par" / "train.de", "x\ny\n")
    with pytest.raises(ConfigError) as err:
        load_corpus(
            f"file:{tmp_path / 'par'}",
            task="translation",
            options={"source_lang": "en", "target_lang": "de"},
        )
    message = str(err.value)
    assert "train.en" in message and "train.de" in message and "3" in message and "2" in message
    with pytest.raises(ConfigError, match="source_lang"):
        load_corpus(f"file:{tmp_path / 'par'}", task="translation")
    with pytest.raises(ConfigError, match="did you mean 'de'"):
        load_corpus(
            f"file:{tmp_path / 'par'}",
            task="translation",
            options={"source_lang": "en", "target_lang": "dee"},
        )


# --------------------------------------------------------------------------- builtin:


@pytest.mark.parametrize("name", ["pydoc", "stdlib"])
def test_builtin_corpora(name):
    corpus = load_corpus(f"builtin:{name}", task="lm", options={"max_files": 40})
    for split in ("train", "validation", "test"):
        texts = corpus.splits[split]["text"]
        assert texts and all(t.strip() for t in texts)
    assert corpus.fingerprint == load_corpus(f"builtin:{name}", task="lm", options={
        "max_files": 40}).fingerprint


# --------------------------------------------------------------------------- synthetic:


def synthetic(name: str, task: str = "translation", **options) -> datasets.DatasetDict:
    return load_corpus(f"synthetic:{name}", task=task, options={**SMALL, **options}).splits


def test_synthetic_copy_and_reverse():
    for row in synthetic("copy")["train"]:
        assert row["source"] == row["target"] and len(row["source"]) == 16
    splits = synthetic("reverse", vocab=5, length=8, long_length=24)
    for row in splits["validation"]:
        assert row["target"] == row["source"][::-1] and set(row["source"]) <= set("abcde")
    assert {len(s) for s in splits["test_long"]["source"]} == {24}


def test_synthetic_recall_answers_the_query():
    for row in synthetic("recall", length=12)["train"]:
        source = row["source"]
        table = dict(zip(source[:-1:2], source[1:-1:2], strict=True))
        assert len(table) == 6 and source[-1] in table
        assert row["target"] == table[source[-1]]


def test_synthetic_dyck_closes_the_prefix():
    closer = {"(": ")", "[": "]", "{": "}"}
    for row in synthetic("dyck", brackets=3)["train"]:
        stack = []
        for ch in row["source"] + row["target"]:
            if ch in closer:
                stack.append(closer[ch])
            else:
                assert stack.pop() == ch
        assert not stack and row["target"]


def test_synthetic_lm_text_and_induction():
    for text in synthetic("reverse", task="lm")["train"]["text"][:20]:
        source, target = text.split("=")
        assert target == source[::-1]
    for text in synthetic("induction", task="lm", length=10)["test"]["text"]:
        assert len(text) == 20 and text[:10] == text[10:]


def test_synthetic_deterministic_per_seed_and_options():
    def fp(seed: int = 0, **options) -> str:
        opts = {**SMALL, **options}
        return load_corpus("synthetic:copy", task="lm", options=opts, seed=seed).fingerprint

    assert fp() == fp()
    assert fp() != fp(seed=1)
    assert fp() != fp(vocab=8)


def test_synthetic_errors():
    with pytest.raises(ConfigError, match="did you mean 'reverse'"):
        load_corpus("synthetic:revers", task="lm")
    with pytest.raises(ConfigError, match="52"):
        load_corpus("synthetic:copy", task="lm", options={"vocab": 60})
    with pytest.raises(ConfigError, match="LM task"):
        load_corpus("synthetic:induction", task="translation")
    with pytest.raises(ConfigError, match="unknown corpus kind 'synth'"):
        load_corpus("synth:copy", task="lm")


# --------------------------------------------------------------------------- kinds


def test_a_corpus_kind_is_one_registration():
    """A loader registered under a scheme is loadable and listed in the unknown-kind error."""
    try:
        @corpus_kind("echo")
        def echo(rest, task, options, seed):
            return {"train": {"text": [f"{rest} {i}" for i in range(4)]}}

        corpus = load_corpus("echo:hi", task="lm")
        assert corpus.splits["train"]["text"] == ["hi 0", "hi 1", "hi 2"]
        assert corpus.splits["validation"]["text"] == ["hi 3"]
        with pytest.raises(ConfigError,
                           match=r"did you mean 'echo'.*allowed: builtin, dataset, echo, file"):
            load_corpus("ecko:hi", task="lm")
        with pytest.raises(ValueError, match="registered twice"):
            corpus_kind("echo")(echo)
    finally:
        LOADERS.pop("echo", None)


# --------------------------------------------------------------------------- numbers:


def test_numbers_splits_disjoint_and_long_is_larger():
    options = {"max_value": 999, "samples": {"train": 300, "validation": 50, "test": 50,
                                              "test_long": 50}}
    corpus = load_corpus("numbers:digits-en", task="translation", options=options)
    values = {name: {int(s) for s in split["source"]} for name, split in corpus.splits.items()}
    assert not values["train"] & values["validation"]
    assert not values["train"] & values["test"] and not values["validation"] & values["test"]
    assert max(values["train"] | values["validation"] | values["test"]) <= 999
    assert min(values["test_long"]) > 999
    row = corpus.splits["train"][0]
    assert row["target"] and row["source"].isdigit()
    de = load_corpus("numbers:en-de", task="translation", options=options)
    assert de.splits["test_long"].num_rows == 50
    assert load_corpus("numbers:en-de", task="translation", options=options).fingerprint == (
        de.fingerprint
    )
    with pytest.raises(ConfigError, match="did you mean 'en-fr'"):
        load_corpus("numbers:en-fe", task="translation")


# --------------------------------------------------------------------------- tokenizers


@pytest.mark.parametrize("spec", ["char", "byte", f"bpe:{BPE_MIN_VOCAB + 40}"])
def test_tokenizers_round_trip_and_save(spec, tmp_path):
    train = ["the quick brown fox jumps over the lazy dog\n", "Grüße, naïve café — 日本\n"] * 5
    tok = build_tokenizer(spec, train)
    for text in train:
        assert tok.decode(tok.encode(text)) == text
    assert [tok.pad_id, tok.bos_id, tok.eos_id, tok.mask_id, tok.sep_id, tok.unk_id] == list(
        range(6)
    )
    ids = [tok.bos_id, *tok.encode("fox"), tok.eos_id, tok.pad_id]
    assert tok.decode(ids) == "fox"
    assert tok.decode(ids, skip_special=False) == "<bos>fox<eos><pad>"
    loaded = load_tokenizer(tok.save(tmp_path / "tok.json"))
    assert loaded.fingerprint == tok.fingerprint and loaded.vocab_size == tok.vocab_size
    assert loaded.encode(train[1]) == tok.encode(train[1])
    assert max(tok.encode(train[0])) < tok.vocab_size


def test_char_tokenizer_unknown_maps_to_unk():
    tok = build_tokenizer("char", ["abc"])
    assert tok.vocab_size == len(SPECIAL_TOKENS) + 3
    assert tok.encode("abz") == [6, 7, tok.unk_id]


def test_bpe_learns_from_train_split_only(tmp_path):
    # Train uses letters a-m only; validation repeats a word made of n-z. A BPE trained on
    # validation would merge it into one token; trained on train it cannot hold any merge
    # containing n-z, so the word stays one token per byte.
    write(tmp_path / "train.txt", "acab mad lime game blame fade " * 200)
    write(tmp_path / "valid.txt", "zyzzyva " * 2000)
    corpus = load_corpus(f"file:{tmp_path}", task="lm")
    tok = tokenizer_for_corpus(f"bpe:{BPE_MIN_VOCAB + 30}", corpus)
    assert tok.encode("zyzzyva") == [tok.encode(ch)[0] for ch in "zyzzyva"]
    assert len(tok.encode("blame")) < 5  # merges were learned from the train split
    learned = [tok.decode([i]) for i in range(BPE_MIN_VOCAB, tok.vocab_size)]
    assert learned and not any(set(t) & set("nopqrstuvwxyz") for t in learned)


def test_tokenizer_spec_errors():
    with pytest.raises(ConfigError, match=f"at least {BPE_MIN_VOCAB}") as err:
        build_tokenizer("bpe:100", ["abc"])
    assert err.value.key == "data.tokenizer"
    with pytest.raises(ConfigError, match="allowed forms: char, byte, bpe:<vocab_size>"):
        build_tokenizer("wordpiece", ["abc"])


# --------------------------------------------------------------------------- batches


def lm_stream(n_tokens: int = 500) -> LMStream:
    return LMStream(torch.arange(n_tokens))


def test_lm_stream_joins_documents_with_eos():
    tok = build_tokenizer("char", ["ab"])
    stream = LMStream.from_split(datasets.Dataset.from_dict({"text": ["ab", "ba"]}), tok)
    assert stream.tokens.tolist() == [6, 7, tok.eos_id, 7, 6, tok.eos_id]


def test_train_windows_resume_is_exact():
    fresh = TrainWindows(lm_stream(), context=8, batch_size=4, seed=3, total_steps=12)
    batches = [b["tokens"] for b in fresh]
    assert len(batches) == 12 and batches[0].shape == (4, 9)
    resumed = TrainWindows(lm_stream(), context=8, batch_size=4, seed=3, start_step=7,
                           total_steps=12)
    for k, batch in enumerate(resumed.loader(), start=7):
        assert torch.equal(batch["tokens"], batches[k])
    # The length is the whole run's, resumed or not: Lightning ends the epoch at len(loader).
    assert len(resumed) == len(resumed.loader()) == len(fresh) == 12
    with pytest.raises(TypeError, match="infinite"):
        len(TrainWindows(lm_stream(), context=8, batch_size=4))
    # windows are contiguous slices of the stream
    window = batches[5][0]
    assert torch.equal(window, torch.arange(int(window[0]), int(window[0]) + 9))
    other_seed = TrainWindows(lm_stream(), context=8, batch_size=4, seed=4, total_steps=1)
    assert not torch.equal(next(iter(other_seed))["tokens"], batches[0])
    assert step_seed(3, 5) == step_seed(3, 5) != step_seed(3, 6)


def test_eval_windows_cover_stream_in_order():
    windows = EvalWindows(lm_stream(101), context=10, batch_size=4)
    assert len(windows) == 10
    assert torch.equal(windows[1]["tokens"], torch.arange(10, 21))
    first = next(iter(windows.loader()))["tokens"]
    assert first.shape == (4, 11)
    capped = EvalWindows(lm_stream(101), context=20, batch_size=2, max_batches=2)
    assert len(capped) == 4
    with pytest.raises(ConfigError, match="context"):
        EvalWindows(lm_stream(5), context=10)


def pairs_corpus() -> tuple[PairsDataset, object]:
    splits = synthetic("reverse", vocab=6, length=5)
    tok = build_tokenizer("char", list(splits["train"]["source"]))
    return PairsDataset(splits["train"], tok, max_len=None), tok


def test_pairs_dataset_and_collate():
    tok = build_tokenizer("char", ["abcd"])
    split = datasets.Dataset.from_dict(
        {"source": ["ab", "abcd", "a"], "target": ["ba", "dcba", "aaaaaa"]}
    )
    pairs = PairsDataset(split, tok, max_len=6)
    assert len(pairs) == 2 and pairs.dropped == 1  # "aaaaaa" + bos + eos = 8 > 6
    assert pairs[0]["target"].tolist() == [tok.bos_id, 7, 6, tok.eos_id]
    batch = collate_pairs([pairs[0], pairs[1]], pad_id=tok.pad_id)
    assert batch["source"].tolist() == [[6, 7, tok.eos_id, 0, 0], [6, 7, 8, 9, tok.eos_id]]
    assert batch["target"].shape == (2, 6) and batch["target"][0, 4:].tolist() == [0, 0]
    assert batch["target_text"] == ["ba", "dcba"]
    # Evaluation splits keep every pair, cut to fit, with the full reference text.
    kept = PairsDataset(split, tok, max_len=6, truncate=True)
    assert len(kept) == 3 and kept.truncated == 1 and kept.dropped == 0
    assert len(kept[2]["target"]) == 6 and kept[2]["target"][-1] == tok.eos_id
    assert kept[2]["target_text"] == "aaaaaa"


def test_train_pairs_resume_and_epochs():
    pairs, tok = pairs_corpus()
    run = TrainPairs(pairs, batch_size=32, pad_id=tok.pad_id, seed=1, total_steps=15)
    batches = list(run)
    resumed = TrainPairs(pairs, batch_size=32, pad_id=tok.pad_id, seed=1, start_step=9,
                         total_steps=15)
    for k, batch in enumerate(resumed, start=9):
        assert torch.equal(batch["source"], batches[k]["source"])
        assert batch["target_text"] == batches[k]["target_text"]
    assert len(resumed) == len(resumed.loader()) == 15
    epoch = [t for b in batches[: run.steps_per_epoch] for t in b["source_text"]]
    assert len(epoch) == run.steps_per_epoch * 32 and len(set(epoch)) >= len(epoch) - 10


def test_eval_pair_batches_sorted_with_index():
    pairs, tok = pairs_corpus()
    evaluation = EvalPairBatches(pairs, batch_size=16, pad_id=tok.pad_id)
    seen = torch.cat([b["index"] for b in evaluation.loader()])
    assert sorted(seen.tolist()) == list(range(len(pairs)))


# --------------------------------------------------------------------------- shared data


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/data is not present")
def test_shared_data_loads():
    shakespeare = load_corpus(f"file:{SHARED / 'tinyshakespeare' / 'input.txt'}", task="lm")
    assert len(shakespeare.splits["train"]["text"][0]) == int(1_115_394 * 0.9)
    multi30k = load_corpus(
        f"file:{SHARED / 'multi30k'}",
        task="translation",
        options={"source_lang": "en", "target_lang": "de"},
    )
    sizes = {name: split.num_rows for name, split in multi30k.splits.items()}
    assert sizes["train"] == 29_000 and sizes["validation"] == 1014 and sizes["test"] == 1000
    assert "test_2017_mscoco" in sizes
    assert not any("\u00a0" in t for t in multi30k.splits["train"]["target"])


def test_synthetic_min_length_varies_the_period():
    """With `min_length`, induction examples have random lengths, each still an exact repeat."""
    corpus = load_corpus("synthetic:induction", task="lm", options={
        "vocab": 8, "length": 12, "min_length": 3,
        "samples": {"train": 200, "validation": 10, "test": 10}})
    lengths = {len(text) for text in corpus.splits["train"]["text"]}
    assert min(lengths) >= 6 and max(lengths) <= 24 and len(lengths) > 5
    for text in corpus.splits["train"]["text"]:
        half = len(text) // 2
        assert text[:half] == text[half:]
    with pytest.raises(ConfigError, match="min_length"):
        load_corpus("synthetic:induction", task="lm", options={"length": 4, "min_length": 9})


def test_induction_with_distinct_symbols_has_one_earlier_occurrence_to_copy():
    rows = synthetic("induction", task="lm", vocab=12, length=10, min_length=4, long_length=10,
                     distinct=True)["train"]["text"]
    for text in rows[:50]:
        half = len(text) // 2
        assert text[:half] == text[half:] and len(set(text[:half])) == half
    with pytest.raises(ConfigError, match="needs vocab >= 10") as error:
        synthetic("induction", task="lm", vocab=8, length=10, distinct=True)
    assert error.value.key == "data.options.vocab"


def test_hf_streaming_takes_max_rows_and_scripts_are_explained(tmp_path, monkeypatch):
    """Streaming reads only the rows asked for; the Hub is played by local parquet files (the
    network boundary is all that is stubbed: `datasets` streams them for real)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = {}
    for split, n in (("train", 500), ("validation", 50)):
        files[split] = str(tmp_path / f"{split}.parquet")
        pq.write_table(pa.table({"text": [f"{split} line {i}" for i in range(n)]}), files[split])
    real, seen = datasets.load_dataset, {}

    def hub(name, config=None, **kwargs):
        seen.update(kwargs, name=name, config=config)
        return real("parquet", data_files=files, cache_dir=str(tmp_path / "hf"), **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", hub)
    options = {"streaming": True, "max_rows": {"train": 40, "validation": 10},
               "revision": "0123abc"}
    corpus = load_corpus("hf:someone/big:sample", task="lm", options=options)
    assert seen == {"streaming": True, "revision": "0123abc", "name": "someone/big",
                    "config": "sample"}
    assert corpus.splits["train"]["text"] == [f"train line {i}" for i in range(40)]
    assert corpus.splits["validation"].num_rows == 10
    seen.clear()
    trimmed = load_corpus("hf:someone/big", task="lm", options={"max_rows": 30})
    assert trimmed.splits["train"].num_rows == 30 and "streaming" not in seen
    with pytest.raises(ConfigError, match="max_rows") as err:
        load_corpus("hf:someone/big", task="lm", options={"streaming": True})
    assert err.value.key == "data.options.max_rows"

    def script(name, config=None, **kwargs):
        raise RuntimeError("Dataset scripts are no longer supported, but found tiny.py")

    monkeypatch.setattr(datasets, "load_dataset", script)
    with pytest.raises(ConfigError, match=r"loading script.*parquet"):
        load_corpus("hf:tiny_shakespeare", task="lm")
