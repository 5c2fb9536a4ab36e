"""The dataset store: downloads against a real HTTP server on 127.0.0.1, the cache, `tzoo data`,
`dataset:` corpora, and the catalogue itself."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fixtures_http import FixtureServer

from tzoo.cli import main
from tzoo.components.errors import ConfigError
from tzoo.recipes.corpora import load_corpus
from tzoo.recipes.store import CATALOGUE, Dataset, Output, Source, check, ensure, fetch
from tzoo.recipes.store.cache import MANIFEST
from tzoo.recipes.store.fetch import OFFLINE_VARIABLE

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 10000).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def server():
    with FixtureServer() as running:
        yield running


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """An empty cache, named by TZOO_DATA_DIR as a user would."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("TZOO_DATA_DIR", str(folder))
    monkeypatch.delenv(OFFLINE_VARIABLE, raising=False)
    return folder


def served(server: FixtureServer, key: str, data: bytes) -> str:
    server.files[key] = data
    return key


def copy_entry(name: str, files: dict[str, tuple[str, bytes]], *, task: str = "lm",
               corpus: str = "", checksum: str | None = None) -> Dataset:
    """An entry whose outputs are downloaded as they are: {file name: (url, content)}."""
    outputs = tuple(
        Output(file, (Source(url, checksum or sha(data), len(data)),), "copy",
               checksum or sha(data), len(data))
        for file, (url, data) in files.items())
    return Dataset(name=name, title=name, task=task, outputs=outputs, license="test",
                   citation="test", origin="127.0.0.1", splits="test", corpus=corpus)


