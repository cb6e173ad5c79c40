"""The docs: every relative link in README.md, docs/ and benchmarks/README.md resolves, the README stays short, and
each topic has its page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = ("runner", "python-api", "baselines", "kd", "tuning", "crashes", "gpu-speed", "submissions")
CHECKED = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "benchmarks" / "README.md"]
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text, lower-cased, punctuation dropped, each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links in `page` (outside code) whose file, or whose `#anchor` in a markdown file, does not exist."""
    prose = INLINE_CODE.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    broken = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no file {path}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading #{anchor} in {path or page.name}")
    return broken


@pytest.mark.parametrize("page", CHECKED, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Faster steps on a GPU (`--fast_step`)\n\n## Flags\n\n## Flags\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\nSee [other](other.md#faster-steps-on-a-gpu---fast_step), [flags](other.md#flags-1),"
        " [here](#page), [the web](https://example.com/x.md#nowhere) and `[code](nowhere.md)`.\n\n"
        "```text\n[in a block](nowhere.md)\n```\n\n"
        "Broken: [gone](gone.md), [no heading](other.md#flags-2), [no heading here](#nothing).\n"
    )
    assert broken_links(page) == [
        "gone.md: no file gone.md",
        "other.md#flags-2: no heading #flags-2 in other.md",
        "#nothing: no heading #nothing in page.md",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Crashes, reruns and disk", "crashes-reruns-and-disk"),
        ("The paper's beta, read as a temperature", "the-papers-beta-read-as-a-temperature"),
        (
            "2. Runner (`benchmark_speed.py --runner`, `--padding_stats`; CPU)",
            "2-runner-benchmark_speedpy---runner---padding_stats-cpu",
        ),
        ("**Bold** and [a link](x.md)", "bold-and-a-link"),
    ],
)
def test_slug_follows_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_readme_is_at_most_300_lines() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 300


def test_each_topic_has_a_page_and_the_index_links_it() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in PAGES:
        assert (DOCS / f"{name}.md").is_file(), name
        assert f"]({name}.md)" in index, name
        assert f"](docs/{name}.md)" in readme, name
    assert "](docs/README.md)" in readme
