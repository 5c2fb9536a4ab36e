"""The named corpora: `dataset:NAME` in an experiment, `tzoo data fetch NAME` on the command line.

Every URL is pinned (a git commit on GitHub, a revision of a Hub dataset), so the bytes behind
it can never change; every sha256 below was computed from those bytes (the files of
`../shared/data`, whose README records the same sources, and the upstream repositories' git
objects), except where an entry's `note` says otherwise.
"""

from __future__ import annotations

from tzoo.components.errors import ConfigError, unknown_choice

from .entry import Dataset, Output, Source

_CHAR_RNN = ("https://raw.githubusercontent.com/karpathy/char-rnn/"
             "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare")
_PYTORCH_EXAMPLES = ("https://raw.githubusercontent.com/pytorch/examples/"
                     "77f55b912142e11fcfdf5b530231fb9c52f181e8/word_language_model/data/wikitext-2")
_SDP = ("https://raw.githubusercontent.com/wyshi/sdp_transformers/"
        "67f51dacb983f17926a3376ec10b374c0ef0588a/data/wikitext-2-raw")
_MULTI30K = ("https://raw.githubusercontent.com/multi30k/dataset/"
             "a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw")
#: Salesforce/wikitext on the Hub at "Convert dataset to Parquet (#8)"
_WIKITEXT_HUB = ("https://huggingface.co/datasets/Salesforce/wikitext/resolve/"
                 "b08601e04326c79dfdd32d625aee71d232d685c3/wikitext-103-raw-v1")

_WIKITEXT_LICENSE = "CC BY-SA 3.0 (text from Wikipedia)"
_WIKITEXT_CITATION = ("Merity, Xiong, Bradbury and Socher (2016), Pointer Sentinel Mixture "
                      "Models, arXiv:1609.07843")


def _copied(name: str, url: str, sha256: str, size: int) -> Output:
    return Output(name, (Source(url, sha256, size),), "copy", sha256, size)


