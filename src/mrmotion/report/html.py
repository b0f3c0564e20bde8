"""A small self-contained HTML report: sections of text, tables and figures (PNG files beside the report)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from mrmotion.io.files import write_text_atomic

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.note{color:#555;font-size:0.92em}"""


@dataclass
class Report:
    """Collects sections and writes them as one HTML page."""

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, note: bool = False) -> None:
        self.parts.append(f'<p class="{"note" if note else ""}">{html.escape(text)}</p>')

    def table(self, header: list[str], rows: list[list[object]]) -> None:
        head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_format(cell))}</td>" for cell in row) + "</tr>" for row in rows
        )
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def figure(self, path: str | Path, caption: str) -> None:
        """A figure at ``path`` relative to the report's folder (``scan/simulation.png`` stays in ``scan/``)."""
        source = html.escape(Path(path).as_posix(), quote=True)
        self.parts.append(
            f'<figure><img src="{source}" alt="{source}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        )

    def write(self, path: str | Path) -> Path:
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>{''.join(self.parts)}</body></html>\n"
        )
        return write_text_atomic(path, page)


def _format(cell: object) -> str:
    if isinstance(cell, float):
        return f"{cell:.4g}"
    return str(cell)
