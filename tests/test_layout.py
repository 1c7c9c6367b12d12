"""The arrows between the project's packages go one way (README.md, "Layout").

The import graph is read statically from every file, counting imports inside functions too: an
import written inside a function to dodge a cycle is still the cycle.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The packages from the bottom up: each imports only packages below it.
LAYERS = ("difformer_core", "fairseq_difformer", "difformer_cli", "benchmarks", "examples")
#: Console scripts (setup.py's entry points): their modules import the plugin inside main() only.
CONSOLE_MODULES = re.findall(r"=\s*(difformer_cli(?:\.\w+)?):\w+", (REPO / "setup.py").read_text())


def project_modules():
    """{dotted module name: file} for every .py file of the LAYERS packages."""
    modules = {}
    for package in LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_names(module, path, node):
    """The absolute names an Import / ImportFrom node brings in (``from a import b`` gives a.b,
    which is a module or a name inside a)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([base] if base else []))
    return [f"{base}.{alias.name}" for alias in node.names]


def import_graph():
    """(edges between project modules, external top-level packages each module imports)."""
    modules = project_modules()
    edges, external = {}, {}
    for module, path in modules.items():
        edges[module], external[module] = set(), set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in imported_names(module, path, node):
                target = name
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target:
                    if target != module:
                        edges[module].add(target)
                else:
                    external[module].add(name.split(".")[0])
    return edges, external


def strongly_connected_components(edges):
    """Tarjan's algorithm; the components of more than one module are the import cycles."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return components


def package(module):
    return module.split(".")[0]


EDGES, EXTERNAL = import_graph()


def test_the_graph_is_read_from_every_package():
    assert {package(m) for m in EDGES} == set(LAYERS)
    # A function-level import is an edge: the hub's from_pretrained is reached from the model.
    assert "fairseq_difformer.models.hub_interface" in EDGES["fairseq_difformer.models.difformer"]


def test_cycle_detection_finds_a_function_level_cycle():
    """The detector itself, on a graph with a cycle closed by a lazy import."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in strongly_connected_components(edges) if len(c) > 1] == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = [c for c in strongly_connected_components(EDGES) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_packages_import_only_the_packages_below_them():
    upward = sorted(
        f"{m} -> {t}" for m, targets in EDGES.items() for t in targets
        if LAYERS.index(package(t)) > LAYERS.index(package(m))
    )
    assert not upward, f"imports that point up the layers {LAYERS}: {upward}"


def test_the_core_package_imports_no_fairseq():
    offenders = sorted(m for m in EDGES if package(m) == "difformer_core" and EXTERNAL[m] & {"fairseq", "fairseq_cli"})
    assert not offenders


def test_the_hub_imports_neither_the_task_nor_the_generator():
    hub = EDGES["fairseq_difformer.models.hub_interface"]
    assert not {t for t in hub if t.startswith(("fairseq_difformer.tasks", "fairseq_difformer.generator"))}


def test_quantization_imports_no_model():
    assert not {t for t in EDGES["fairseq_difformer.quantization"] if t.startswith("fairseq_difformer.models")}


def test_the_plugin_init_only_registers():
    """fairseq_difformer/__init__.py: the core's registrations (the checkpoint allow-list, the
    error hook and the plugin's explanations of fairseq's errors), then the plugin's
    registries; nothing else is imported."""
    assert EDGES["fairseq_difformer"] == {
        "difformer_core.checkpoints", "difformer_core.errors", "fairseq_difformer.fairseq_errors",
        "fairseq_difformer.criterions",
        "fairseq_difformer.models", "fairseq_difformer.tasks", "fairseq_difformer.tokenizers",
    }


def test_no_file_edits_sys_path():
    offenders = []
    for path in [*project_modules().values(), *sorted((REPO / "tests").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
                offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"sys.path edited in {sorted(set(offenders))}"


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)


BLOCK_FAIRSEQ = """
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("fairseq", "fairseq_cli"):
            raise ImportError(f"{name} is blocked")
sys.meta_path.insert(0, Blocked())
"""


def test_the_core_package_imports_and_works_with_fairseq_blocked():
    core = sorted(m for m in EDGES if package(m) == "difformer_core")
    proc = run_python(BLOCK_FAIRSEQ + "\n".join(f"import {m}" for m in core) + """
import torch
from difformer_core.decoding import DecodingConfig
from difformer_core.diffusion import GaussianDiffusion, build_sampler
from difformer_core.errors import DifformerError
DecodingConfig(steps=5, early_stopping=1).validate(diffusion_steps=2000)
diffusion = GaussianDiffusion.from_schedule("sqrt", 2000, rescaling_factor=4.0).respace(5)
sampler = build_sampler("ddim", diffusion)
z0 = torch.zeros(2, 3, 8)
z_t = diffusion.q_sample(z0, torch.tensor([4, 4]))
print("steps:", sampler.steps)
try:
    DecodingConfig(sampler="euler").validate(2000)
except DifformerError as e:
    print("error:", e)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("fairseq", "fairseq_difformer")))
""")
    assert proc.returncode == 0, proc.stderr
    assert "error: --decoding-sampler 'euler' is not one of" in proc.stdout
    assert "steps: (4, 3, 2, 1, 0)" in proc.stdout
    assert proc.stdout.strip().endswith("[]")


def test_the_check_blocks_fairseq():
    """The blocker above makes importing fairseq fail (else the test before could not fail)."""
    proc = run_python(BLOCK_FAIRSEQ + "import fairseq_difformer")
    assert proc.returncode != 0 and "fairseq is blocked" in proc.stderr


@pytest.mark.parametrize("module", CONSOLE_MODULES)
def test_console_scripts_import_the_plugin_only_in_main(module):
    proc = run_python(f"import sys, {module}\n"
                      "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fairseq', 'fairseq_difformer')))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"{module} imports {proc.stdout.strip()} before main()"


def layout_drawing():
    """The package names of README.md's layout drawing, top to bottom."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    drawing = section.split("```", 2)[1]
    return [name for line in drawing.splitlines() for name in re.findall(r"^\s*([a-z_]+)/", line)]


def test_the_readme_draws_the_layers_in_order():
    drawn = layout_drawing()
    assert sorted(drawn) == sorted(LAYERS), drawn
    # Top to bottom in the drawing is LAYERS from the top down; packages on one line share a layer.
    order = [LAYERS.index(name) for name in drawn]
    assert order == sorted(order, reverse=True), drawn
