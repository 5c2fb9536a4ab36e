"""Tokenizers: `char`, `byte` and `bpe:<vocab_size>` behind one small interface.

Every tokenizer reserves the same six special tokens at ids 0..5 (pad, bos, eos, mask, sep,
unk), so models and batchers can rely on `pad_id == 0` etc. whatever the spec.

A tokenizer is saved in HuggingFace `tokenizers`' own format, so that a run's `tokenizer.json`
loads outside the suite with `tokenizers.Tokenizer.from_file` and gives the same ids (a char
tokenizer is a BPE model with one token per character and no merges; the byte tokenizer a
byte-level BPE with no merges), with the suite's own metadata (kind, spec, fingerprint) beside
it in `<name>.tzoo.json`. Files of format 1 (the suite's own JSON, before HF's) still load.
Its `fingerprint` is the sha256 of its canonical state (`to_json`), the same in both formats,
so a run can check that it resumes with the very tokenizer it started with.

(The module is not called `tokenizers` so that it never shadows the HuggingFace package.)
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tzoo.components.errors import ConfigError

TOKENIZER_KEY = "data.tokenizer"
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<mask>", "<sep>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, MASK_ID, SEP_ID, UNK_ID = range(len(SPECIAL_TOKENS))
N_SPECIAL = len(SPECIAL_TOKENS)
BPE_MIN_VOCAB = N_SPECIAL + 256  # the specials plus the byte-level alphabet
SPEC_FORMS = ("char", "byte", "bpe:<vocab_size>")
FORMAT_VERSION = 1  # of the canonical state the fingerprint is taken over
FILE_FORMAT = 2  # of the saved files: HF's tokenizer.json and the metadata beside it
METADATA_SUFFIX = ".tzoo.json"


class Tokenizer(ABC):
    """Text <-> ids. Ids 0..5 are the special tokens, in the order of `SPECIAL_TOKENS`."""

    kind: ClassVar[str]
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID
    mask_id: int = MASK_ID
    sep_id: int = SEP_ID
    unk_id: int = UNK_ID

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, specials included."""

    @property
    def spec(self) -> str:
        """The spec string that builds this kind of tokenizer ("char", "bpe:1000", ...)."""
        return self.kind

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of `text`, without bos/eos (the batchers add those)."""

    @abstractmethod
    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of `ids`; special ids are dropped, or rendered as "<eos>" etc."""

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of many texts (subclasses may parallelise)."""
        return [self.encode(t) for t in texts]

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """What besides `kind` the JSON file must hold to rebuild this tokenizer."""

    def to_json(self) -> str:
        """The saved form: canonical JSON, so equal tokenizers give equal text."""
        state = {"format": FORMAT_VERSION, "kind": self.kind, **self._state()}
        return json.dumps(state, sort_keys=True, ensure_ascii=False)

    @property
    def fingerprint(self) -> str:
        """sha256 of the saved form."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    @abstractmethod
    def to_hf_json(self) -> str:
        """The same tokenizer in HuggingFace `tokenizers`' format (equal ids for any text)."""

    def save(self, path: str | Path) -> Path:
        """Write the tokenizer as HF's JSON at `path` and the suite's metadata beside it
        (`metadata_path`); return `path`. Each file is written whole or not at all."""
        from .rundir import write_atomic, write_json

        path = Path(path)
        write_atomic(path, self.to_hf_json())
        write_json(metadata_path(path), {
            "format": FILE_FORMAT, "kind": self.kind, "spec": self.spec,
            "vocab_size": self.vocab_size, "special_tokens": list(SPECIAL_TOKENS),
            "fingerprint": self.fingerprint,
        })
        return path

    @staticmethod
    def load(path: str | Path) -> Tokenizer:
        """Read a tokenizer written by `save`."""
        return load_tokenizer(path)

    def _special_text(self, i: int) -> str:
        return SPECIAL_TOKENS[i]


