"""Rendering the report document as one self-contained HTML page.

Self-contained means it opens from a file, an e-mail attachment or an air-gapped machine
exactly as it does here: images are inlined as base64 data URIs, the CSS is inline and
nothing (fonts, scripts, stylesheets) is fetched from anywhere.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from .document import (
    Block,
    Bullets,
    Code,
    Heading,
    Image,
    Note,
    Paragraph,
    Table,
)

# System font stacks only: a web font would be an external reference.
_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1.5em; color: #1f2328;
       line-height: 1.5; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 2em; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
            background: #f6f8fa; border-radius: 4px; }
code { padding: .1em .3em; font-size: 90%; }
pre { padding: .8em; overflow-x: auto; }
table { border-collapse: collapse; margin: 1em 0; font-size: 92%; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .35em .7em; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { border-left: 4px solid #bf8700; background: #fff8c5; padding: .6em 1em;
        margin: 1em 0; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 90%; }
"""

_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*")


def inline(text: str) -> str:
    """Escape text, then turn `code` and **bold** into tags."""
    out, last = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        if match.group(1) is not None:
            out.append(f"<code>{html.escape(match.group(1))}</code>")
        else:
            out.append(f"<strong>{html.escape(match.group(2))}</strong>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def data_uri(path: Path) -> str:
    """A PNG file as a data: URI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table(table: Table) -> str:
    head = "".join(f"<th>{inline(h)}</th>" for h in table.headers)
    rows = []
    for row in table.rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i < len(table.numeric) and table.numeric[i] else ""
            cells.append(f"<td{cls}>{inline(cell)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _block(block: Block, base_dir: Path) -> str:
    if isinstance(block, Heading):
        level = min(max(block.level, 1), 6)
        return f"<h{level}>{inline(block.text)}</h{level}>"
    if isinstance(block, Paragraph):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, Note):
        return '<div class="note">' + "<br>".join(
            inline(line) for line in block.text.splitlines()
        ) + "</div>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{inline(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Code):
        return f"<pre><code>{html.escape(block.text)}</code></pre>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        file = base_dir / block.path
        if not file.is_file():
            return f"<p><em>missing figure: {html.escape(block.path)}</em></p>"
        caption = f"<figcaption>{inline(block.caption)}</figcaption>" if block.caption else ""
        return (
            f'<figure><img src="{data_uri(file)}" alt="{html.escape(block.alt)}">'
            f"{caption}</figure>"
        )
    raise TypeError(f"unknown block {block!r}")


def to_html(blocks: list[Block], base_dir: Path, title: str) -> str:
    """A complete HTML page; image paths are resolved against `base_dir` and inlined."""
    body = "\n".join(_block(b, base_dir) for b in blocks)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
