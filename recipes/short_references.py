"""When corpus BLEU means nothing: references shorter than its n-gram order.

BLEU (Papineni et al. 2002) is the geometric mean of n-gram precisions for n = 1..4, so a
corpus whose references hold no 4-word sequence scores 0 whatever the system outputs: German
number words are single tokens, and a perfect translation of every one of them reads BLEU 0.
Such a figure is recorded as not applicable (null, with this reason), never as a result.

sacreBLEU's `use_effective_order` would instead drop the orders the corpus lacks. It is meant
for sentence-level BLEU; on one-word references it reduces BLEU to unigram precision times the
brevity penalty, a word-level exact match, which these runs report already (`exact_match`,
with chrF beside it), so the suite does not report a BLEU of a different definition.
"""

from __future__ import annotations

from collections.abc import Iterable

from sacrebleu.metrics.bleu import MAX_NGRAM_ORDER
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

_TOKENIZE = Tokenizer13a()  # the tokenisation the suite's BLEU uses


def bleu_not_applicable(references: Iterable[str]) -> str | None:
    """Why corpus BLEU of these references is not defined, or None when it is."""
    longest = max((len(_TOKENIZE(r).split()) for r in references), default=0)
    if longest >= MAX_NGRAM_ORDER:
        return None
    words = f"{longest} word" + ("" if longest == 1 else "s")
    return (f"the longest reference has {words} (sacreBLEU's 13a tokens) and BLEU counts "
            f"matching sequences of up to {MAX_NGRAM_ORDER} words, so it reads 0 whatever the "
            "translation; judge by exact match and chrF")
