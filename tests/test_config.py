"""The configuration is validated before any job runs; errors name the key and what is wrong."""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from workflow_utils import ROOT, make_working_copy, run_snakemake

from mmlego.config import ConfigError, check_config, drop_null_modalities
from mmlego.models.encoders import BLOCK_ENCODERS
from mmlego.pipeline.config import merge, validate_config

SCHEMA = str(ROOT / "config" / "schemas" / "config.schema.yaml")


@pytest.fixture
def config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def validation_error(cfg: dict) -> str:
    with pytest.raises(WorkflowError) as info:
        validate(cfg, SCHEMA)
    return str(info.value)


def test_default_config_is_valid(config):
    validate(copy.deepcopy(config), SCHEMA)
    check_config(config)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("training", "epochs"), "ten", r"'ten' is not of type 'integer'"),
        (("training", "lr"), -1.0, r"-1\.0 is less than or equal to the minimum"),
        (("splits", "k"), 1, r"1 is less than the minimum of 2"),
        (("merge", "latent"), "median", r"'median' is not one of"),
        (("task",), "regression", r"'regression' is not one of"),
        (("cohort",), "my cohort/1", r"does not match"),
        (("modalities", "wsi", "type"), "image", r"'image' is not one of"),
        (("wsi", "tissue", "preset"), "fat", r"'fat' is not one of"),
        (("wsi", "encoder_options", "precision"), "fp8", r"'fp8' is not one of"),
        (("wsi", "num_workers"), -1, r"-1 is less than the minimum of 0"),
        (("wsi", "fail_fast"), "yes", r"'yes' is not of type 'boolean'"),
    ],
)
def test_wrong_values_name_the_key(config, path, value, expected):
    cfg = copy.deepcopy(config)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    message = validation_error(cfg)
    assert re.search(expected, message), message
    assert path[-1] in message


def test_unknown_keys_are_rejected(config):
    cfg = copy.deepcopy(config)
    cfg["trainig"] = {"epochs": 3}  # a typo must not be silently ignored
    assert "trainig" in validation_error(cfg)
    cfg = copy.deepcopy(config)
    cfg["model"]["latent_chanels"] = 8
    assert "latent_chanels" in validation_error(cfg)


def test_encoder_options_are_checked_by_kind(config):
    cfg = copy.deepcopy(config)
    cfg["modalities"]["wsi"]["encoder"]["mean_tokn"] = True  # a typo is rejected by name
    assert "mean_tokn" in validation_error(cfg)
    cfg = copy.deepcopy(config)
    cfg["modalities"]["rnaseq"]["encoder"]["attn_dim"] = 8  # an abmil option, not an snn one
    assert "attn_dim" in validation_error(cfg)
    cfg = copy.deepcopy(config)
    cfg["modalities"]["wsi"]["encoder"]["token_dim"] = 0
    assert "0 is less than the minimum of 1" in validation_error(cfg)
    cfg = copy.deepcopy(config)
    cfg["modalities"]["wsi"]["encoder"]["mean_tokn"] = True
    with pytest.raises(
        ConfigError, match=r"modalities\.wsi\.encoder: unknown key\(s\) \['mean_tokn'\]"
    ):
        validate_config(cfg)


def encoder_options(kind: str) -> dict:
    """The keyword options of an encoder kind and their defaults (the class's own)."""
    params = inspect.signature(BLOCK_ENCODERS[kind]).parameters
    return {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY}


def test_the_schema_names_each_encoders_own_options_and_defaults():
    encoder = yaml.safe_load(Path(SCHEMA).read_text())["$defs"]["encoder"]
    covered = []
    for case in encoder["allOf"]:
        condition = case["if"]["properties"]["kind"]
        for kind in condition.get("enum", [condition.get("const")]):
            options = {k: v for k, v in case["then"]["properties"].items() if k != "kind"}
            defaults = {k: v.get("default", inspect.Parameter.empty) for k, v in options.items()}
            assert defaults == encoder_options(kind), kind
            covered.append(kind)
    assert sorted(covered) == sorted(encoder["properties"]["kind"]["enum"])  # each kind once