class CharTokenizer(Tokenizer):
    """One id per character seen in the training texts; anything else maps to unk."""

    kind = "char"

    def __init__(self, chars: Iterable[str]):
        self.chars = sorted(set(chars))
        self._ids = {c: i + N_SPECIAL for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        return cls(seen)

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + len(self.chars)

    def encode(self, text: str) -> list[int]:
        get = self._ids.get
        return [get(c, UNK_ID) for c in text]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i >= N_SPECIAL:
                out.append(self.chars[i - N_SPECIAL])
            elif not skip_special:
                out.append(self._special_text(i))
        return "".join(out)

    def _state(self) -> dict[str, Any]:
        return {"chars": self.chars}

    def to_hf_json(self) -> str:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models

        # A BPE model without merges splits its input into characters and looks each up.
        vocab = {**{t: i for i, t in enumerate(SPECIAL_TOKENS)}, **self._ids}
        hf = HFTokenizer(models.BPE(vocab=vocab, merges=[], unk_token=SPECIAL_TOKENS[UNK_ID]))
        hf.decoder = decoders.Fuse()  # characters join without spaces
        hf.add_special_tokens(list(SPECIAL_TOKENS))
        return hf.to_str()


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes: id = byte + 6. Needs no training and has no unknowns."""

    kind = "byte"

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + 256

    def encode(self, text: str) -> list[int]:
        return [b + N_SPECIAL for b in text.encode("utf-8")]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        # Decode runs of bytes together so multi-byte characters survive; a model's broken
        # byte sequences become U+FFFD instead of an exception.
        out, run = [], bytearray()
        for i in ids:
            i = int(i)
            if i >= N_SPECIAL:
                run.append(i - N_SPECIAL)
                continue
            if not skip_special:
                out.append(run.decode("utf-8", errors="replace"))
                run.clear()
                out.append(self._special_text(i))
        out.append(run.decode("utf-8", errors="replace"))
        return "".join(out)

    def _state(self) -> dict[str, Any]:
        return {}

    def to_hf_json(self) -> str:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers

        # HF's byte-level pre-tokenizer writes each UTF-8 byte as one printable character;
        # a BPE model without merges then maps byte b's character to id b + N_SPECIAL.
        vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
        vocab.update({char: byte + N_SPECIAL for byte, char in enumerate(byte_characters())})
        hf = HFTokenizer(models.BPE(vocab=vocab, merges=[]))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        hf.decoder = decoders.ByteLevel()
        hf.add_special_tokens(list(SPECIAL_TOKENS))
        return hf.to_str()


def byte_characters() -> list[str]:
    """The printable character byte-level BPE (GPT-2's, HF's `ByteLevel`) writes for each byte:
    the byte's own Latin-1 character where that is printable and not a space, else one of
    the characters from U+0100 on, handed out in byte order."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)}
    out, spare = [], 256
    for byte in range(256):
        if byte in printable:
            out.append(chr(byte))
        else:
            out.append(chr(spare))
            spare += 1
    return out


class BPETokenizer(Tokenizer):
    """Byte-level BPE from HuggingFace `tokenizers`: lossless, so decode(encode(s)) == s."""

    kind = "bpe"
    _CHUNK = 1 << 16  # characters per piece when encoding a long document

    def __init__(self, hf_json: str):
        from tokenizers import Tokenizer as HFTokenizer

        self._hf_json = hf_json
        self._hf = HFTokenizer.from_str(hf_json)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        hf = HFTokenizer(models.BPE())
        # No prefix space: the pre-tokenizer must not invent text, or round trips would break.
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS),  # first, so they get ids 0..5
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator(_lines(texts), trainer=trainer)
        hf.add_special_tokens(list(SPECIAL_TOKENS))  # marks them special for decode
        for i, token in enumerate(SPECIAL_TOKENS):
            assert hf.token_to_id(token) == i, "special tokens must be ids 0..5"
        return cls(hf.to_str())

    @property
    def vocab_size(self) -> int:
        return self._hf.get_vocab_size()

    @property
    def spec(self) -> str:
        return f"bpe:{self.vocab_size}"

    def encode(self, text: str) -> list[int]:
        if len(text) <= self._CHUNK:
            return self._hf.encode(text, add_special_tokens=False).ids
        # Long documents (a whole WikiText split) go in newline-aligned pieces, encoded in
        # parallel; a piece boundary only changes how whitespace is grouped, never the text.
        ids: list[int] = []
        for enc in self._hf.encode_batch(_pieces(text, self._CHUNK), add_special_tokens=False):
            ids.extend(enc.ids)
        return ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if any(len(t) > self._CHUNK for t in texts):
            return [self.encode(t) for t in texts]
        encs = self._hf.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in encs]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        ids = [int(i) for i in ids]
        if skip_special:
            return self._hf.decode(ids, skip_special_tokens=True)
        # Decode around specials ourselves: the byte-level decoder would mangle them.
        out, run = [], []
        for i in ids:
            if i < N_SPECIAL:
                out.append(self._hf.decode(run, skip_special_tokens=True))
                out.append(self._special_text(i))
                run = []
            else:
                run.append(i)
        out.append(self._hf.decode(run, skip_special_tokens=True))
        return "".join(out)

    def _state(self) -> dict[str, Any]:
        return {"hf_tokenizer": json.loads(self._hf_json)}

    def to_hf_json(self) -> str:
        return self._hf_json


