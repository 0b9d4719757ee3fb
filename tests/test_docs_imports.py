"""Every import and every ``al.X`` / ``alwidget.X`` name that the README and the notebooks show
must exist: a documented name that disappears (or never existed) fails here, named with the
file and line where the documentation uses it.

Imports come from the Python code blocks of README.md and the code cells of every notebook
under ``notebooks/``; attribute uses also from inline code spans in the README's prose.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

# ```python ... ``` blocks (the fence's language tag must say python)
CODE_BLOCK = re.compile(r"^```(?:python|py)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
# al.X.Y / alwidget.X.Y, not preceded by a name character or a dot (so not session.label).
ATTRIBUTE_USE = re.compile(r"(?<![\w.])(al|alwidget)((?:\.[A-Za-z_]\w*)+)")


@dataclass(frozen=True)
class Snippet:
    """A piece of documented code and where it starts (file, 1-based line)."""

    where: str
    line: int
    code: str


@dataclass(frozen=True)
class Use:
    """One documented import or attribute chain, e.g. ``from alwidget.widget import MapView``."""

    where: str
    statement: str
    module: str  # what to import
    names: tuple[str, ...] = ()  # names taken from it (``from m import a, b``)
    chain: tuple[str, ...] = ()  # attributes followed from the module (``al.encoders.svd``)

    def __str__(self) -> str:
        return f"{self.where}: {self.statement}"


def readme_snippets() -> list[Snippet]:
    text = README.read_text()
    snippets = []
    for match in CODE_BLOCK.finditer(text):
        line = text.count("\n", 0, match.start(1)) + 1
        snippets.append(Snippet(f"README.md:{line}", line, match.group(1)))
    return snippets


def readme_inline_code() -> list[Snippet]:
    text = README.read_text()
    blocks = [(m.start(), m.end()) for m in re.finditer(r"^```.*?^```", text, re.M | re.S)]
    spans = []
    for match in INLINE_CODE.finditer(text):
        if any(start <= match.start() < end for start, end in blocks):
            continue
        line = text.count("\n", 0, match.start()) + 1
        spans.append(Snippet(f"README.md:{line}", line, match.group(1)))
    return spans


def notebook_snippets(path: Path) -> list[Snippet]:
    cells = json.loads(path.read_text())["cells"]
    snippets = []
    for number, cell in enumerate(cells, start=1):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            snippets.append(Snippet(f"notebooks/{path.name} cell {number}", 1, source))
    return snippets


def imports_in(snippet: Snippet) -> list[Use]:
    """Import statements of a snippet; a snippet that is not valid Python as a whole (an
    elided argument, a shell line) is parsed line by line, each import line on its own."""
    try:
        statements = ast.parse(snippet.code).body
        nodes = [node for node in ast.walk(ast.Module(statements, [])) if _is_import(node)]
        found = [(node, node.lineno) for node in nodes]
    except SyntaxError:
        found = []
        for offset, line in enumerate(snippet.code.splitlines()):
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                try:
                    node = ast.parse(stripped.split("#")[0]).body[0]
                except SyntaxError:
                    # A multi-line "from x import (" cannot be read alone: fail loudly.
                    raise AssertionError(
                        f"{snippet.where}+{offset}: cannot parse import line {stripped!r}"
                    ) from None
                found.append((node, offset + 1))
    uses = []
    for node, line in found:
        where = _where(snippet, line)
        statement = ast.unparse(node)
        if isinstance(node, ast.Import):
            uses += [Use(where, statement, alias.name) for alias in node.names]
        else:
            assert node.level == 0, f"{where}: relative import in documentation: {statement}"
            uses.append(Use(where, statement, node.module, tuple(a.name for a in node.names)))
    return uses


def attribute_uses_in(snippet: Snippet) -> list[Use]:
    uses = []
    for offset, line in enumerate(snippet.code.splitlines()):
        for match in ATTRIBUTE_USE.finditer(line.split("#")[0] if "#" in line else line):
            chain = tuple(match.group(2).strip(".").split("."))
            uses.append(Use(_where(snippet, offset + 1), match.group(0), "alwidget", (), chain))
    return uses


def _is_import(node) -> bool:
    return isinstance(node, (ast.Import, ast.ImportFrom))


def _where(snippet: Snippet, line_in_snippet: int) -> str:
    if snippet.where.startswith("README.md:"):
        return f"README.md:{snippet.line + line_in_snippet - 1}"
    return f"{snippet.where}, line {line_in_snippet}"


def documented_uses() -> list[Use]:
    snippets = readme_snippets()
    for path in NOTEBOOKS:
        snippets += notebook_snippets(path)
    uses = []
    for snippet in snippets:
        uses += imports_in(snippet)
        uses += attribute_uses_in(snippet)
    for span in readme_inline_code():
        uses += attribute_uses_in(span)
        if span.code.startswith(("from ", "import ")):
            uses += imports_in(span)
    unique = {}
    for use in uses:
        unique.setdefault((use.where, use.statement), use)
    return list(unique.values())


def resolve(use: Use) -> None:
    """Import the module and look up every name; raises ImportError/AttributeError if gone."""
    module = importlib.import_module(use.module)
    for name in use.names:
        if name == "*":
            continue
        if not hasattr(module, name):
            # ``from package import submodule`` works for submodules not yet imported.
            importlib.import_module(f"{use.module}.{name}")
    target, path = module, use.module
    for name in use.chain:
        path = f"{path}.{name}"
        if hasattr(target, name):
            target = getattr(target, name)
        elif isinstance(target, type(module)):
            target = importlib.import_module(path)  # a submodule not imported by its package
        else:
            raise AttributeError(f"{path} does not exist")


USES = documented_uses()


def test_the_documentation_is_scanned():
    """The scan itself finds the names a reader meets first (a broken regex fails here)."""
    statements = {use.statement for use in USES}
    assert "import alwidget as al" in statements
    assert "al.Session" in statements and "al.Widget" in statements
    assert any(use.where.startswith("notebooks/quickstart.ipynb") for use in USES)
    assert len(USES) >= 30


@pytest.mark.parametrize("use", USES, ids=str)
def test_documented_name_resolves(use: Use):
    try:
        resolve(use)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"{use.where} documents `{use.statement}`, which fails: {error!r}")


def test_a_missing_name_is_reported_with_its_place():
    """The checker fails on a name that does not exist (so the test above can fail)."""
    snippet = Snippet("README.md:10", 10, "from alwidget.widget import NoSuchView\nal.no_such\n")
    uses = imports_in(snippet) + attribute_uses_in(snippet)
    missing = [use for use in uses if "nosuch" in use.statement.lower().replace("_", "")]
    assert [(use.where, use.statement) for use in missing] == [
        ("README.md:10", "from alwidget.widget import NoSuchView"),
        ("README.md:11", "al.no_such"),
    ]
    for use in missing:
        with pytest.raises((ImportError, AttributeError)):
            resolve(use)
    resolve(next(use for use in uses if use.statement == "alwidget.widget"))
