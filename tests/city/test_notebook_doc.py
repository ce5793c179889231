"""docs/notebook-example.md runs: its Python blocks, in order, in one namespace, from the root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "notebook-example.md"


def python_blocks(markdown: str) -> list[str]:
    """The fenced ```python blocks of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.S | re.M)


def test_notebook_example_runs_and_its_asserts_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 8 and all("assert" in b for b in blocks)
    monkeypatch.chdir(ROOT)  # the example reads data/ as a notebook at the checkout's root would
    namespace: dict[str, object] = {"__name__": "notebook"}
    for i, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC.name} block {i}", "exec"), namespace)
    assert namespace["table"]["shootings"].sum() == 86