def _pieces(text: str, size: int) -> list[str]:
    """Cut text into pieces of about `size` characters, each ending at a newline if possible."""
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            newline = text.rfind("\n", start, end)
            end = newline + 1 if newline > start else end
        pieces.append(text[start:end])
        start = end
    return pieces


def _lines(texts: Iterable[str]) -> Iterator[str]:
    """Training input in line-sized pieces, so one huge document still trains in parallel."""
    for text in texts:
        if len(text) <= BPETokenizer._CHUNK:
            yield text
        else:
            yield from _pieces(text, BPETokenizer._CHUNK)


_BPE_SPEC = re.compile(r"bpe:(\d+)")


def build_tokenizer(spec: str, texts: Iterable[str]) -> Tokenizer:
    """Build the tokenizer `spec` names from `texts`, which must be TRAINING texts only."""
    spec = str(spec).strip()
    if spec == "char":
        return CharTokenizer.train(texts)
    if spec == "byte":
        return ByteTokenizer()
    m = _BPE_SPEC.fullmatch(spec)
    if m:
        size = int(m.group(1))
        if size < BPE_MIN_VOCAB:
            raise ConfigError(
                f"'{spec}' is too small: byte-level BPE needs at least {BPE_MIN_VOCAB} ids "
                f"({N_SPECIAL} special tokens + 256 bytes) before any merge; "
                f"use bpe:{BPE_MIN_VOCAB} or more",
                key=TOKENIZER_KEY,
            )
        return BPETokenizer.train(texts, size)
    raise ConfigError(
        f"malformed tokenizer spec '{spec}'; allowed forms: {', '.join(SPEC_FORMS)} "
        "(e.g. bpe:8000)",
        key=TOKENIZER_KEY,
    )


def train_texts(corpus: Any) -> list[str]:
    """The texts a tokenizer may learn from: the corpus's train split only (both sides of a
    translation corpus), so no validation or test text leaks into the vocabulary."""
    return corpus.texts("train")


def tokenizer_for_corpus(spec: str, corpus: Any) -> Tokenizer:
    """`build_tokenizer` on the corpus's training split."""
    return build_tokenizer(spec, train_texts(corpus))


def metadata_path(path: str | Path) -> Path:
    """Where the suite's metadata of the tokenizer saved at `path` lives:
    tokenizer.json -> tokenizer.tzoo.json."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".json") + METADATA_SUFFIX)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokenizer written by `Tokenizer.save` (HF's file and the metadata beside it), or
    a format-1 file of an older run."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        state = json.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"tokenizer file not found: '{path}'", key=TOKENIZER_KEY) from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"'{path}' is not a tokenizer JSON file ({err})") from None
    if isinstance(state, dict) and "kind" in state:  # format 1: the state itself
        return _from_state(state, path)
    meta = metadata_path(path)
    try:
        kind = json.loads(meta.read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        raise ConfigError(f"'{path}' has no readable '{meta.name}' beside it, which says "
                          "what kind of tokenizer it is", source=str(path)) from None
    if kind == "char":
        vocab = state["model"]["vocab"]
        return CharTokenizer(token for token, i in vocab.items() if i >= N_SPECIAL)
    return _from_state({"kind": kind, "hf_tokenizer": state}, path, hf_json=text)


def _from_state(state: dict[str, Any], path: Path, hf_json: str | None = None) -> Tokenizer:
    kind = state.get("kind")
    if kind == "char":
        return CharTokenizer(state["chars"])
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer(hf_json or json.dumps(state["hf_tokenizer"]))
    raise ConfigError(
        f"'{path}' holds an unknown tokenizer kind '{kind}'; allowed: bpe, byte, char",
        source=str(path),
    )
