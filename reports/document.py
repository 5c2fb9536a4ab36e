"""A tiny document model rendered both as markdown and as HTML.

The report is assembled once as a list of blocks; `to_markdown` and `html.to_html` render the
same blocks, so report.md and index.html cannot drift apart. Inline text may use only
`code` and **bold**, the subset both renderers understand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Note:
    """A call-out the reader must not miss (pooled data, missing runs)."""

    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Code:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    # Per column: True to right-align (numbers). Shorter than headers means left for the rest.
    numeric: list[bool] = field(default_factory=list)


@dataclass
class Image:
    """A PNG, referenced relative to the report directory (POSIX separators)."""

    path: str
    alt: str
    caption: str = ""


Block = Heading | Paragraph | Note | Bullets | Code | Table | Image


def _cell(text: str) -> str:
    # A pipe would end the cell and a newline the row.
    return text.replace("|", "\\|").replace("\n", " ")


def _table_markdown(table: Table) -> list[str]:
    aligns = [
        "---:" if i < len(table.numeric) and table.numeric[i] else ":---"
        for i in range(len(table.headers))
    ]
    lines = ["| " + " | ".join(_cell(h) for h in table.headers) + " |"]
    lines.append("| " + " | ".join(aligns) + " |")
    for row in table.rows:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return lines


def _block_markdown(block: Block) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + block.text]
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, Note):
        return ["> " + line for line in block.text.splitlines()]
    if isinstance(block, Bullets):
        return [f"- {item}" for item in block.items]
    if isinstance(block, Code):
        return ["```", block.text, "```"]
    if isinstance(block, Table):
        return _table_markdown(block)
    if isinstance(block, Image):
        lines = [f"![{block.alt}]({PurePosixPath(block.path)})"]
        if block.caption:
            lines += ["", f"*{block.caption}*"]
        return lines
    raise TypeError(f"unknown block {block!r}")


def to_markdown(blocks: list[Block]) -> str:
    """GitHub-flavoured markdown, blocks separated by blank lines."""
    return "\n\n".join("\n".join(_block_markdown(b)) for b in blocks) + "\n"
