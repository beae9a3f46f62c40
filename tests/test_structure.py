"""The house shows its architecture: facts about imports and folders, checked on the code itself.

- no import cycle among the project's modules (a module-level import graph, read with ast);
- ``checks`` and ``training`` import from ``curation`` only ``curation.core``, ``curation.embeddings``
  and the face (``curation`` itself);
- every stage in the registry is one folder under ``curation/stages/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("curation", "checks", "training")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _imports(path: Path, *, top_level_only: bool, modules: dict[str, Path]) -> set[str]:
    """Project modules ``path`` imports; with ``top_level_only``, only imports that run at import time.

    ``from pkg import sub`` depends on ``pkg.sub`` when that is a module, else on ``pkg``.
    """
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in modules else node.module)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_no_import_cycle_among_project_modules() -> None:
    modules = _modules()
    graph = {
        m: {r for i in _imports(p, top_level_only=True, modules=modules) if (r := _resolve(i, modules)) and r != m}
        for m, p in modules.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            assert state.get(n) != 1, "import cycle: " + " -> ".join([*path[path.index(n) :], n])
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_checks_and_training_use_only_the_core_the_embeddings_the_spark_engine_and_the_face() -> None:
    allowed = ("curation.core", "curation.embeddings", "curation.spark")  # the gate on Spark ships frames as the engine does
    modules = _modules()
    for pkg in ("checks", "training"):
        for path in (ROOT / pkg).rglob("*.py"):
            for name in _imports(path, top_level_only=False, modules=modules):
                if name.split(".")[0] != "curation" or name == "curation":
                    continue
                assert name.startswith(allowed) or (name.count(".") == 1 and _is_face_name(name)), (
                    f"{path.relative_to(ROOT)} imports {name}"
                )


def _is_face_name(name: str) -> bool:
    import curation

    return name.split(".")[1] in curation.__all__


def test_every_stage_is_one_folder_under_stages() -> None:
    from curation.core.registry import STAGES

    for name, spec in STAGES.items():
        assert spec.module.startswith(f"curation.stages.{name}."), f"stage {name!r} lives in {spec.module}"
        assert (ROOT / "curation" / "stages" / name / "__init__.py").is_file()
    folders = {p.name for p in (ROOT / "curation" / "stages").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(STAGES), f"folders without a registered stage, or stages without a folder: {folders ^ set(STAGES)}"
    flat = [p.name for p in (ROOT / "curation").glob("*.py")]
    assert sorted(flat) == ["__init__.py", "cli.py", "demo.py", "embeddings.py", "show.py"], f"stray modules at curation/: {flat}"


def test_each_stage_doc_names_its_folder() -> None:
    """`docs/<stage>.md` points a newcomer at one folder, so the "Code:" line cannot drift file by file."""
    from curation.core.registry import STAGES

    for name in STAGES:
        doc = ROOT / "docs" / f"{name}.md"
        if doc.exists():
            code = [line for line in doc.read_text().splitlines() if line.startswith("Code:")]
            assert code and f"curation/stages/{name}/" in code[0], f"docs/{name}.md: its Code: line should name curation/stages/{name}/"