def leftovers(root: Path) -> list[str]:
    """Every file under the cache except the lock files (which hold no data)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and ".locks" not in p.parts)


# ------------------------------------------------------------------------- downloads


def test_download_verifies_caches_and_is_not_repeated(server, root):
    key = served(server, "plain.txt", TEXT)
    entry = copy_entry("plain", {"input.txt": (server.url("files", key), TEXT)})
    folder = fetch(entry)
    assert (folder / "input.txt").read_bytes() == TEXT
    assert leftovers(root) == ["plain/input.txt"]  # no partial file, no downloads folder
    assert [s.status for s in check(entry)] == ["ok"]
    ensure(entry)
    fetch(entry)
    assert len(server.requests_for(key)) == 1  # downloaded once


def test_redirect_is_followed(server, root):
    key = served(server, "moved.txt", TEXT)
    entry = copy_entry("moved", {"input.txt": (server.url("redirect", key), TEXT)})
    fetch(entry)
    assert [status for *_, status in server.requests_for(key)] == [302, 200]
    assert (root / "moved" / "input.txt").read_bytes() == TEXT


def test_checksum_mismatch_removes_the_file_and_says_which(server, root):
    key = served(server, "tampered.txt", TEXT)
    wrong = sha(b"what the catalogue expected")
    entry = copy_entry("tampered", {"input.txt": (server.url("files", key), TEXT)},
                       checksum=wrong)
    with pytest.raises(ConfigError) as err:
        fetch(entry)
    message = str(err.value)
    assert "checksum mismatch for input.txt" in message and server.url("files", key) in message
    assert f"expected sha256 {wrong}" in message and f"got sha256 {sha(TEXT)}" in message
    assert leftovers(root) == []  # removed: nothing under a final name, no partial either


@pytest.mark.parametrize("route", ["drop", "drop-norange"])
def test_dropped_connection_is_resumed_or_restarted(server, root, route):
    key = served(server, f"{route}.bin", TEXT)
    entry = copy_entry(route, {"input.txt": (server.url(route, key), TEXT)})
    fetch(entry)
    assert (root / route / "input.txt").read_bytes() == TEXT
    log = server.requests_for(key)
    assert len(log) == 2 and log[0][2] is None
    # The retry asks for the rest (from what reached the disk: the last read before the drop
    # is lost); a server that supports Range sends only that (206), one that ignores it sends
    # everything again (200) and the partial file starts over.
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", log[1][2]).group(1))
    assert 0 < resumed_at <= len(TEXT) // 2
    assert log[1][3] == (206 if route == "drop" else 200)


def test_partial_file_of_a_killed_fetch_is_resumed(server, root):
    key = served(server, "killed.bin", TEXT)
    entry = copy_entry("killed", {"input.txt": (server.url("files", key), TEXT)})
    part = root / ".downloads" / "killed" / "input.txt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(TEXT[:1000])
    fetch(entry)
    assert server.requests_for(key) == [("GET", f"/files/{key}", "bytes=1000-", 206)]
    assert (root / "killed" / "input.txt").read_bytes() == TEXT


def test_server_error_is_retried(server, root):
    key = served(server, "busy.txt", TEXT)
    entry = copy_entry("busy", {"input.txt": (server.url("busy", key), TEXT)})
    fetch(entry)
    assert [status for *_, status in server.requests_for(key)] == [503, 200]


def test_404_fails_at_once_without_writing(server, root):
    entry = copy_entry("gone", {"input.txt": (server.url("files", "never-served.txt"), TEXT)})
    with pytest.raises(ConfigError, match=r"HTTP 404 .*never-served.txt"):
        fetch(entry)
    assert len(server.requests_for("never-served.txt")) == 1  # not retried
    assert leftovers(root) == []


def test_gunzip_and_parquet_builds(server, root):
    import pyarrow as pa
    import pyarrow.parquet as pq

    english = b"A man in an orange hat.\nTwo dogs play.\n"
    gz_key = served(server, "train.en.gz", gzip.compress(english))
    rows = [" = Title = \n", "", " Some text .\n", "", " More .\n"]
    buffers = []
    for part in (rows[:2], rows[2:]):
        sink = io.BytesIO()
        pq.write_table(pa.table({"text": part}), sink)
        buffers.append(sink.getvalue())
    keys = [served(server, f"train-{i}.parquet", b) for i, b in enumerate(buffers)]
    lines = "".join(r or " \n" for r in rows).encode()
    entry = Dataset(
        name="built", title="", task="lm", license="", citation="", origin="", splits="",
        outputs=(
            Output("train.en", (Source(server.url("files", gz_key),
                                       sha(server.files[gz_key])),), "gunzip", sha(english)),
            Output("train.txt", tuple(Source(server.url("files", k), sha(server.files[k]))
                                      for k in keys), "parquet-lines"),  # no published sha
        ))
    folder = fetch(entry)
    assert (folder / "train.en").read_bytes() == english
    assert (folder / "train.txt").read_bytes() == lines
    # built from verified sources: its checksum is recorded, and checked from then on
    assert json.loads((folder / MANIFEST).read_text()) == {"train.txt": sha(lines)}
    assert leftovers(root) == ["built/.sha256.json", "built/train.en", "built/train.txt"]
    (folder / "train.txt").write_bytes(lines.replace(b"More", b"Less"))
    assert [s.status for s in check(entry)] == ["ok", "corrupt"]


# ------------------------------------------------------------------------- bad input


def test_corrupt_cached_file_is_refused_then_replaced_by_fetch(server, root, capsys):
    good_key = served(server, "good.txt", TEXT)
    bad_key = served(server, "bad.txt", TEXT)
    other = copy_entry("other", {"input.txt": (server.url("files", good_key), TEXT)})
    entry = copy_entry("spoiled", {"input.txt": (server.url("files", bad_key), TEXT)})
    fetch(other)
    fetch(entry)
    before = (root / "other" / "input.txt").stat()
    spoiled = root / "spoiled" / "input.txt"
    spoiled.write_bytes(TEXT[:-1] + b"?")
    with pytest.raises(ConfigError) as err:
        ensure(entry)
    message = str(err.value)
    assert str(spoiled) in message and f"expected {sha(TEXT)}" in message
    assert f"got {sha(spoiled.read_bytes())}" in message and "tzoo data fetch spoiled" in message
    assert spoiled.read_bytes().endswith(b"?")  # refused, not silently replaced or deleted
    fetch(entry)  # what the message says to do
    assert spoiled.read_bytes() == TEXT
    after = (root / "other" / "input.txt").stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)


def test_offline_and_uncached_fails_with_the_command(server, root, monkeypatch):
    key = served(server, "offline.txt", TEXT)
    entry = copy_entry("away", {"input.txt": (server.url("files", key), TEXT)})
    monkeypatch.setenv(OFFLINE_VARIABLE, "1")
    with pytest.raises(ConfigError) as err:
        ensure(entry)
    assert "`tzoo data fetch away`" in str(err.value) and "TZOO_OFFLINE" in str(err.value)
    # an unreachable host is found with one quick TCP probe, not with retries
    monkeypatch.delenv(OFFLINE_VARIABLE)
    closed = copy_entry("closed", {"input.txt": ("http://127.0.0.1:9/input.txt", TEXT)})
    with pytest.raises(ConfigError, match=r"127.0.0.1 cannot be reached.*tzoo data fetch closed"):
        ensure(closed)
    assert server.requests_for(key) == [] and leftovers(root) == []


def test_unwritable_cache_is_bad_input(server, tmp_path, monkeypatch, capsys):
    key = served(server, "unwritable.txt", TEXT)
    entry = copy_entry("unwritable", {"input.txt": (server.url("files", key), TEXT)})
    monkeypatch.setitem(CATALOGUE, entry.name, entry)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    targets = [blocker / "cache"]  # a cache "inside" a file: no user can write there
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder only stops other users
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o500)
        targets.append(readonly)
    for target in targets:
        monkeypatch.setenv("TZOO_DATA_DIR", str(target))
        assert main(["data", "fetch", "unwritable"]) == 2
        err = capsys.readouterr().err
        assert f"the dataset cache {target} (TZOO_DATA_DIR) cannot be written" in err
        assert "Traceback" not in err
    assert server.requests_for(key) == []


def test_unknown_names_suggest_the_closest(root, capsys):
    assert main(["data", "fetch", "tinyshakespere"]) == 2
    assert "did you mean 'tinyshakespeare'?" in capsys.readouterr().err
    with pytest.raises(ConfigError) as err:
        load_corpus("dataset:wikitext2", task="lm")
    assert "did you mean 'wikitext-2'?" in str(err.value) and err.value.key == "data.corpus"
    with pytest.raises(ConfigError, match="translation corpus"):
        load_corpus("dataset:multi30k", task="lm")


FULL_DISK = textwrap.dedent("""
    import json, os, resource, signal, subprocess, sys
    mode, root, url_sized, url_streamed = sys.argv[1:5]
    if mode == "tmpfs":  # a real 64 KiB file system, in this process's own mount namespace
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", root], check=True)
    os.environ["TZOO_DATA_DIR"] = root
    from tzoo.cli import main
    from tzoo.recipes.store import CATALOGUE, Dataset, Output, Source
    codes = []
    for name, url in (("sized", url_sized), ("streamed", url_streamed)):
        if mode == "rlimit" and name == "sized":
            continue  # the disk has room: only the write itself can fail
        CATALOGUE[name] = Dataset(name, "", "lm", (Output("input.txt", (Source(url, None),),
            "copy", "0" * 64),), "", "", "", "")
        if mode == "rlimit":  # the kernel refuses to grow any file past 64 KiB (EFBIG)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        codes.append(main(["data", "fetch", name]))
    files = [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs]
    print(json.dumps({"codes": codes, "files": sorted(f for f in files if ".locks" not in f)}))
