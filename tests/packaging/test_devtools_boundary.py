"""The extension zips leave devtools/ out, so the add-on must never need it: no module outside
devtools/ imports it, and the command line works without it (it offers `bench` only where
devtools/ exists, and `bench-rendered` beside it)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "smplx_capture_addon"
DEVTOOLS = "smplx_capture_addon.devtools"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules a source file imports (relative imports resolved,
    `from X import name` counted as both X and X.name, since name may be a module)."""
    package = ["smplx_capture_addon", *path.relative_to(PACKAGE).parent.parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def is_devtools(module: str) -> bool:
    return module == DEVTOOLS or module.startswith(DEVTOOLS + ".")


def test_the_resolver_sees_relative_imports():
    # devtools itself imports the runtime through relative imports: the scan must see them.
    assert "smplx_capture_addon.solver.keypoint_fit" in imported_modules(PACKAGE / "devtools" / "bench.py")
    assert "smplx_capture_addon.devtools.synthetic_model" in imported_modules(
        PACKAGE / "devtools" / "synthetic_cases.py"
    )
    assert "smplx_capture_addon.body_model.names" in imported_modules(
        PACKAGE / "devtools" / "open_body" / "rig.py"
    )


def test_no_module_outside_devtools_imports_it():
    runtime = [p for p in PACKAGE.rglob("*.py") if "devtools" not in p.relative_to(PACKAGE).parts]
    assert len(runtime) > 50  # the whole add-on was read
    offenders = {
        str(path.relative_to(ROOT)): sorted(filter(is_devtools, imported_modules(path))) for path in runtime
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}


def listed_commands(package_parent: Path) -> set[str]:
    """The commands `python -m smplx_capture_addon --help` lists, run from package_parent."""
    result = subprocess.run(
        [sys.executable, "-m", "smplx_capture_addon", "--help"],
        cwd=package_parent, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(re.findall(r"^    (\S+)", result.stdout, flags=re.MULTILINE))  # argparse indents them by 4


def test_command_line_offers_bench_only_where_devtools_exists(tmp_path: Path):
    runtime = {"model-info", "detect", "fit", "fit-video", "import-motion", "blend", "export", "worker"}
    assert listed_commands(ROOT) == runtime | {"bench", "bench-rendered"}
    # The zips' copy of the package: everything but devtools/ (and what --help does not read).
    shutil.copytree(PACKAGE, tmp_path / "smplx_capture_addon",
                    ignore=shutil.ignore_patterns("devtools", "docs", "data", "__pycache__"))  # fmt: skip
    assert listed_commands(tmp_path) == runtime
