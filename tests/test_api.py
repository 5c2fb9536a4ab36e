"""The Python API: `import tzoo` stays light, and the README's example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import tzoo
from tzoo.components.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### From Python (a notebook)", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "the README's Python API section has no python block"
    return match.group(1)


def test_import_tzoo_does_not_import_torch():
    code = "import sys, tzoo; assert tzoo.__version__; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
    assert set(tzoo.API) <= set(dir(tzoo))
    with pytest.raises(AttributeError):
        tzoo.no_such_function  # noqa: B018


@pytest.mark.slow
def test_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(_readme_example(), "README.md", "exec"), scope)
    printed = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"learned: val/loss \d+\.\d{3}", printed[-2])
    assert printed[-1] == "# Ablation report: quickstart"
    assert (tmp_path / "reports" / "quickstart" / "index.html").is_file()
    run = scope["run"]
    assert run.metrics == run.summary.metrics and run.summary.status == "completed"
    assert [o.status for o in scope["outcomes"]] == ["completed"] * 4
    assert scope["ids"] == run.tokenizer.encode("The ")
    # a second call finds every run done: nothing is trained again
    again = tzoo.run_experiment(scope["experiment"], quiet=True)
    assert [o.note for o in again] == ["already done, skipped"] * 4


def test_api_takes_mappings_and_set_texts_and_refuses_bad_input(tiny):
    by_mapping = tzoo.load_experiment(tiny, {"model.layers": 2, "model.position": "alibi"})
    by_text = tzoo.load_experiment(tiny, ["model.layers=2", "model.position=alibi"])
    assert by_mapping.base == by_text.base
    assert by_mapping.base["model"]["layers"] == 2
    assert tzoo.load_experiment("quickstart").name == "quickstart"
    with pytest.raises(ConfigError, match="did you mean 'rotary'"):
        tzoo.load_experiment(tiny, {"model.position": "rotery"})
    with pytest.raises(ConfigError, match="did you mean 'quickstart'"):
        tzoo.load_experiment("quickstar")
