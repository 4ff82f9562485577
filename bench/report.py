"""Where the benchmarks write their figures: a section of docs/benchmarks.md between markers."""

from __future__ import annotations

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
