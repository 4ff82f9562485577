"""Where the benchmarks write their figures: a section of docs/benchmarks.md between markers."""

from __future__ import annotations

import json
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_doc_section(begin: str, end: str, section: str, *, doc: Path = DOC) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end``) in ``doc``, in place
    of the previous one, or at the end the first time."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if begin in text:
        text = re.sub(
            re.escape(begin) + r".*?" + re.escape(end), lambda _: section, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    doc.write_text(text)


def footer(result: dict) -> str:
    """The lines every result section ends with: where and when it was measured, and how."""
    return (
        f"- Machine: {result['machine']}; {result['measured_at']}.\n"
        f"- Command: `{result['command']}`."
    )


def two_column_table(rows: list[tuple[str, str]]) -> str:
    """A Markdown table of (what, figures) rows, with no header words."""
    return "| | |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)


def save_result(result: dict, path: Path) -> None:
    """``result`` as indented JSON at ``path`` (its folder made if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
