"""Static checks of the per-stage conda envs (conda channels cannot be reached in CI).

Every rule that runs a script declares a conda env from envs/. An env holds python and pip only;
its post-deploy script installs the ``mmlego`` package with the stage's extra of
pyproject.toml, the one place where versions are pinned. That extra provides every third-party
package the script imports, directly or through the ``mmlego`` modules it imports (followed
transitively with ``ast``). No script or rule edits ``sys.path``: ``mmlego`` is installed.

Why a static check: Snakemake's script preamble appends the *host* interpreter's ``sys.path`` to
the env's, so a package missing from an env may still import from the host's venv in a test run
and only fail on a cluster node without it.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = [*sorted((ROOT / "rules").glob("*.smk")), ROOT / "workflow" / "pancancer.smk"]
ENVS = ROOT / "envs"

# import name -> the conda (or pip) package names that provide it; any one of them will do
PROVIDERS: dict[str, set[str]] = {
    "numpy": {"numpy"},
    "pandas": {"pandas"},
    "scipy": {"scipy"},
    "sklearn": {"scikit-learn"},
    "sksurv": {"scikit-survival"},
    "torch": {"pytorch", "torch", "pytorch-cpu", "pytorch-gpu"},
    "torchvision": {"torchvision"},
    "timm": {"timm"},
    "h5py": {"h5py"},
    "tifffile": {"tifffile"},
    "imagecodecs": {"imagecodecs"},
    "openslide": {"openslide-python"},
    "PIL": {"pillow"},
    "matplotlib": {"matplotlib", "matplotlib-base"},
    "yaml": {"pyyaml"},
    "jsonschema": {"jsonschema"},
}
# imports that need a second package at run time (a shared library the Python binding loads)
ALSO_NEEDS: dict[str, set[str]] = {"openslide": {"openslide-bin", "openslide"}}
NOT_THIRD_PARTY = {"mmlego", "snakemake", "__future__"} | set(sys.stdlib_module_names)


@dataclass(frozen=True)
class Rule:
    """One rule of rules/*.smk: its name, file, conda env and script (paths resolved)."""

    name: str
    smk: Path
    env: Path | None
    script: Path | None


def parse_rules(smk: Path) -> list[Rule]:
    """The rules of one .smk file, with the ``conda:`` and ``script:`` paths of each.

    Parses the snakefmt layout (directive on its own line, the value on the next line or the
    same line); rules may be nested in ``if``/``else`` blocks.
    """
    text = smk.read_text()
    heads = list(re.finditer(r"^(?P<indent>[ \t]*)rule (?P<name>\w+)\s*:", text, flags=re.M))
    rules = []
    for i, head in enumerate(heads):
        block = text[head.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        paths = {}
        for directive in ("conda", "script"):
            m = re.search(rf"^\s*{directive}:\s*(?:\n\s*)?[\"']([^\"']+)[\"']", block, flags=re.M)
            paths[directive] = (smk.parent / m.group(1)).resolve() if m else None
        rules.append(Rule(head.group("name"), smk, paths["conda"], paths["script"]))
    return rules


ALL_RULES = [rule for smk in RULES for rule in parse_rules(smk)]
SCRIPT_RULES = [rule for rule in ALL_RULES if rule.script is not None]


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
INSTALL = re.compile(r"pip install .*--editable \"\.\[(?P<extra>[\w-]+)\]\"")


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")


def extra_packages(extra: str | None) -> dict[str, str]:
    """Package name -> requirement of mmlego's base dependencies plus ``extra`` (extras that
    name ``mmlego[...]`` followed)."""
    out = {_name(r): r for r in PYPROJECT["dependencies"]}
    todo, seen = [extra] if extra else [], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in PYPROJECT["optional-dependencies"]:
            raise KeyError(f"pyproject.toml has no extra {name!r}")
        for req in PYPROJECT["optional-dependencies"][name]:
            if req.startswith("mmlego["):
                todo += req[len("mmlego[") : -1].split(",")
            else:
                out[_name(req)] = req
    return out


def env_extra(env: Path) -> str | None:
    """The mmlego extra that the env's post-deploy script installs (None: no such script)."""
    deploy = env.with_suffix(".post-deploy.sh")
    if not deploy.is_file():
        return None
    m = INSTALL.search(deploy.read_text())
    return m.group("extra") if m else None


def env_packages(env: Path, extra: str | None = None) -> dict[str, str]:
    """Package name (lower case) -> its version spec: the env file's own entries and those of
    the mmlego extra its post-deploy script installs (``extra`` overrides it)."""
    spec = yaml.safe_load(env.read_text())
    entries: list[str] = []
    for dep in spec.get("dependencies", []):
        if isinstance(dep, dict):
            entries.extend(dep.get("pip", []))
        else:
            entries.append(dep)
    packages = {}
    for entry in entries:
        m = re.match(r"^(?:[\w.-]+::)?([A-Za-z0-9_.-]+)\s*(.*)$", str(entry).strip())
        if m is None:
            raise ValueError(f"{env.name}: cannot parse dependency {entry!r}")
        packages[m.group(1).lower().replace("_", "-")] = m.group(2).strip()
    extra = extra or env_extra(env)
    if extra:
        packages |= {"mmlego": ""} | {
            name: req[len(name) :] for name, req in extra_packages(extra).items()
        }
    return packages


def module_file(name: str) -> Path | None:
    """The source file of module ``mmlego.x.y`` in this checkout, or None if it is not one."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


OPTIONAL_GUARDS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _guards_import(handler: ast.ExceptHandler) -> bool:
    """Whether an ``except`` clause catches a failed import (bare, ImportError, Exception...)."""
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(ast.unparse(name).split(".")[-1] in OPTIONAL_GUARDS for name in names)


def _imports(tree: ast.AST, *, module: str, is_package: bool) -> set[str]:
    """Absolute names of every module imported anywhere in ``tree``, except optional imports:
    under ``if TYPE_CHECKING:`` or in a ``try:`` whose ``except`` catches ImportError."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Try) and any(_guards_import(h) for h in node.handlers):
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            # `from pkg import sub` imports the submodule when there is one
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def third_party_imports(script: Path) -> dict[str, str]:
    """Top-level third-party import name -> the file that first imports it, following the
    ``mmlego`` modules the script imports (and their packages' ``__init__``) transitively."""
    needed: dict[str, str] = {}
    todo = [(script, "__main__", False)]
    seen: set[Path] = set()
    while todo:
        path, module, is_package = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        names = _imports(
            ast.parse(path.read_text(), str(path)), module=module, is_package=is_package
        )
        for name in sorted(names):
            top = name.split(".")[0]
            if top == "mmlego":
                parts = name.split(".")
                for n in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                    sub = ".".join(parts[:n])
                    if (file := module_file(sub)) is not None:
                        todo.append((file, sub, file.name == "__init__.py"))
            elif top and top not in NOT_THIRD_PARTY:
                needed.setdefault(top, str(path.relative_to(ROOT)))
    return needed


def test_rules_were_parsed():
    names = {rule.name for rule in ALL_RULES}
    assert {"train_block", "fuse", "wsi_shard", "import_shard", "evaluate"} <= names
    assert len(SCRIPT_RULES) >= 10


@pytest.mark.parametrize("rule", SCRIPT_RULES, ids=lambda r: r.name)
def test_every_rule_with_a_script_uses_a_stage_env(rule):
    assert rule.env is not None, f"rule {rule.name} ({rule.smk.name}) has no conda: env"
    assert rule.env.parent == ENVS.resolve(), f"rule {rule.name}: env {rule.env} not in envs/"
    assert rule.env.is_file(), f"rule {rule.name}: env file {rule.env} does not exist"
    assert rule.script.is_file(), f"rule {rule.name}: script {rule.script} does not exist"


def test_one_env_per_stage_and_every_env_used():
    used = {rule.env.name for rule in SCRIPT_RULES if rule.env}
    assert used == {path.name for path in ENVS.glob("*.yaml")}


@pytest.mark.parametrize("env", sorted(ENVS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_env_is_python_and_pip_plus_its_mmlego_extra(env):
    assert env_extra(env) is not None, f"{env.name}: no post-deploy script installing mmlego"
    spec = yaml.safe_load(env.read_text())
    entries = [d for d in spec["dependencies"] if not isinstance(d, dict)]
    assert entries == ["python=3.11", "pip"], f"{env.name}: pins belong in pyproject.toml"
    assert env_extra(env) == env.stem, f"{env.name}: installs the wrong extra"


def test_every_dependency_is_pinned_once_in_pyproject():
    reqs = list(PYPROJECT["dependencies"]) + [
        r for extra in PYPROJECT["optional-dependencies"].values() for r in extra
    ]
    pinned = [r for r in reqs if not r.startswith("mmlego[")]
    loose = [r for r in pinned if not re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.+-]*", r)]
    assert not loose, f"pyproject.toml: not pinned to one version: {loose}"
    names = [_name(r) for r in pinned]
    assert len(names) == len(set(names)), "a package is pinned more than once in pyproject.toml"


@pytest.mark.parametrize("rule", SCRIPT_RULES, ids=lambda r: r.name)
def test_env_provides_every_import_of_the_rule(rule):
    provided = set(env_packages(rule.env))
    missing = []
    for name, where in sorted(third_party_imports(rule.script).items()):
        if name not in PROVIDERS:
            missing.append(f"{name} (imported by {where}): unknown import, add it to PROVIDERS")
            continue
        for need in (PROVIDERS[name], ALSO_NEEDS.get(name)):
            if need and not need & provided:
                missing.append(f"{name} (imported by {where}) needs one of {sorted(need)}")
    assert not missing, f"rule {rule.name}, env {rule.env.name}:\n  " + "\n  ".join(missing)


def test_no_script_or_rule_edits_sys_path():
    """mmlego is installed in every env (and in the environment that runs snakemake)."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in [*(ROOT / "scripts").glob("*.py"), *RULES, ROOT / "workflow" / "Snakefile"]
        if "sys.path" in p.read_text()
    ]
    assert not offenders, f"sys.path edited in {offenders}"


def test_the_import_scan_follows_mmlego_modules_transitively():
    """The scan must see torch through train_block.py -> mmlego.training -> mmlego.models."""
    imports = third_party_imports(ROOT / "scripts" / "train_block.py")
    assert "torch" in imports and imports["torch"].startswith("mmlego/")
    assert "snakemake" not in imports and "sys" not in imports


def test_the_import_check_fails_for_an_env_without_the_package(tmp_path):
    env = tmp_path / "training.yaml"
    env.write_text("dependencies:\n  - python=3.11\n  - pip\n")
    (tmp_path / "training.post-deploy.sh").write_text('pip install --editable ".[omics]"\n')
    rule = Rule("train_block", RULES[0], env, ROOT / "scripts" / "train_block.py")
    with pytest.raises(AssertionError, match="torch"):
        test_env_provides_every_import_of_the_rule(rule)
