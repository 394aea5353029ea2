"""device_sim is firmware: it may import only the hardware model and the bundle contract from camlab."""
from __future__ import annotations

import ast
from pathlib import Path

ALLOWED = ("camlab.sensor", "camlab.isp", "camlab.contract", "camlab.config", "camlab.errors", "camlab.io_utils")
ROOT = Path(__file__).resolve().parents[2] / "device_sim"


def _camlab_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "camlab"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "camlab":
                found += [(node.lineno, f"camlab.{a.name}") for a in node.names]
            elif node.module.startswith("camlab."):
                found.append((node.lineno, node.module))
    return found


def test_device_sim_imports_only_allowed_camlab_modules():
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) > 20, "device_sim sources not found"
    bad = [f"{p.relative_to(ROOT.parent)}:{line}: {mod}" for p in files for line, mod in _camlab_imports(p)
           if not any(mod == a or mod.startswith(a + ".") for a in ALLOWED)]
    assert not bad, "device_sim imports camlab modules outside the firmware contract:\n" + "\n".join(bad)


def test_scanner_catches_forbidden_forms(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("import camlab.models.detector\nfrom camlab import deploy\nfrom camlab.data.yolo import x\n"
                   "from camlab.contract import manifest\n")
    mods = [m for _, m in _camlab_imports(src)]
    assert mods == ["camlab.models.detector", "camlab.deploy", "camlab.data.yolo", "camlab.contract"]
