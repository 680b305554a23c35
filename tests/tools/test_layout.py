"""The development tooling stays apart from the product: the product never imports it nor ships it, the
tools find the repository through one module, and no imports form a cycle, in the tools or the product."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from tools import paths

TOOLS = paths.REPO_ROOT / "tools"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(paths.REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST) -> set[str]:
    """Every module an import statement names, at any depth (lazy and TYPE_CHECKING imports too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imports_within(*folders: Path) -> dict[str, set[str]]:
    modules = {module_name(path): path for folder in folders for path in folder.rglob("*.py")}
    return {name: imported(ast.parse(path.read_text(encoding="utf-8"))) & modules.keys()
            for name, path in modules.items()}


def tool_imports() -> dict[str, set[str]]:
    return imports_within(TOOLS)


def test_only_the_entry_point_imports_the_command() -> None:
    assert {name for name, imports in tool_imports().items() if "tools.main" in imports} == {"tools.__main__"}


def test_no_import_cycle_anywhere() -> None:
    """Not in the tools, not in the product, not hidden in a function or behind TYPE_CHECKING."""
    graph = imports_within(TOOLS, paths.REPO_ROOT / "shared", paths.REPO_ROOT / "services")
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' → '.join((*path, name))}"
        if name not in done:
            for target in sorted(graph[name] - {name}):
                # Importing tools.infra.host runs the package tools.infra first: not an edge of ours.
                if not name.startswith(f"{target}."):
                    visit(target, (*path, name))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_one_module_names_the_repository() -> None:
    finding = [path.relative_to(paths.REPO_ROOT).as_posix() for path in TOOLS.rglob("*.py")
               if re.search(r"Path\(__file__\)|parents\[", path.read_text(encoding="utf-8"))]
    assert finding == ["tools/paths.py"]
    assert (paths.DEPLOY_DIR / "kafka" / "pom.xml").is_file() and paths.CORPUS_DIR.is_dir()


def test_no_tool_module_is_over_400_lines() -> None:
    lengths = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in TOOLS.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 400} == {}


def test_the_product_neither_imports_nor_ships_the_tools() -> None:
    for package in ("shared", "services"):
        for path in (paths.REPO_ROOT / package).rglob("*.py"):
            assert not any(name == "tools" or name.startswith("tools.")
                           for name in imported(ast.parse(path.read_text(encoding="utf-8")))), path
    project = tomllib.loads((paths.REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert not any(pattern.startswith("tools") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"])
    assert "scripts" not in project["project"]  # a `triage` script would name a module the wheel lacks
    dockerfile = (paths.DEPLOY_DIR / "Dockerfile").read_text(encoding="utf-8")
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]  # the build stage trains the model with tools/model
    assert re.findall(r"^COPY (\S+)", final_stage, re.MULTILINE) == ["pyproject.toml", "shared", "services",
                                                                    "--from=build", "--from=build"]
    ignored = (paths.DEPLOY_DIR / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    # tools/infra: the build stage fetches the browser libraries with tools/infra/assets.py
    assert [line for line in ignored if line.startswith("!tools")] == ["!tools/__init__.py", "!tools/paths.py", "!tools/model/**",
                                                                      "!tools/infra/**"]