TINYSHAKESPEARE = Dataset(
    name="tinyshakespeare",
    title="Tiny Shakespeare (char-rnn): 1.1 MB of Shakespeare's plays, character-level LM",
    task="lm",
    outputs=(
        _copied("input.txt", f"{_CHAR_RNN}/input.txt",
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", 1_115_394),
    ),
    license="public domain (Shakespeare); the char-rnn repository is MIT",
    citation="Karpathy (2015), char-rnn, https://github.com/karpathy/char-rnn",
    origin="github.com/karpathy/char-rnn at commit 6f9487a, data/tinyshakespeare/input.txt "
           "(the file nanoGPT's shakespeare_char reads)",
    splits="one file, no published splits: the first 90 % of characters train, the last 10 % "
           "validate and test (nanoGPT's split; option train_fraction)",
    corpus="input.txt",
)

WIKITEXT_2 = Dataset(
    name="wikitext-2",
    title="WikiText-2 v1, word level: tokenized Wikipedia articles, rare words as <unk>",
    task="lm",
    outputs=(
        _copied("train.txt", f"{_PYTORCH_EXAMPLES}/train.txt",
                "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f", 10_797_148),
        _copied("valid.txt", f"{_PYTORCH_EXAMPLES}/valid.txt",
                "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8", 1_121_681),
        _copied("test.txt", f"{_PYTORCH_EXAMPLES}/test.txt",
                "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0", 1_256_449),
    ),
    license=_WIKITEXT_LICENSE,
    citation=_WIKITEXT_CITATION,
    origin="github.com/pytorch/examples at commit 77f55b9, word_language_model/data/wikitext-2 "
           "(the original wiki.{train,valid,test}.tokens, renamed)",
    splits="train.txt, valid.txt, test.txt: the published splits",
)

WIKITEXT_2_RAW = Dataset(
    name="wikitext-2-raw",
    title="WikiText-2 v1, raw: the same articles with every word kept, for characters or BPE",
    task="lm",
    outputs=(
        _copied("train.txt", f"{_SDP}/train.txt",
                "6707892fa3788b5ab9ed78ab5ff37d9fe825f6011a2ad4fcd6a6d467f0e7da57", 10_940_747),
        _copied("valid.txt", f"{_SDP}/valid.txt",
                "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7", 1_146_846),
        _copied("test.txt", f"{_SDP}/test.txt",
                "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08", 1_290_590),
    ),
    license=_WIKITEXT_LICENSE,
    citation=_WIKITEXT_CITATION,
    origin="github.com/wyshi/sdp_transformers at commit 67f51da, data/wikitext-2-raw (the "
           "original wiki.{train,valid,test}.raw, renamed)",
    splits="train.txt, valid.txt, test.txt: the published splits",
)

_MULTI30K_FILES = {  # split: {lang: (sha256 of the .gz, its size, sha256 of the text, its size)}
    "train": {
        "en": ("d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f", 568_929,
               "460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6", 1_801_238),
        "de": ("726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6", 637_044,
               "2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72", 2_110_398),
    },
    "val": {
        "en": ("14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28", 21_650,
               "1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227", 63_297),
        "de": ("f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a", 24_681,
               "660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660", 75_981),
    },
    "test_2016_flickr": {
        "en": ("611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9", 21_077,
               "399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182", 62_076),
        "de": ("9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8", 22_890,
               "4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16", 70_649),
    },
    "test_2017_flickr": {
        "en": ("76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074", 19_138,
               "ce1450ddc5ab0834502579d77a170849952e15a2938b34cc503bdc25ebb4fb98", 55_242),
        "de": ("a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee", 21_471,
               "c3078bc3b36808bf9d20eb2347ed6137016179ef59ec0d2b9b8ecc3fb2880081", 64_059),
    },
    "test_2017_mscoco": {
        "en": ("aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58", 8_844,
               "43051fdfa86fd5395182e718a94ca67b1b227b9f7c79596ff0f6b813216981d2", 24_949),
        "de": ("799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338", 10_230,
               "58277df3c75f92f7145a11b910b553d1cf82c439249d4dc237c899609eafac22", 29_906),
    },
    "test_2018_flickr": {
        "en": ("ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d", 23_514,
               "4e585c2dd525911a6ea7730e9d0b516239af3f1b1ffae6a2130223cfb639f25e", 70_603),
        "de": ("ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608", 26_461,
               "39fcc8b3331d76fb42d648d019c6898b0d5e58baac87bc2a0bb93f44ec8db207", 80_893),
    },
}


def _multi30k_outputs() -> tuple[Output, ...]:
    outputs = []
    for split, by_lang in _MULTI30K_FILES.items():
        # test_2016_flickr is "the" Multi30k test set: it is kept as test_2016 (split "test").
        stem = "test_2016" if split == "test_2016_flickr" else split
        for lang, (gz_sha, gz_size, sha, size) in by_lang.items():
            source = Source(f"{_MULTI30K}/{split}.{lang}.gz", gz_sha, gz_size)
            outputs.append(Output(f"{stem}.{lang}", (source,), "gunzip", sha, size))
    return tuple(outputs)


MULTI30K = Dataset(
    name="multi30k",
    title="Multi30k task 1, English-German: 29k image captions and every test set",
    task="translation",
    outputs=_multi30k_outputs(),
    license="non-commercial research and education (upstream README's terms; no license file)",
    citation="Elliott, Frank, Sima'an and Specia (2016), Multi30K: Multilingual "
             "English-German Image Descriptions, VL@ACL; for the 2017 and 2018 test sets also "
             "Elliott et al. (2017) and Barrault et al. (2018), WMT multimodal task findings",
    origin="github.com/multi30k/dataset at commit a3d2e0d, data/task1/raw/*.{en,de}.gz, "
           "gunzipped; test_2016_flickr renamed test_2016",
    splits="train, val (validation), test_2016 (test), and test_2017_flickr, "
           "test_2017_mscoco, test_2018_flickr kept by name; source_lang en, target_lang de "
           "unless the experiment says otherwise",
    options={"source_lang": "en", "target_lang": "de"},
)

WIKITEXT_103_RAW = Dataset(
    name="wikitext-103-raw",
    title="WikiText-103 v1, raw: ~540 MB of Wikipedia articles (50x WikiText-2), for more compute",
    task="lm",
    outputs=(
        Output("train.txt", (
            Source(f"{_WIKITEXT_HUB}/train-00000-of-00002.parquet",
                   "74da360f23826045b3e6ac6375411fdb15f003030aa74f2596ed08b857cb9212"),
            Source(f"{_WIKITEXT_HUB}/train-00001-of-00002.parquet",
                   "ba090ac30dbf5461e8dcbdd1a1b8e6f3cf9c2c756d64f0c1220450acd514f720"),
        ), "parquet-lines"),
        # WikiText-103 shares WikiText-2's validation and test articles (Merity et al. 2016):
        # the lines rebuilt from these shards must be byte for byte WikiText-2 raw's files,
        # which also checks the rebuilding of train.txt.
        Output("valid.txt", (
            Source(f"{_WIKITEXT_HUB}/validation-00000-of-00001.parquet",
                   "204929b7ff9d6184953f867dedb860e40aa69c078fc1e54b3baaa8fb28511c4c"),
        ), "parquet-lines",
            "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7", 1_146_846),
        Output("test.txt", (
            Source(f"{_WIKITEXT_HUB}/test-00000-of-00001.parquet", None),
        ), "parquet-lines",
            "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08", 1_290_590),
    ),
    license=_WIKITEXT_LICENSE,
    citation=_WIKITEXT_CITATION,
    origin="huggingface.co/datasets/Salesforce/wikitext at revision b08601e, "
           "wikitext-103-raw-v1/*.parquet (one row per line of the original wiki.*.raw; "
           "written back out as those lines)",
    splits="train.txt, valid.txt, test.txt: the published splits",
    approx_size=540_000_000,
    note="nobody publishes a checksum of WikiText-103's train.txt, so it is checked through "
         "its sources: the sha256 of both train shards and of the validation shard are the "
         "Hub's Git LFS pointers of these files (read from the Hub's pages of PR #8, commit "
         "5fddba4, squash-merged as revision b08601e); the test shard's was not found, but the "
         "valid.txt and test.txt rebuilt from the shards must equal WikiText-2 raw's (the same "
         "articles), which also checks the rebuilding. Not downloaded when this entry was "
         "written (no network): the first `tzoo data fetch wikitext-103-raw` is their first "
         "real check, and fails loudly if one is wrong",
)

CATALOGUE: dict[str, Dataset] = {
    entry.name: entry
    for entry in (TINYSHAKESPEARE, WIKITEXT_2_RAW, WIKITEXT_2, MULTI30K, WIKITEXT_103_RAW)
}


def lookup(name: str, *, key: str | None = None) -> Dataset:
    """The entry called `name`; an unknown name is a ConfigError with a "did you mean"."""
    entry = CATALOGUE.get(name)
    if entry is None:
        raise ConfigError(unknown_choice("dataset", name, CATALOGUE)
                          + "; `tzoo data list` describes them", key=key)
    return entry
