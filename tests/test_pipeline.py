"""The workflow's single source of names: model registry, output paths, fold roles, code version."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mmlego.pipeline import MODELS, Fold, Paths, model_names, spec_of
from mmlego.pipeline.code import code_version, module_closure
from mmlego.pipeline.fold import DEVELOPMENT_ROLES, FIT_ROLES, ROLES, patients_in
from mmlego.pipeline.models import ORACLE_MODEL, gpu_rules, is_lego, model_for

ROOT = Path(__file__).resolve().parents[1]


def rule_names() -> set[str]:
    text = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    return set(re.findall(r"^\s*rule (\w+)\s*:", text, flags=re.M))


def test_every_registered_model_has_a_rule_and_a_unique_name():
    names = [s.name for s in MODELS]
    assert len(names) == len(set(names))
    assert {s.rule for s in MODELS} <= rule_names()
    for spec in MODELS:
        assert set(spec.cost_rules) <= rule_names(), spec.name


def test_model_names_follow_the_configuration():
    names = model_names(task="survival", modalities=["wsi", "cnv"], experiments={})
    assert names[:2] == ["block_cnv", "block_wsi"]
    assert "coxnet" in names and "rsf" in names and "logistic_enet" not in names
    assert not any(spec_of(n)[0].experiment for n in names)
    names = model_names(
        task="classification",
        modalities=["rna"],
        experiments={"paired_budget": [0, 50], "disjoint": True},
    )
    assert "logistic_enet" in names and "random_forest" in names and "coxnet" not in names
    assert {"lego_fuse_paired0", "lego_fuse_paired50", "disjoint_block_rna"} <= set(names)


def test_spec_lookup_of_concrete_names_and_templates():
    assert spec_of("block_rnaseq") == (spec_of("block_{modality}")[0], {"modality": "rnaseq"})
    assert spec_of("lego_fuse_paired25")[1] == {"pct": "25"}
    assert is_lego("lego_merge") and is_lego("disjoint_lego_fuse") and not is_lego("block_wsi")
    assert not is_lego(ORACLE_MODEL)
    assert model_for("linear_baseline", "survival") == "coxnet"
    with pytest.raises(KeyError, match="unknown model"):
        spec_of("nonsense")


def test_paths_build_and_parse_each_other():
    paths = Paths.for_cohort("demo")
    p = paths.predictions("lego_fuse", 3)
    assert p == "results/demo/predictions/lego_fuse/fold3.tsv"
    assert Paths.parse_predictions(p) == ("lego_fuse", 3)
    assert paths.predictions("lego_fuse") == "results/demo/predictions/lego_fuse/fold{fold}.tsv"
    assert paths.model_file("block_wsi", 0) == "results/demo/blocks/wsi/fold0.pt"
    assert paths.model_file("block_{modality}") == "results/demo/blocks/{modality}/fold{fold}.pt"
    assert paths.history("lego_fuse_paired10", 1).endswith(
        "experiments/budget/paired10/fold1.history.tsv"
    )
    assert paths.parse_model_file(paths.history("block_cnv", 2), "block_cnv") == 2
    assert paths.parse_benchmark(paths.benchmark("train_block", "wsi_fold0")) == "train_block"
    assert paths.parse_benchmark(paths.benchmark("evaluate")) == "evaluate"
    with pytest.raises(ValueError):
        Paths.parse_predictions("results/demo/blocks/wsi/fold0.pt")
    with pytest.raises(KeyError, match="no training history"):
        paths.history("lego_merge", 0)


def test_fold_roles_have_one_meaning_each(tmp_path):
    split = pd.DataFrame(
        {"patient_id": ["a", "b", "c", "d"], "role": ["train", "tune", "val", "train"]}
    )
    split.to_csv(tmp_path / "s.tsv", sep="\t", index=False)
    pd.DataFrame({"patient_id": list("abcd"), "time": [1, 2, 3, 4], "event": [1, 0, 1, 0]}).to_csv(
        tmp_path / "p.tsv", sep="\t", index=False
    )
    fold = Fold.read(split=str(tmp_path / "s.tsv"), patients=str(tmp_path / "p.tsv"), index=0)
    assert fold.ids("train") == ["a", "d"] and fold.ids("val") == ["c"]
    assert fold.ids_in(FIT_ROLES) == ["a", "d"]
    assert fold.ids_in(DEVELOPMENT_ROLES) == ["a", "b", "d"]
    assert set(ROLES) == {"train", "tune", "val"}
    assert list(patients_in(split, ["val"])) == ["c"]
    split.assign(role=["train", "test", "val", "train"]).to_csv(
        tmp_path / "bad.tsv", sep="\t", index=False
    )
    with pytest.raises(ValueError, match=r"bad\.tsv: unknown role"):
        Fold.read(split=str(tmp_path / "bad.tsv"), patients=str(tmp_path / "p.tsv"), index=0)


def test_pipeline_layer_does_not_import_torch():
    for f in (ROOT / "mmlego" / "pipeline").glob("*.py"):
        assert "torch" not in f.read_text(), f"{f.name} mentions torch"


def test_code_version_follows_the_modules_a_script_imports(tmp_path, monkeypatch):
    closure = {p.name for p in module_closure((ROOT / "scripts" / "train_block.py").resolve())}
    assert {"lego_block.py", "loop.py", "fold.py"} <= closure
    assert "html.py" not in closure  # the report is not part of training
    v1 = code_version(ROOT / "scripts" / "train_block.py")
    assert v1 == code_version(ROOT / "scripts" / "train_block.py")
    assert v1 != code_version(ROOT / "scripts" / "evaluate.py")


def test_cluster_profile_gives_every_gpu_model_rule_a_gpu():
    profile = yaml.safe_load((ROOT / "cluster" / "config.yaml").read_text())
    resources = profile["set-resources"]
    assert set(resources) <= rule_names(), set(resources) - rule_names()
    for rule in gpu_rules():
        assert resources.get(rule, {}).get("gpu") == 1, f"{rule}: no GPU in cluster/config.yaml"
    cpu_only = {s.rule for s in MODELS if not s.gpu} - gpu_rules()
    for rule in cpu_only:
        assert "gpu" not in resources.get(rule, {}), f"{rule}: CPU model rule asks for a GPU"


def test_load_config_merges_validates_fills_defaults_and_freezes(tmp_path):
    from mmlego.config import ConfigError
    from mmlego.pipeline.config import load_config, schema_defaults

    user = tmp_path / "user.yaml"
    user.write_text("training: {lr: 0.01}\nmodalities: {wsi: null}\n")
    config = load_config(user, {"baselines": {"l1_ratio": 0.9}})
    assert config["training"]["lr"] == 0.01 and config.modalities == ["cnv", "rnaseq"]
    assert config["baselines"]["n_alphas"] == schema_defaults("baselines")["n_alphas"]
    assert config["baselines"]["l1_ratio"] == 0.9
    assert config["inputs"]["missing_slides"] == "error"  # an optional key, from the schema
    with pytest.raises(TypeError):
        config["training"]["lr"] = 1.0  # read-only
    with pytest.raises(ConfigError, match=r"training\.lr: -1"):
        load_config({"training": {"lr": -1}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['trees'\]"):
        load_config({"baselines": {"trees": 3}})


def test_settings_dataclasses_take_their_defaults_and_checks_from_the_schema():
    from mmlego.config import ConfigError
    from mmlego.omics.preprocess import OmicsParams
    from mmlego.pipeline.config import schema_defaults
    from mmlego.training.baselines import BaselineParams

    assert BaselineParams() == BaselineParams(**schema_defaults("baselines"))
    assert OmicsParams() == OmicsParams(**schema_defaults("$defs", "preprocess"))
    with pytest.raises(ConfigError, match=r"baselines\.l1_ratio"):
        BaselineParams(l1_ratio=2.0)
    with pytest.raises(ConfigError, match=r"preprocess\.clip"):
        OmicsParams(clip=-1.0)


def test_the_model_section_of_the_schema_is_legoblocks_keyword_arguments():
    import inspect

    from mmlego.models import LegoBlock
    from mmlego.pipeline.config import schema

    keys = set(schema()["properties"]["model"]["properties"])
    params = inspect.signature(LegoBlock).parameters
    assert keys <= {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
