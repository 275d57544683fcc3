"""Safety: static checks of the code that can fail, and the configuration
checked before any job.

- every ``torch.load`` passes ``weights_only=True``;
- nothing unpickles: no ``pickle``/``joblib``/``dill``/``cloudpickle``/``pd.read_pickle``, and
  every ``np.load`` leaves ``allow_pickle`` off;
- no shell: the rules run Python scripts only (no ``shell:``/``run:`` directives), and the code
  never starts a process through a shell (``shell=True``, ``os.system``, ``os.popen``) or with a
  command built as one string;
- the schema and the cross-key checks run at parse time, before the DAG is built.

Each check is shown to catch an offender written for the purpose (the ``*_catches`` tests), so
that a check that silently matches nothing cannot pass.
"""

from __future__ import annotations

import ast
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from workflow_utils import ROOT, make_working_copy, run_snakemake

PYTHON_DIRS = ("mmlego", "scripts", "workflow")
SNAKE_FILES = [*sorted((ROOT / "rules").glob("*.smk")), ROOT / "workflow" / "Snakefile"]
UNPICKLERS = {"pickle", "cPickle", "_pickle", "joblib", "dill", "cloudpickle", "shelve", "marshal"}


def python_files() -> list[Path]:
    files = [p for d in PYTHON_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50, files  # the scan sees the code
    return files


def dotted(node: ast.AST) -> str:
    """``torch.load`` for the call target ``torch.load``; '' for anything not a plain name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_loads(source: str) -> list[str]:
    """Calls and imports that could unpickle data."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                modules.append(node.module or "")
                if node.module == "torch" and any(a.name == "load" for a in node.names):
                    found.append(f"line {node.lineno}: from torch import load")
            found += [
                f"line {node.lineno}: import {m}" for m in modules if m.split(".")[0] in UNPICKLERS
            ]
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            if name in ("torch.load", "torch.serialization.load"):
                if not is_true(keyword(node, "weights_only")):
                    found.append(f"line {node.lineno}: {name} without weights_only=True")
            elif name in ("np.load", "numpy.load"):
                allow = keyword(node, "allow_pickle")
                if allow is not None and not (
                    isinstance(allow, ast.Constant) and allow.value is False
                ):
                    found.append(f"line {node.lineno}: {name} with allow_pickle")
            elif name.endswith(("read_pickle", "to_pickle")) or name.split(".")[0] in UNPICKLERS:
                found.append(f"line {node.lineno}: {name}")
    return found


def shell_commands(source: str) -> list[str]:
    """Processes started through a shell, or with a command given as one (built) string."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        if name in ("os.system", "os.popen", "os.spawnl", "os.spawnlp", "commands.getoutput"):
            found.append(f"line {node.lineno}: {name}")
        elif name.startswith("subprocess.") or name in ("Popen", "check_output", "check_call"):
            if is_true(keyword(node, "shell")):
                found.append(f"line {node.lineno}: {name}(shell=True)")
            args = node.args[0] if node.args else keyword(node, "args")
            if isinstance(args, ast.Constant | ast.JoinedStr | ast.BinOp) or (
                isinstance(args, ast.Call)
                and isinstance(args.func, ast.Attribute)
                and args.func.attr in ("format", "join")
            ):
                found.append(f"line {node.lineno}: {name} with a command string")
    return found


def test_no_unpickling_anywhere():
    offenders = {
        str(p.relative_to(ROOT)): found
        for p in python_files()
        if (found := unsafe_loads(p.read_text()))
    }
    assert not offenders, offenders


def test_torch_load_is_used_and_always_weights_only():
    """The checkpoints (mmlego.models.checkpoint) and user weights are read with torch.load:
    the scan must see those calls."""
    calls = [
        (p, node)
        for p in python_files()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Call) and dotted(node.func) == "torch.load"
    ]
    files = {p.relative_to(ROOT).as_posix() for p, _ in calls}
    assert "mmlego/models/checkpoint.py" in files, files
    assert all(is_true(keyword(node, "weights_only")) for _, node in calls)


@pytest.mark.parametrize(
    "source",
    [
        "import pickle",
        "from joblib import load",
        "import torch\ntorch.load(path)",
        "import torch\ntorch.load(path, weights_only=False)",
        "from torch import load",
        "import numpy as np\nnp.load(path, allow_pickle=True)",
        "import pandas as pd\npd.read_pickle(path)",
    ],
    ids=["pickle", "joblib", "torch_load", "weights_only_false", "from_torch", "np_pickle", "pd"],
)
def test_the_unpickling_scan_catches(source):
    assert unsafe_loads(source), source


def test_the_unpickling_scan_passes_safe_loads():
    safe = "np.load(p, allow_pickle=False)\nnp.load(p)\ntorch.load(p, weights_only=True)"
    assert unsafe_loads(safe) == []


def test_no_shell_commands_in_the_code():
    offenders = {
        str(p.relative_to(ROOT)): found
        for p in python_files()
        if (found := shell_commands(p.read_text()))
    }
    assert not offenders, offenders


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.system('ls ' + name)",
        "import subprocess\nsubprocess.run(cmd, shell=True)",
        "import subprocess\nsubprocess.run(f'snakemake {target}')",
        "import subprocess\nsubprocess.check_output(' '.join(args))",
    ],
    ids=["os_system", "shell_true", "f_string", "joined"],
)
def test_the_shell_scan_catches(source):
    assert shell_commands(source), source


def test_the_shell_scan_passes_argument_lists():
    assert shell_commands("subprocess.run(['git', *args], cwd=d, check=False)") == []


def rule_directives(text: str) -> dict[str, set[str]]:
    """Rule name -> the names of the directives (and other ``name:`` lines) of its body."""
    parts = re.split(r"^\s*rule (\w+):", text, flags=re.M)
    return {
        name: set(re.findall(r"^\s+(\w+):", body, flags=re.M))
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def test_rules_run_python_scripts_only():
    """Every rule runs a Python script (``script:``) or only gathers inputs: no ``shell:``,
    ``run:``, ``wrapper:`` or ``notebook:`` (a sample name or config string could reach a
    shell), and no ``os.system``/``subprocess`` in the Snakemake files themselves."""
    rules = {}
    for smk in SNAKE_FILES:
        text = smk.read_text()
        assert not re.search(r"^\s+(shell|run|wrapper|notebook)\s*:", text, flags=re.M), smk
        assert not re.search(r"\b(os\.system|os\.popen|subprocess)\b", text), smk
        rules |= rule_directives(text)
    assert len(rules) >= 20, sorted(rules)
    odd = {
        name: sorted(found)
        for name, found in rules.items()
        if "script" not in found and not found <= {"input", "default_target"}
    }
    assert not odd, odd
    assert "script" in rules["train_block"] and "script" in rules["wsi_shard"]


def test_the_rule_scan_sees_directives():
    text = "rule a:\n    input:\n        'x'\n    shell:\n        'cat {input}'\n"
    assert rule_directives(text) == {"a": {"input", "shell"}}


def test_config_is_checked_at_parse_time_before_any_rule():
    """Statically: the Snakefile validates the config against the schema before it includes
    the rules, and rules/common.smk (the first include) runs ``check_config`` at top level."""
    snakefile = (ROOT / "workflow" / "Snakefile").read_text()
    validate_at = snakefile.index('validate(config, "../config/schemas/config.schema.yaml")')
    assert validate_at < snakefile.index("include:") < snakefile.index("rule ")
    assert snakefile.index("include:") == snakefile.index('include: "../rules/common.smk"')
    common = (ROOT / "rules" / "common.smk").read_text()
    assert re.search(r"^check_config\(config\)$", common, flags=re.M)
    assert common.index("check_config(config)") < common.index("def ")


# bad config -> parts of Snakemake's output (the schema's message, or check_config's)
PARSE_TIME = {
    "schema": ({"model": {"latent_chanels": 8}}, ["'latent_chanels' was unexpected", "['model']"]),
    "check_config": (
        {"cohort": "mine", "inputs": {"patients": "absent.tsv", "slides": "absent.tsv"}},
        ["ConfigError", "inputs.tables.rnaseq: required by table modality 'rnaseq'"],
    ),
}


@pytest.fixture(scope="module")
def parse_time_runs(tmp_path_factory) -> dict[str, tuple[int, str, Path]]:
    tmp = tmp_path_factory.mktemp("safety_wf")

    def dry_run(name: str) -> tuple[int, str, Path]:
        work = make_working_copy(tmp / name)
        (work / "bad.yaml").write_text(yaml.safe_dump(PARSE_TIME[name][0]))
        proc = run_snakemake(
            "-n", "--cores", "1", "--configfile", "bad.yaml", cwd=work, check=False
        )
        return proc.returncode, proc.stdout + proc.stderr, work

    with ThreadPoolExecutor(max_workers=len(PARSE_TIME)) as pool:
        return dict(zip(PARSE_TIME, pool.map(dry_run, PARSE_TIME), strict=True))


@pytest.mark.parametrize("case", sorted(PARSE_TIME))
def test_a_bad_config_fails_the_dry_run_before_the_dag(parse_time_runs, case):
    returncode, output, work = parse_time_runs[case]
    assert returncode != 0, output
    for part in PARSE_TIME[case][1]:
        assert part in output, output
    assert "Building DAG of jobs" not in output and not (work / "results").exists(), output