@pytest.mark.parametrize("name", ["wsi", "he_slides"])
def test_an_encoder_gets_the_same_defaults_whatever_its_modality_is_called(config, name):
    """The options a cohort config leaves out come from the schema, not from a modality of
    the same name in config/config.yaml."""
    slides = {"type": "slides", "encoder": {"kind": "abmil", "dropout": 0.3}}
    clinical = {"type": "table", "encoder": {"kind": "mlp"}}
    cohort = {"modalities": {"wsi": None, name: slides, "clinical": clinical}}
    cfg = merge(config, cohort)  # as Snakemake merges a --configfile over config.yaml
    drop_null_modalities(cfg)
    validate(cfg, SCHEMA)
    mods = cfg["modalities"]
    assert mods[name]["encoder"] == {"kind": "abmil", **encoder_options("abmil"), "dropout": 0.3}
    assert mods["clinical"]["encoder"] == {"kind": "mlp", **encoder_options("mlp")}
    assert mods["rnaseq"]["encoder"] == {"kind": "snn", **encoder_options("snn")}
    assert mods[name]["encoder"]["token_dim"] == mods["rnaseq"]["encoder"]["token_dim"]


def test_the_encoder_defaults_in_the_config_readme_are_the_encoders_own():
    row = next(
        line
        for line in (ROOT / "config" / "README.md").open()
        if line.startswith("| `encoder.*` |")
    )
    for kind in ("abmil", "snn", "mlp"):
        text = row.split(f"`{kind}`: ", 1)[1].split(". `", 1)[0]
        documented = {k: yaml.safe_load(v) for k, v in re.findall(r"`(\w+)` \(([^):]+)", text)}
        assert documented == encoder_options(kind), kind


def test_cross_key_checks(config):
    cfg = copy.deepcopy(config)
    cfg["modalities"]["wsi"]["encoder"]["kind"] = "snn"
    with pytest.raises(ConfigError, match=r"modalities\.wsi\.encoder\.kind"):
        check_config(cfg)
    cfg = copy.deepcopy(config)
    cfg["modalities"]["proteomics"] = {"type": "table", "encoder": {"kind": "snn"}}
    with pytest.raises(ConfigError, match="proteomics"):
        check_config(cfg)
    cfg = copy.deepcopy(config)
    cfg["cohort"] = "mine"
    cfg["inputs"] = {"patients": "p.tsv", "slides": "s.tsv", "tables": {"rna": "r.tsv"}}
    cfg["inputs"]["tables"]["cnv"] = "c.tsv"
    with pytest.raises(
        ConfigError,
        match=r"inputs\.tables\.rnaseq: required .*; inputs\.tables has \['rna'\], which no",
    ):
        check_config(cfg)
    cfg = copy.deepcopy(config)
    cfg["modalities"] = {"rnaseq": cfg["modalities"]["rnaseq"]}
    with pytest.raises(ConfigError, match=r"modalities: .* 2 or more .* only \['rnaseq'\]"):
        check_config(cfg)


def test_wsi_options_are_checked(config, tmp_path):
    cfg = copy.deepcopy(config)
    cfg["wsi"]["tissue"] = {"preset": "fatty", "min_saturation": 8, "close_um": 20.0}
    cfg["wsi"]["encoder_options"] = {"weights": "/models/resnet50.pth", "device": "cpu"}
    validate(cfg, SCHEMA)
    cfg["wsi"]["tissue"]["min_sat"] = 8  # a typo of an override is rejected by name
    assert "min_sat" in validation_error(cfg)
    cfg = copy.deepcopy(config)
    cfg["wsi"]["features_from"] = str(tmp_path)
    with pytest.raises(ConfigError, match=r"wsi\.features_from: the synthetic demo cohort"):
        check_config(cfg)


def test_bad_config_stops_the_workflow_before_any_job(tmp_path: Path):
    work = make_working_copy(tmp_path)
    (work / "bad.yaml").write_text("training:\n  epochs: ten\n")
    proc = run_snakemake("--cores", "1", "--configfile", "bad.yaml", cwd=work, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "epochs" in out and "'ten' is not of type 'integer'" in out
    assert not (work / "results").exists()  # nothing ran


def test_rules_run_no_shell_commands():
    """Sample names and config strings never reach a shell: every rule runs a Python script."""
    for smk in [*(ROOT / "rules").glob("*.smk"), *(ROOT / "workflow").iterdir()]:
        text = smk.read_text()
        assert not re.search(r"^\s+(shell|run):", text, flags=re.M), smk
    for py in (ROOT / "mmlego").rglob("*.py"):
        assert "shell=True" not in py.read_text(), py
