"""The package layout is the pipeline (README, "Architecture"): each package imports only the
packages before it, only kasf/cli parses arguments, and no module or function outgrows its room."""

import ast
from pathlib import Path

import kasf

ROOT = Path(kasf.__file__).parent
# The pipeline's order; packages of one level do not import each other.
LEVELS = {"keypoints": 0, "model": 1, "data": 2, "train": 3, "export": 4, "engines": 5, "verify": 6, "bench": 7,
          "stream": 7, "serve": 8, "lift": 8, "optimize": 8, "demo": 9, "cli": 10}
SHARED = {"errors", "files", "hardware", "table"}     # kasf/*.py: any stage may use them; they import no stage
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def modules():
    return sorted(ROOT.rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """The top-level kasf packages a module imports (relative and absolute imports, lazy ones too)."""
    package = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]   # ("kasf", "engines", ...)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            names = [alias.name for alias in node.names] if len(target) == 1 and target[0] == "kasf" else []
            found |= {t for t in ([target[1]] if len(target) > 1 and target[0] == "kasf" else names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("kasf.")}
    return found


def test_each_package_imports_only_earlier_ones():
    wrong = []
    for path in modules():
        parts = path.relative_to(ROOT).parts
        if len(parts) == 1:
            if parts[0].removesuffix(".py") in SHARED and imported_packages(path) - SHARED:
                wrong.append(f"{path.name} imports {sorted(imported_packages(path) - SHARED)}")
            continue
        mine = parts[0]
        for other in imported_packages(path) - SHARED - {mine, "__version__"}:
            if other not in LEVELS or LEVELS[other] >= LEVELS[mine]:
                wrong.append(f"{path.relative_to(ROOT)} ({mine}) imports {other}")
    assert not wrong, "imports against the pipeline's direction:\n" + "\n".join(wrong)


def test_only_the_cli_parses_arguments():
    parsing = [str(path.relative_to(ROOT)) for path in modules() if "argparse" in path.read_text()]
    assert parsing and all(name.startswith("cli/") for name in parsing), parsing


def test_no_module_or_function_outgrows_its_room():
    too_long = []
    for path in modules():
        text = path.read_text()
        if text.count("\n") + 1 > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10)) + 1} lines")
        for node in ast.walk(ast.parse(text)):
            argument_table = node_is_argument_table(node)
            if isinstance(node, ast.FunctionDef) and not argument_table:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, "\n".join(too_long)


def node_is_argument_table(node) -> bool:
    """add_arguments and add_*_arguments hold argument tables, exempt from the function limit."""
    return isinstance(node, ast.FunctionDef) and node.name.startswith("add_") and node.name.endswith("arguments")
