"""The repository's own documentation: the index links every page, and pages link what exists."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
# every page of the documentation plan (docs/README.md is the index)
PLAN = (
    "model.md",
    "orthogonal-flow.md",
    "sliding-modes.md",
    "limit.md",
    "any-scale.md",
    "general-data.md",
    "field-setups.md",
    "finite-scale.md",
    "experiments.md",
    "slurm.md",
)


def _links(page: Path) -> set[str]:
    return set(re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")))


def test_index_links_every_page():
    links = _links(DOCS / "README.md")
    assert set(PLAN) <= links, sorted(set(PLAN) - links)
    on_disk = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert on_disk <= links, f"pages missing from docs/README.md: {sorted(on_disk - links)}"


def test_pages_link_only_pages_of_the_plan():
    for page in DOCS.glob("*.md"):
        for target in _links(page):
            assert target in PLAN or target == "README.md", (page.name, target)


def test_no_page_cites_the_external_theory_notes():
    for page in DOCS.glob("*.md"):
        assert "THEORY" not in page.read_text(encoding="utf-8"), page.name
