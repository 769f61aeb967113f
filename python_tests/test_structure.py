"""The layout rules of docs/ARCHITECTURE.md, checked on the source (read as text and parsed with ast, not
imported): every stage has the stage contract, stages meet only through RunFolder and each other's public
names, the run folder's paths are spelled in runfolder.py alone, imports stand at module top, functions stay
short, and what the code cites exists."""
import ast
import importlib
import re
import sys
from dataclasses import is_dataclass
from pathlib import Path

import pytest

import morphbias_fast

PACKAGE = Path(morphbias_fast.__file__).parent
ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests live in: docs/, csrc/ (not installed)
STAGES = ("classify", "register", "discover", "mitigate", "unbiased", "report")
MODULES = sorted(PACKAGE.rglob("*.py"))
# Files of a run folder (runfolder.py's names). A string constant equal to one of them, or ending in
# "/" + one of them, spells a run-folder path. (register's atlas_T1w.nii.gz is left out: a cohort's atlas has
# the same name, and the cohort's layout belongs to data/cohort.py.)
RUN_FILES = {"predictions.csv", "model.pt", "metrics.json", "augmentations.png", "latents.npz", "train_state.pt",
             "subgroups.csv", "summary.json", "report.html"}
MAX_FUNCTION_LINES = 60


def tree(path):
    return ast.parse(path.read_text(), filename=str(path))


def module_name(path):
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def docstring_nodes(t):
    out = set()
    for node in ast.walk(t):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def test_no_private_names_cross_modules():
    # The one exception: the compiled extension is loaded by name in ops/compiled.py (its name is the build's).
    bad = []
    for path in MODULES:
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("morphbias_fast"):
                for alias in node.names:
                    if alias.name.startswith("_") and (module_name(path), alias.name) != ("morphbias_fast.ops.compiled",
                                                                                         "_C"):
                        bad.append(f"{path.name}: from {node.module} import {alias.name}")
    assert not bad, bad


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_the_contract(stage):
    pkg = importlib.import_module(f"morphbias_fast.{stage}")
    assert is_dataclass(pkg.Config), f"{stage}.Config is not a dataclass"
    assert callable(pkg.run) and list(__import__("inspect").signature(pkg.run).parameters)[:2] == ["run", "cfg"]
    assert callable(getattr(pkg.Result, "summary", None)), f"{stage}.Result has no summary()"
    assert {"Config", "Result", "run"} <= set(pkg.__all__)


def test_stages_meet_only_through_public_names():
    """A module of one stage imports another stage only from its package root, and only names in __all__;
    `from morphbias_fast import stage` then uses only stage.<name in __all__>."""
    bad = []
    for path in MODULES:
        here = module_name(path).split(".")
        aliases = {}
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.ImportFrom) and node.module == "morphbias_fast":
                aliases.update({a.asname or a.name: a.name for a in node.names if a.name in STAGES})
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                stage = aliases[node.value.id]
                if len(here) > 1 and here[1] == stage:
                    continue
                if node.attr not in importlib.import_module(f"morphbias_fast.{stage}").__all__:
                    bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {stage}.{node.attr} is not public")
        for node in ast.walk(tree(path)):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("morphbias_fast.")):
                continue
            target = node.module.split(".")
            if target[1] not in STAGES or (len(here) > 1 and here[1] == target[1]):
                continue
            if len(target) > 2:
                bad.append(f"{path.relative_to(PACKAGE)}: from {node.module} (a stage's internals)")
                continue
            public = importlib.import_module(node.module).__all__
            bad += [f"{path.relative_to(PACKAGE)}: {node.module}.{a.name} is not public" for a in node.names
                    if a.name not in public]
    assert not bad, bad


def test_run_folder_paths_are_spelled_only_in_runfolder():
    """String constants outside runfolder.py (docstrings and --help texts aside, which describe the layout
    to people) never name a run folder's file."""
    bad = []
    for path in MODULES:
        if path.name == "runfolder.py":
            continue
        t = tree(path)
        skip = docstring_nodes(t)
        for node in ast.walk(t):
            if isinstance(node, ast.keyword) and node.arg == "help":
                skip |= {id(n) for n in ast.walk(node.value)}
        for node in ast.walk(t):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                if any(node.value == f or node.value.endswith("/" + f) for f in RUN_FILES):
                    bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert not bad, bad


def test_imports_of_the_package_stand_at_module_top():
    bad = []
    for path in MODULES:
        for fn in ast.walk(tree(path)):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("morphbias_fast"):
                        bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not bad, bad


def test_functions_are_short():
    long = [f"{path.relative_to(PACKAGE)}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)"
            for path in MODULES for fn in ast.walk(tree(path))
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            and fn.end_lineno - fn.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long


def test_no_module_shadows_the_standard_library():
    # e.g. a package module named io.py hides the standard library's io from a script run inside the folder
    clash = [p.relative_to(PACKAGE) for p in MODULES if p.stem in sys.stdlib_module_names]
    assert not clash, clash


CITED = re.compile(r"(?<![\w/.])((?:docs|bench|csrc|morphbias_fast)/[\w./-]+\.(?:md|py|h|cpp|cu)|[A-Z][A-Z_]+\.md)")


def test_every_file_the_code_cites_exists():
    """Paths the code and comments cite (docs/METHOD.md, morphbias_fast/ops/hashgrid.py, ...) resolve from the
    project root; a bare NAME.md must be at the root (README.md) or under docs/ or bench/."""
    files = [*ROOT.joinpath("csrc").rglob("*.[hc]*"), *ROOT.joinpath("cpp_tests").rglob("*.cpp"),
             *ROOT.joinpath("morphbias_fast").rglob("*.py"),
             *(p for p in ROOT.joinpath("python_tests").rglob("*.py") if p.name != Path(__file__).name)]
    missing = []
    for f in files:
        for cited in set(CITED.findall(f.read_text())):
            here = [ROOT / cited] if "/" in cited else [ROOT / cited, ROOT / "docs" / cited, ROOT / "bench" / cited]
            if not any(p.exists() for p in here):
                missing.append(f"{f.relative_to(ROOT)} cites {cited}")
    assert not missing, missing


@pytest.mark.parametrize("name, args", [
    ("hashgrid_fwd", ("x", "params", "dir", "y", "J", "jvp")),
    ("hashgrid_input_grad", ("x", "params", "a", "B", "b", "g", "dL_dx")),
    ("hashgrid_param_grad", ("x", "a", "B", "b", "g", "dL_dparams")),
    ("hashgrid_corner_index", ("x", "index")),
])
def test_kernel_bindings_name_their_arguments(name, args):
    """pybind11 writes the signature into the docstring: with py::arg the names, without it arg0, arg1, ..."""
    from morphbias_fast.ops.compiled import kernels

    doc = getattr(kernels, name).__doc__
    assert "arg0" not in doc
    for a in ("config", "levels", "dtype", "device", "stream", "threads", "n", *args):
        assert f"{a}: " in doc, (name, a)


def test_tests_named_in_the_tests_exist():
    """A comment that sends the reader to another test names one that is there."""
    defined, named = set(), {}
    for path in Path(__file__).parent.glob("test_*.py"):
        text = path.read_text()
        defined |= set(re.findall(r"^def (test_\w+)", text, flags=re.M))
        for m in re.findall(r"(?<!def )(?<![\w.\"'])(test_[a-z]\w+)(?![\w.\"'(])", text):
            named.setdefault(m, path.name)
    modules = {p.stem for p in Path(__file__).parent.glob("test_*.py")}
    missing = {n: f for n, f in named.items() if n not in defined and n not in modules}
    assert not missing, missing
