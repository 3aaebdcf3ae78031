"""The docs resolve: every ``§`` reference names a section that exists, every relative link in
README.md and docs/ points at a file (and heading) in the repository, and docs/architecture.md
names exactly the modules of ``src/telefunc`` and only methods that exist.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SRC = REPO / "src" / "telefunc"
ARCHITECTURE = DOCS / "architecture.md"

#: Where code cites the docs: ``docs/<name>.md §N`` or ``docs/<name>.md §N-§M``.
CODE_REF = re.compile(r"docs/(\w+)\.md §(\d+(?:\.\d+)*)(?:-§(\d+(?:\.\d+)*))?")
#: Inside docs/*.md a reference may name the other file (``protocol §7.1``) or none (this file).
DOC_REF = re.compile(r"(?:\b(protocol|cloudflare)(?:\.md)?\]?\(?[^ §]*\)? )?§(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)*)\.? ", re.MULTILINE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SUFFIXES = {".py", ".mjs", ".js", ".ts", ".md", ".sh", ".toml", ".capnp"}


def sections(doc: str) -> set[str]:
    return set(HEADING.findall((DOCS / f"{doc}.md").read_text()))


def cited_files() -> Iterator[Path]:
    yield REPO / "README.md"
    for top in ("src", "tests", "bench", "js", "examples", "scripts"):
        for path in (REPO / top).rglob("*"):
            parts = set(path.relative_to(REPO).parts)
            if parts & {"node_modules", ".venv", "__pycache__"} or not path.is_file():
                continue
            if path == Path(__file__).resolve():  # this file spells the patterns out
                continue
            if path.suffix in CODE_SUFFIXES and "egg-info" not in str(path):
                yield path


def test_docs_exist_with_numbered_sections() -> None:
    for doc in ("protocol", "cloudflare", "architecture"):
        assert sections(doc), f"docs/{doc}.md has no numbered sections"


def test_every_section_reference_in_the_code_resolves() -> None:
    problems = []
    count = 0
    for path in cited_files():
        text = path.read_text(errors="replace")
        if "§" not in text:
            continue
        covered: set[int] = set()
        for match in CODE_REF.finditer(text):
            covered.update(i for i in range(match.start(), match.end()) if text[i] == "§")
            doc, first, last = match.groups()
            if not (DOCS / f"{doc}.md").is_file():
                problems.append(f"{path.relative_to(REPO)}: docs/{doc}.md does not exist")
                continue
            for number in filter(None, (first, last)):
                count += 1
                if number not in sections(doc):
                    problems.append(f"{path.relative_to(REPO)}: docs/{doc}.md has no §{number}")
        for index, char in enumerate(text):
            if char == "§" and index not in covered:
                line = text.count("\n", 0, index) + 1
                problems.append(f"{path.relative_to(REPO)}:{line}: § without docs/<file>.md")
    assert not problems, problems
    assert count > 40  # the code does cite the docs; a broken regex would find nothing


def test_section_references_inside_the_docs_resolve() -> None:
    problems = []
    for path in DOCS.glob("*.md"):
        for match in DOC_REF.finditer(path.read_text()):
            doc = match.group(1) or path.stem
            if match.group(2) not in sections(doc):
                problems.append(f"{path.name}: {match.group(0)!r} names a missing section")
    assert not problems, problems


def github_anchor(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {github_anchor(h) for h in re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE)}


@pytest.mark.parametrize(
    "doc", [REPO / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name
)
def test_relative_links_resolve(doc: Path) -> None:
    problems = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no such heading")
    assert not problems, problems


def test_readme_and_docs_cite_no_missing_sources() -> None:
    for path in (REPO / "README.md", *DOCS.glob("*.md")):
        text = path.read_text()
        assert "DESIGN.md" not in text, path.name
        assert "the seed" not in text.lower(), path.name
        assert "spec/" not in text, path.name


def test_architecture_names_every_module_and_only_real_ones() -> None:
    text = ARCHITECTURE.read_text()
    named = set(re.findall(r"src/telefunc/[\w/]+\.py", text))
    actual = {str(p.relative_to(REPO)) for p in SRC.rglob("*.py")}
    assert not named - actual, f"named but missing: {sorted(named - actual)}"
    assert not actual - named, f"in the tree but not in architecture.md: {sorted(actual - named)}"
    short = re.findall(
        r"`((?:wire|server|asgi|client|cloudflare|testing|broadcast)/\w+\.py)`", text
    )
    assert short
    missing = sorted({s for s in short if not (SRC / s).is_file()})
    assert not missing, missing


def class_members() -> dict[str, set[str]]:
    members: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names = members.setdefault(node.name, set())
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        names.add(item.name)
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        names.add(item.target.id)
    return members


def test_architecture_names_only_methods_that_exist() -> None:
    members = class_members()
    cited = re.findall(r"`([A-Z]\w+)\.(\w+)", ARCHITECTURE.read_text())
    assert len(cited) > 10
    missing = sorted(
        {f"{cls}.{name}" for cls, name in cited if name not in members.get(cls, set())}
    )
    assert not missing, missing
