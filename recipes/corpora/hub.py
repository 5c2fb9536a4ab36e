"""`hf:NAME[:CONFIG]`: a dataset from the Hugging Face Hub (or its local cache).

Before loading, a short TCP probe checks that the Hub can be reached: offline, the loader goes
straight to the local datasets cache instead of letting the Hub client retry for ~25 s.

Options: `revision` pins a commit of the dataset's repository (a branch moves); `streaming:
true` reads rows as they arrive instead of downloading every file first, for datasets too
large to download whole, and then needs `max_rows` (an int for every split, or {split: n}),
which also trims a downloaded dataset. `datasets` 4 and later no longer run loading scripts:
only Hub datasets stored as data files (parquet, JSON, CSV, text) load.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

import datasets
import huggingface_hub

from tzoo.components.errors import ConfigError

from .corpus import CORPUS_KEY
from .loading import corpus_kind
from .splits import Rows, clean_line, split_name


@corpus_kind("hf")
def load_hub(rest: str, task: str, options: dict[str, Any], seed: int) -> dict[str, Rows]:
    """`hf:NAME[:CONFIG]` through `datasets.load_dataset` (needs the Hub or its cache)."""
    name, _, config = rest.partition(":")
    if not name:
        raise ConfigError("write a Hub dataset as 'hf:NAME' or 'hf:NAME:CONFIG'", key=CORPUS_KEY)
    streaming, limits = _streaming(options)
    # Only what the experiment asks for, so the call stays what `datasets` defaults to.
    extra: dict[str, Any] = {"streaming": True} if streaming else {}
    if options.get("revision"):
        extra["revision"] = str(options["revision"])
    reachable = hub_reachable()
    try:
        # Offline, go straight to the local datasets cache: left to itself, the Hub client
        # retries for ~25 s before it gives up.
        with contextlib.nullcontext() if reachable else _hub_offline():
            # Looked up on the module at call time so tests can stub the network boundary.
            loaded = datasets.load_dataset(name, config or None, **extra)
    except Exception as err:
        if "scripts are no longer supported" in str(err):
            raise ConfigError(
                f"Hub dataset '{rest}' is a loading script, which `datasets` 4 and later no "
                "longer run; use a Hub dataset stored as data files (parquet, JSON, CSV, text: "
                "the Formats line of its Hub page), or a named dataset (`tzoo data list`)",
                key=CORPUS_KEY) from None
        if not _is_unreachable(err):
            raise
        why = "" if reachable else (f"{hub_host()} cannot be reached from this machine and "
                                    "the dataset is not in the local datasets cache; ")
        raise ConfigError(
            f"could not load Hub dataset '{rest}' ({type(err).__name__}: {err}); {why}this "
            "machine may be offline. Download the data and use 'file:PATH' with local files "
            "instead",
            key=CORPUS_KEY,
        ) from err
    if not isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        loaded = {"train": loaded}
    out: dict[str, Rows] = {}
    for split, ds in loaded.items():
        target = split_name(split) or split
        limit = limits.get(split, limits.get("*"))
        if isinstance(ds, datasets.IterableDataset):  # the first rows, as they arrive
            if limit is None:
                raise ConfigError(f"no max_rows for the streamed split '{split}'",
                                  key="data.options.max_rows")
            ds = datasets.Dataset.from_list(list(ds.take(limit)))
        elif limit is not None and limit < ds.num_rows:
            ds = ds.select(range(limit))
        out[target] = _hub_rows(ds, task, options, rest)
    return out


def _streaming(options: Mapping[str, Any]) -> tuple[bool, dict[str, int]]:
    """(option `streaming`, rows to keep per split from `max_rows`; "*" for every split)."""
    streaming = options.get("streaming", False)
    if not isinstance(streaming, bool):
        raise ConfigError(f"expected true/false, got {streaming!r}", key="data.options.streaming")
    value = options.get("max_rows")
    items = value.items() if isinstance(value, Mapping) else [("*", value)]
    limits = {str(split): n for split, n in items if n is not None}
    for n in limits.values():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"expected a positive number of rows (or {{split: rows}}), got "
                              f"{value!r}", key="data.options.max_rows")
    if streaming and not limits:
        raise ConfigError("a streamed dataset is read as it arrives and may never end: say how "
                          "many rows to take, e.g. max_rows: 100000 (or {train: 100000, "
                          "validation: 5000})", key="data.options.max_rows")
    return streaming, limits


def hub_host() -> str:
    """The Hub's host name (HF_ENDPOINT's, by default huggingface.co)."""
    return urlparse(huggingface_hub.constants.ENDPOINT).hostname or "huggingface.co"


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub (HF_ENDPOINT) opens within `timeout` seconds."""
    endpoint = urlparse(huggingface_hub.constants.ENDPOINT)
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((hub_host(), port), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """`datasets` and `huggingface_hub` in offline mode (cache only) for the duration."""
    flags = [(module, name) for module in (datasets.config, huggingface_hub.constants)
             for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if hasattr(module, name)]
    saved = [getattr(module, name) for module, name in flags]
    for module, name in flags:
        setattr(module, name, True)
    try:
        yield
    finally:
        for (module, name), value in zip(flags, saved, strict=True):
            setattr(module, name, value)


def _is_unreachable(err: Exception) -> bool:
    """True for errors that mean "the Hub or the dataset cannot be reached"."""
    if isinstance(err, OSError):  # ConnectionError, FileNotFoundError, requests errors, ...
        return True
    words = ("Connection", "Offline", "NotFound", "Timeout", "HTTP", "Network")
    return any(word in cls.__name__ for cls in type(err).__mro__ for word in words)


def _hub_rows(ds: datasets.Dataset, task: str, options: Mapping[str, Any], name: str) -> Rows:
    """Pick the text (LM) or source/target (translation) columns of one Hub split."""
    columns = ds.column_names

    def need(column: str, key: str) -> None:
        if column not in columns:
            raise ConfigError(
                f"dataset '{name}' has no column '{column}'; columns: {', '.join(columns)}",
                key=f"data.options.{key}",
            )

    if task == "lm":
        column = options.get("text_column", "text")
        need(column, "text_column")
        return {"text": [str(t) for t in ds[column]]}
    if "pair_field" in options or ("translation" in columns and "source_column" not in options):
        pair_field = options.get("pair_field", "translation")
        need(pair_field, "pair_field")
        src, tgt = options.get("source_lang"), options.get("target_lang")
        if not src or not tgt:
            raise ConfigError(
                f"dataset '{name}' stores pairs in '{pair_field}'; set options source_lang and "
                "target_lang (e.g. en, de)",
                key="data.options.source_lang",
            )
        pairs = ds[pair_field]
        return {
            "source": [clean_line(p[src]) for p in pairs],
            "target": [clean_line(p[tgt]) for p in pairs],
        }
    src_col = options.get("source_column", "source")
    tgt_col = options.get("target_column", "target")
    need(src_col, "source_column")
    need(tgt_col, "target_column")
    return {
        "source": [clean_line(t) for t in ds[src_col]],
        "target": [clean_line(t) for t in ds[tgt_col]],
    }
