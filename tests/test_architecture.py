"""The layering contract and code rules that keep Ferryman's shape.

backends/ never imports Textual or tui/; tui/ never imports docker, kr8s or
kubernetes (import-linter contracts in pyproject.toml). External commands are
argument lists: no shell=True, no os.system anywhere in the product.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def _product_files():
    for package in ("backends", "tui"):
        yield from (ROOT / package).rglob("*.py")


def test_no_shell_strings_in_the_product():
    offenders = []
    for path in _product_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                       for k in node.keywords):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} shell=")
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in ("system", "popen") and \
                        isinstance(func.value, ast.Name) and func.value.id == "os":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} os.{func.attr}")
    assert offenders == []


def test_direct_imports_double_check():
    """A plain AST scan as well, so the rule holds even if import-linter is misconfigured."""
    rules = {"backends": {"textual", "tui", "rich"}, "tui": {"docker", "kr8s", "kubernetes"}}
    offenders = []
    for package, forbidden in rules.items():
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                offenders += [f"{path.relative_to(ROOT)} imports {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []
