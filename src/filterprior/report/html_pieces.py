"""HTML building blocks for the report: escaping, embedded figures, tables, and the little Markdown
that the study's summary.md uses. Nothing here knows about studies or runs."""

from __future__ import annotations

import base64
import html
import re
from typing import Any


def esc(value: Any) -> str:
    return html.escape(str(value))


def figure(png: bytes | None, caption: str, wide: bool = False) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    css = ' class="wide"' if wide else ""
    return (f'<figure{css}><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def row(figures: list[str]) -> str:
    figures = [f for f in figures if f]
    return f'<div class="row">{"".join(figures)}</div>' if figures else ""


def table(header: list[str], rows: list[list[Any]], text_columns: int = 1, classes: list[str] | None = None) -> str:
    def cell(tag: str, index: int, value: Any) -> str:
        css = ' class="text"' if index < text_columns else ""
        return f"<{tag}{css}>{esc(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = []
    for r, values in enumerate(rows):
        css = f' class="{classes[r]}"' if classes and classes[r] else ""
        body.append(f"<tr{css}>" + "".join(cell("td", i, v) for i, v in enumerate(values)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def inline(text: str) -> str:
    """Escaped text with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def markdown(text: str) -> str:
    """Just enough Markdown for the study's summary.md: pipe tables, headings and paragraphs.

    Consecutive text lines are one paragraph (summary.md wraps its prose), as Markdown has it.
    """
    out: list[str] = []
    pipe_rows: list[list[str]] = []
    paragraph: list[str] = []

    def flush() -> None:
        if pipe_rows:
            out.append(table(pipe_rows[0], pipe_rows[1:], text_columns=len(pipe_rows[0])))
            pipe_rows.clear()
        if paragraph:
            out.append(f"<p>{inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            if paragraph:
                flush()
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):  # the |---| separator row
                pipe_rows.append(cells)
            continue
        if stripped and not stripped.startswith("#"):
            if pipe_rows:
                flush()
            paragraph.append(stripped)
            continue
        flush()
        if heading := re.match(r"(#{1,6})\s+(.*)", stripped):
            level = min(len(heading.group(1)) + 1, 6)  # the file's title is a section of the page
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
    flush()
    return "\n".join(out)