""")


def test_full_disk_fails_cleanly(server, tmp_path):
    """A full disk while downloading: exit 2, a clear message, no partial file anywhere.

    The disk is a real 64 KiB tmpfs mounted in a private mount namespace (`unshare -rm`);
    where namespaces are not allowed, the kernel's file-size limit (RLIMIT_FSIZE) makes the
    write fail the same way, at the OS level, without any stand-in for the download code."""
    big = os.urandom(300_000)
    sized, streamed = served(server, "big.bin", big), served(server, "big-stream.bin", big)
    root = tmp_path / "disk"
    root.mkdir()
    namespaces = shutil.which("unshare") and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0
    mode = "tmpfs" if namespaces else "rlimit"
    prefix = ["unshare", "-rm"] if mode == "tmpfs" else []
    done = subprocess.run(
        [*prefix, sys.executable, "-c", FULL_DISK, mode, str(root),
         server.url("files", sized), server.url("stream", streamed)],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["files"] == []  # no partial, no final name, nothing
    assert set(result["codes"]) == {2}
    if mode == "tmpfs":  # refused before writing: the server said how big the file is
        assert re.search(r"no room for input.txt: it needs 0.3 MB and .* has 0.1 MB free",
                         done.stderr)
    assert re.search(r"no room to write .*input.txt.part \((No space left on device|File too "
                     r"large)\) after .*; the partial file was removed", done.stderr)
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------- dataset: corpora


LM_FILES = {"train.txt": "the cat sat on the mat.\n" * 400, "valid.txt": "a dog.\n" * 60,
            "test.txt": "the end.\n" * 60}


@pytest.fixture
def lm_entry(server, monkeypatch) -> Dataset:
    """A word-level LM dataset in the catalogue, served from 127.0.0.1."""
    files = {name: (server.url("files", served(server, f"lm-{name}", text.encode())),
                    text.encode()) for name, text in LM_FILES.items()}
    entry = copy_entry("fixture-lm", files)
    monkeypatch.setitem(CATALOGUE, entry.name, entry)
    return entry


def test_dataset_corpus_is_fetched_then_read_like_its_folder(lm_entry, root, server):
    corpus = load_corpus("dataset:fixture-lm", task="lm")
    assert corpus.splits["train"]["text"] == [LM_FILES["train.txt"]]
    assert corpus.splits["validation"]["text"] == [LM_FILES["valid.txt"]]
    assert corpus.splits["test"]["text"] == [LM_FILES["test.txt"]]
    as_files = load_corpus(f"file:{root / 'fixture-lm'}", task="lm")
    assert as_files.splits["train"]["text"] == corpus.splits["train"]["text"]
    requests = len(server.log)
    load_corpus("dataset:fixture-lm", task="lm")  # cached: no request
    assert len(server.log) == requests


def test_tzoo_data_list_fetch_verify_path(lm_entry, root, capsys):
    assert main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"fixture-lm\s+lm\s+[\d.]+ MB\s+no\s+test", listing)
    assert f"cache: {root} (TZOO_DATA_DIR)" in listing
    assert main(["data", "path", "fixture-lm"]) == 2  # not cached yet: says how to get it
    assert "tzoo data fetch fixture-lm" in capsys.readouterr().err
    assert main(["data", "fetch", "fixture-lm"]) == 0
    assert capsys.readouterr().out.strip() == str(root / "fixture-lm")
    assert main(["data", "path", "fixture-lm"]) == 0
    assert capsys.readouterr().out.strip() == str(root / "fixture-lm")
    assert main(["data", "verify"]) == 0
    assert "fixture-lm: yes" in capsys.readouterr().out
    (root / "fixture-lm" / "valid.txt").write_text("a cat.\n" * 60)  # same size, other bytes
    assert main(["data", "verify", "fixture-lm"]) == 2
    out = capsys.readouterr().out
    assert "fixture-lm: corrupt" in out and "valid.txt: sha256 expected" in out
    (root / "fixture-lm" / "test.txt").write_text("truncated")  # list sees sizes, not hashes
    assert main(["data", "list", "-v"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"fixture-lm\s+lm\s+[\d.]+ MB\s+corrupt", out)
    assert "cite:     Karpathy" in out


def test_tzoo_run_fetches_before_training(lm_entry, root, tiny, write_yaml, tmp_path, capsys,
                                          monkeypatch):
    tiny["data"] = {**tiny["data"], "corpus": "dataset:fixture-lm", "options": {}}
    tiny["eval"] = {**tiny["eval"], "context_multipliers": [1]}
    experiment = write_yaml("exp.yaml", tiny)
    out = tmp_path / "runs"
    monkeypatch.setenv(OFFLINE_VARIABLE, "1")  # offline and not cached: refused before a run
    assert main(["run", str(experiment), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "key 'data.corpus'" in err and "`tzoo data fetch fixture-lm`" in err
    assert not out.exists()
    monkeypatch.delenv(OFFLINE_VARIABLE)
    assert main(["run", str(experiment), "--out", str(out), "--set", "train.steps=4",
                 "--set", "seeds=[0]"]) == 0
    captured = capsys.readouterr()
    assert "fixture-lm: fetching 3 file(s)" in captured.err and "1/1 runs completed" in captured.out


# ------------------------------------------------------------------------- the catalogue


PINNED_URL = re.compile(
    r"https://(raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/"
    r"|huggingface\.co/datasets/[\w.-]+/[\w.-]+/resolve/[0-9a-f]{40}/)")


def test_catalogue_pins_every_byte():
    assert set(CATALOGUE) == {"tinyshakespeare", "wikitext-2-raw", "wikitext-2", "multi30k",
                              "wikitext-103-raw"}
    for entry in CATALOGUE.values():
        assert entry.license and entry.citation and entry.origin and entry.splits
        assert entry.task in ("lm", "translation") and entry.size
        for output in entry.outputs:
            assert output.pinned, f"{entry.name}/{output.name} would be trusted on first use"
            for checksum in (output.sha256, *(s.sha256 for s in output.sources)):
                assert checksum is None or re.fullmatch(r"[0-9a-f]{64}", checksum)
            for source in output.sources:
                assert PINNED_URL.match(source.url), f"not a pinned URL: {source.url}"
    multi30k = {o.name for o in CATALOGUE["multi30k"].outputs}
    assert {f"{s}.{lang}" for s in ("train", "val", "test_2016", "test_2017_flickr",
                                    "test_2017_mscoco", "test_2018_flickr")
            for lang in ("en", "de")} == multi30k


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/data is not present")
def test_shared_data_is_a_prepared_cache(monkeypatch):
    """../shared/data, laid out like the cache, stands in for it: every checksum matches."""
    monkeypatch.setenv("TZOO_DATA_DIR", str(SHARED))
    for name in ("tinyshakespeare", "wikitext-2-raw", "wikitext-2", "multi30k"):
        assert {s.status for s in check(CATALOGUE[name])} == {"ok"}, name
    multi30k = load_corpus("dataset:multi30k", task="translation")
    assert multi30k.splits["test"].num_rows == 1000 and "test_2018_flickr" in multi30k.splits


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/data is not present")
@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                    reason="needs git and a git checkout to clone")
def test_fresh_clone_validates_every_recipe_and_sweep(tmp_path):
    """A clone (no ../shared/data beside it) with TZOO_DATA_DIR at a prepared folder: every
    shipped experiment and sweep loads its data, run from a directory that is not the clone."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    # the working tree's own edits too, when there are any (the clone has the last commit)
    for path in [*REPO.glob("recipes/*.yaml"), *REPO.glob("sweeps/*.yaml")]:
        (clone / path.relative_to(REPO)).write_bytes(path.read_bytes())
    files = sorted(str(p) for p in [*clone.glob("recipes/*.yaml"), *clone.glob("sweeps/*.yaml")])
    assert len(files) > 10
    script = ("import sys; from tzoo.cli import main\n"
              "codes = {f: main(['validate', f, '--data']) for f in sys.argv[1:]}\n"
              "print(codes); sys.exit(max(codes.values()))")
    environment = {**os.environ, "TZOO_DATA_DIR": str(SHARED), OFFLINE_VARIABLE: "1"}
    done = subprocess.run([sys.executable, "-c", script, *files], cwd=tmp_path,
                          capture_output=True, text=True, env=environment, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
