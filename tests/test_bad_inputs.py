"""Bad inputs: each gives a clear error that names the file, patient, column or
key and what is wrong; where the workflow is meant to go on (a slide that cannot be used), the
item is skipped and the skip recorded with its reason in the WSI QC table.

One test or parametrised case per bad input, at library level (fast), and the configuration and
slide-sheet cases again at workflow level: a dry run (``snakemake -n``) that stops before any
job with the key or file named.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from PIL import Image
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from workflow_utils import ROOT, make_working_copy, run_snakemake

from mmlego.cohort import CohortError, SplitError, load_cohort, make_folds
from mmlego.cohort.splits import add_tune, cohort_folds
from mmlego.config import ConfigError, check_config
from mmlego.demo.slides import _render, write_aperio_tiff, write_synthetic_slide
from mmlego.omics.preprocess import OmicsParams, fit_transform_fold
from mmlego.pipeline.fold import Fold
from mmlego.training.fold import load_fold_modalities
from mmlego.wsi.bags import qc_table
from mmlego.wsi.features import extract_features
from mmlego.wsi.slide import SlideError
from mmlego.wsi.tiling import tile_slide
from mmlego.wsi.tissue import TissueParams

SCHEMA = str(ROOT / "config" / "schemas" / "config.schema.yaml")
N = 12
IDS = [f"P{i:02d}" for i in range(N)]


# --- cohort sheets ---------------------------------------------------------------------------


def cohort_frames() -> dict[str, pd.DataFrame]:
    """A valid small cohort: 12 patients, an omics table of 10 of them, slides of 4."""
    rng = np.random.default_rng(0)
    patients = pd.DataFrame(
        {
            "patient_id": IDS,
            "time": np.round(rng.uniform(1, 60, N), 2),
            "event": [1, 0] * (N // 2),
            "label": ["a", "b", "b"] * (N // 3),
        }
    )
    rnaseq = pd.DataFrame(rng.normal(size=(N - 2, 4)), columns=[f"G{j}" for j in range(4)])
    rnaseq.insert(0, "patient_id", IDS[: N - 2])
    slides = pd.DataFrame(
        {
            "patient_id": IDS[:4],
            "slide_id": [f"{p}-S1" for p in IDS[:4]],
            "path": [f"slides/{p}.tiff" for p in IDS[:4]],
            "mpp": [0.5, None, None, None],
        }
    )
    return {"patients": patients, "rnaseq": rnaseq, "slides": slides}


FILES = {"patients": "patients.tsv", "rnaseq": "omics/rnaseq.tsv", "slides": "slides.tsv"}


def write_cohort(folder: Path, frames: dict[str, pd.DataFrame]) -> dict[str, Path]:
    paths = {}
    for key, df in frames.items():
        paths[key] = folder / FILES[key]
        paths[key].parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(paths[key], sep="\t", index=False)
    return paths


def load(paths: dict[str, Path], **options):
    return load_cohort(
        patients=paths["patients"],
        slides=paths["slides"],
        omics={"rnaseq": paths["rnaseq"]},
        **options,
    )


def _set(row: int, column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df = df.astype({column: object})
        df.loc[row, column] = value
        return df

    return edit


def _repeat(row: int, **changes) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        extra = df.iloc[[row]].copy()
        for column, value in changes.items():
            extra[column] = value
        return pd.concat([df, extra], ignore_index=True)

    return edit


# bad input -> (sheet, edit, parts the message must contain besides the file's path)
SHEET_CASES = {
    "duplicate_patient_id": (
        "patients",
        _repeat(3),
        ["1 patient_id(s) appear on more than one row", "'P03'", "identical rows"],
    ),
    "conflicting_outcomes": (
        "patients",
        _repeat(3, time=99.0, event=1),
        ["'P03'", "conflicting outcomes (time, event, label)"],
    ),
    "negative_time": (
        "patients",
        _set(4, "time", -2.5),
        ["'time'", "finite number > 0", "P04=-2.5"],
    ),
    "zero_time": ("patients", _set(4, "time", 0), ["'time'", "> 0", "P04=0"]),
    "nan_time": ("patients", _set(5, "time", np.nan), ["'time'", "finite number", "P05=empty"]),
    "inf_time": ("patients", _set(5, "time", np.inf), ["'time'", "finite number", "P05=inf"]),
    "event_2": ("patients", _set(6, "event", 2), ["'event'", "0 (censored) or 1", "P06=2"]),
    "event_negative": (
        "patients",
        _set(6, "event", -1),
        ["'event'", "0 (censored) or 1", "P06=-1"],
    ),
    "event_missing": ("patients", _set(6, "event", np.nan), ["'event'", "P06=empty"]),
    "event_text": ("patients", _set(6, "event", "dead"), ["'event'", "non-numeric", "P06='dead'"]),
    "nan_feature": (
        "rnaseq",
        _set(2, "G1", np.nan),
        ["'rnaseq'", "missing (empty or NaN)", "column 'G1'", "'P02'", "allow_missing_features"],
    ),
    "inf_feature": ("rnaseq", _set(1, "G2", np.inf), ["infinite", "column 'G2'", "'P01'"]),
    "minus_inf_feature": ("rnaseq", _set(1, "G3", -np.inf), ["infinite", "'G3'", "'P01'"]),
    "text_feature": ("rnaseq", _set(1, "G0", "high"), ["'G0'", "non-numeric", "P01='high'"]),
    "table_patient_not_in_sheet": (
        "rnaseq",
        _repeat(0, patient_id="P99"),
        ["1 patient_id(s) in the omics table 'rnaseq' are not in the patient sheet", "'P99'"],
    ),
    "slide_patient_not_in_sheet": (
        "slides",
        _repeat(0, patient_id="P98", slide_id="P98-S1"),
        ["1 patient_id(s) in the slide sheet are not in the patient sheet", "'P98'"],
    ),
    "unsafe_patient_id": (
        "patients",
        _set(0, "patient_id", "../P00"),
        ["'patient_id'", "characters other than letters, digits", "'../P00'"],
    ),
    "unsafe_patient_id_space": (
        "patients",
        _set(0, "patient_id", "P 00"),
        ["'patient_id'", "ids become file names", "'P 00'"],
    ),
    "unsafe_slide_id": (
        "slides",
        _set(1, "slide_id", "P01/S1"),
        ["'slide_id'", "characters other than letters, digits", "'P01/S1'"],
    ),
    "duplicate_slide_id": (
        "slides",
        _set(1, "slide_id", "P00-S1"),
        ["slide_id must be unique", "'P00-S1'"],
    ),
}


def test_the_unedited_cohort_loads(tmp_path):
    """The control: the sheets the cases below break are valid."""
    cohort = load(write_cohort(tmp_path, cohort_frames()))
    assert len(cohort.patients) == N and len(cohort.slides) == 4
    assert cohort.omics["rnaseq"].shape == (N - 2, 4)


@pytest.mark.parametrize("case", sorted(SHEET_CASES))
def test_bad_sheet_is_named(tmp_path, case):
    sheet, edit, expected = SHEET_CASES[case]
    frames = cohort_frames()
    frames[sheet] = edit(frames[sheet])
    paths = write_cohort(tmp_path, frames)
    with pytest.raises(CohortError) as err:
        load(paths)
    message = str(err.value)
    assert message.startswith(f"{paths[sheet]}: "), message  # the file first
    for part in expected:
        assert part in message, message


def test_patients_in_the_sheet_but_in_no_table_lack_the_modality(tmp_path, caplog):
    """Not an error: the patient lacks the modality (a missing modality is what MM-Lego is
    for); a patient with no modality at all is logged, since no model can score it."""
    frames = cohort_frames()
    frames["slides"] = frames["slides"].iloc[1:]  # P00 has neither slides nor ...
    frames["rnaseq"] = frames["rnaseq"][frames["rnaseq"]["patient_id"] != "P00"]  # ... omics
    paths = write_cohort(tmp_path, frames)
    with caplog.at_level(logging.WARNING, logger="mmlego.cohort.sheets"):
        cohort = load(paths)
    available = cohort.availability()
    assert not available.loc["P00"].any()
    assert available.loc[["P10", "P11"], "rnaseq"].eq(False).all()  # in the sheet, not the table
    assert available.loc[["P10", "P11"]].any(axis=1).eq(False).all()
    assert available.loc["P01"].all()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, warned
    assert str(paths["patients"]) in warned[0] and "3 patient(s)" in warned[0]
    assert all(p in warned[0] for p in ("'P00'", "'P10'", "'P11'")), warned[0]


def test_missing_slide_file_is_named(tmp_path):
    frames = cohort_frames()
    paths = write_cohort(tmp_path, frames)
    (tmp_path / "slides").mkdir()
    for p in IDS[:3]:  # P03's slide file is missing
        (tmp_path / "slides" / f"{p}.tiff").write_bytes(b"")
    load(paths)  # the sheet itself is fine
    with pytest.raises(CohortError) as err:
        load(paths, check_slide_files=True)
    message = str(err.value)
    assert message.startswith(f"{paths['slides']}: 1 slide file(s) do not exist"), message
    assert "'P03-S1'" in message


# --- slides ----------------------------------------------------------------------------------

TILING = {"target_mpp": 1.0, "tile_size": 64, "tissue": TissueParams()}


def write_plain_tiff(
    path: Path,
    image: np.ndarray,
    *,
    resolution: tuple[float, float] = (2e4, 2e4),
    unit: str = "CENTIMETER",
    tile: tuple[int, int] | None = (64, 64),
) -> None:
    """A TIFF as image tools write it (no slide scanner's metadata): OpenSlide reads it as a
    generic TIFF when it is tiled, its resolution from the tags (2e4 px/cm: 0.5 µm/px)."""
    tifffile.imwrite(
        path,
        image,
        tile=tile,
        compression="deflate",
        photometric="rgb" if image.ndim == 3 else "minisblack",
        resolution=resolution,
        resolutionunit=unit,
        metadata=None,
    )


def make_slide(case: str, folder: Path) -> Path:
    """A slide file for each bad-slide case (and the good one they are made from)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.tiff"
    if not good.is_file():
        write_synthetic_slide(good, seed=1, factor=0.0, width=1024, height=768)
    data = good.read_bytes()
    path = folder / {"not_a_slide": "notaslide.svs", "missing": "missing.svs"}.get(
        case, f"{case}.tiff"
    )
    if case == "good":
        return good
    if case == "truncated":
        path.write_bytes(data[: len(data) * 9 // 10])
    elif case == "corrupt_tiles":  # header and pyramid intact, level-0 tile data zeroed
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(20_000) + data[mid + 20_000 :])
    elif case == "empty_file":
        path.write_bytes(b"")
    elif case == "not_a_slide":
        path.write_text("patient_id\ttime\nP1\t3\n")
    elif case == "no_mpp":
        write_synthetic_slide(path, seed=2, factor=0.0, width=1024, height=768, mpp=None)
    elif case == "no_tissue":
        write_aperio_tiff(path, np.full((768, 1024, 3), 242, np.uint8), mpp=0.5)
    elif case == "implausible_mpp":  # an image tool's 72 dpi
        write_plain_tiff(path, tissue_image(), resolution=(72, 72), unit="INCH")
    elif case == "anisotropic_mpp":  # 0.5 µm/px along x, 1.0 along y
        write_plain_tiff(path, tissue_image(), resolution=(2e4, 1e4))
    elif case == "striped":  # a complete, valid TIFF without tiles
        write_plain_tiff(path, tissue_image(), tile=None)
    elif case == "grayscale":
        gray = np.asarray(Image.fromarray(tissue_image()).convert("L"))
        write_plain_tiff(path, gray)
    elif case == "smaller_than_a_tile":  # 48 x 40 µm: a tile is 64 µm
        write_plain_tiff(path, tissue_image()[:80, :96], tile=(16, 16))
    return path


def tissue_image() -> np.ndarray:
    """The good slide's picture (768, 1024, 3) uint8 at 0.5 µm/px."""
    return _render(seed=1, factor=0.0, width=1024, height=768, mpp=0.5)[0]


# case -> (stage that raises with wsi.fail_fast, what the message says after the path,
#          QC status without fail_fast, QC reason excerpt)
SLIDE_CASES = {
    "truncated": ("tile", "cannot open this file", "failed", "truncated TIFF"),
    "empty_file": ("tile", "cannot open this file", "failed", "the file is empty"),
    "corrupt_tiles": ("features", "Premature end of JPEG", "failed", "JPEG"),
    "not_a_slide": ("tile", "cannot open this file", "failed", "not a TIFF-based slide"),
    "no_mpp": ("tile", "no resolution", "failed", "'mpp' column"),
    "missing": ("tile", "slide file not found", "failed", "slide file not found"),
    "no_tissue": (None, "", "no_tissue", "no tile reaches wsi.min_tissue"),
    "implausible_mpp": (
        "tile",
        "implausible resolution 352.778 µm/px from the TIFF resolution tags (72 pixels per inch)",
        "failed",
        "give its mpp in the slide sheet's 'mpp' column",
    ),
    "anisotropic_mpp": (
        "tile",
        "non-square pixels: 0.5 µm/px along x and 1 along y from the TIFF resolution tags "
        "(20000 x 10000 pixels per centimeter)",
        "failed",
        "resample the slide to square pixels",
    ),
    "striped": ("tile", "cannot open this file", "failed", "TIFF without tiles (striped)"),
    "grayscale": ("tile", "single-channel (grayscale) image", "failed", "RGB brightfield"),
    "smaller_than_a_tile": (None, "", "no_tissue", "smaller than one tile at the target"),
}


@pytest.mark.parametrize("case", sorted(SLIDE_CASES))
def test_bad_slide_with_fail_fast_raises_naming_the_file(tmp_path, case):
    stage, what, _, _ = SLIDE_CASES[case]
    path = make_slide(case, tmp_path / "slides")
    coords, feats = tmp_path / "c.h5", tmp_path / "f.h5"
    if stage is None:
        assert tile_slide(path, coords, **TILING).status == "no_tissue"
        assert extract_features(path, coords, feats) == 0
        return
    error = FileNotFoundError if case == "missing" else SlideError
    with pytest.raises(error) as err:
        tile_slide(path, coords, **TILING)
        extract_features(path, coords, feats)
    message = str(err.value)
    assert str(path) in message and what in message, message
    assert SLIDE_CASES[case][3] in message, message  # what is wrong with it
    assert (coords.is_file(), feats.is_file()) == (
        (True, False) if stage == "features" else (False, False)
    )


@pytest.mark.parametrize("case", sorted(SLIDE_CASES))
def test_bad_slide_without_fail_fast_is_recorded_in_the_qc_table(tmp_path, case):
    _, _, status, reason = SLIDE_CASES[case]
    slides = {name: make_slide(name, tmp_path / "slides") for name in ("good", case)}
    coords, feats = [], []
    for name, path in slides.items():
        coords.append(tmp_path / "coords" / f"{name}.h5")
        feats.append(tmp_path / "features" / f"{name}.h5")
        tile_slide(path, coords[-1], **TILING, qc_png=tmp_path / f"{name}.png", fail_fast=False)
        extract_features(path, coords[-1], feats[-1], fail_fast=False)
        assert (tmp_path / f"{name}.png").stat().st_size > 0  # a QC picture, even of a skip
    qc = qc_table(
        coords_files=[str(p) for p in coords],
        feature_files=[str(p) for p in feats],
        patient_of={"good": "PA", case: "PB"},
    ).set_index("slide_id")
    assert qc.loc["good", "status"] == "ok" and qc.loc["good", "n_tiles"] > 0
    row = qc.loc[case]
    assert (row["status"], row["n_tiles"], row["patient_id"]) == (status, 0, "PB")
    assert reason in row["reason"], row["reason"]
    if status == "failed":
        assert str(slides[case]) in row["reason"], row["reason"]  # the file is named


def test_slide_without_mpp_works_with_an_override(tmp_path):
    """The control of the no-MPP case: the slide sheet's mpp column fixes it."""
    path = make_slide("no_mpp", tmp_path)
    result = tile_slide(path, tmp_path / "c.h5", **TILING, mpp_override=0.5)
    assert result.status == "ok" and result.n_tiles > 0 and result.slide_mpp == 0.5


# --- omics preprocessing, folds and training -------------------------------------------------


def omics_table(p: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        rng.normal(size=(N, p)),
        index=pd.Index(IDS, name="patient_id"),
        columns=[f"G{j}" for j in range(p)],
    )


def test_all_constant_features_are_refused_naming_modality_and_fold():
    table = omics_table()
    table[:] = 3.0
    with pytest.raises(ValueError) as err:
        fit_transform_fold(table, IDS[:8], OmicsParams(), name="rnaseq", fold=1)
    message = str(err.value)
    assert "omics modality 'rnaseq'" in message and "fold 1's 8 training patients" in message
    assert "all 4 feature(s) are constant" in message, message


def test_a_constant_feature_among_others_is_dropped():
    table = omics_table()
    table["G2"] = 3.0
    fold = fit_transform_fold(table, IDS[:8], OmicsParams(), name="rnaseq")
    assert list(fold.feature_names) == ["G0", "G1", "G3"]
    assert np.isfinite(fold.X).all()


def test_omics_inf_is_refused_naming_column_and_patient():
    table = omics_table()
    table.loc["P05", "G1"] = np.inf
    with pytest.raises(
        ValueError, match=r"'rnaseq': infinite value in column 'G1' for patient 'P05'"
    ):
        fit_transform_fold(table, IDS[:8], OmicsParams(), name="rnaseq")


def test_omics_modality_without_training_patients_in_a_fold():
    table = omics_table().iloc[8:]  # only validation patients have it
    with pytest.raises(ValueError) as err:
        fit_transform_fold(table, IDS[:8], OmicsParams(), name="cnv", fold=2)
    message = str(err.value)
    assert "omics modality 'cnv': only 0 of fold 2's 8 training patients" in message, message


def test_slide_modality_without_training_patients_in_a_fold(tmp_path):
    bags = tmp_path / "patient_bags.h5"
    with h5py.File(bags, "w") as f:
        for p in ("P08", "P09"):  # validation patients only
            f.create_group(p).create_dataset("features", data=np.ones((3, 2), np.float32))
        f.create_group("P00").create_dataset("features", data=np.zeros((0, 2), np.float32))
    split = tmp_path / "fold1.tsv"
    roles = ["train"] * 8 + ["val"] * 4
    pd.DataFrame({"patient_id": IDS, "role": roles}).to_csv(split, sep="\t", index=False)
    patients = tmp_path / "patients.tsv"
    cohort_frames()["patients"].to_csv(patients, sep="\t", index=False)
    fold = Fold.read(split=str(split), patients=str(patients), index=1)
    with pytest.raises(ValueError) as err:
        load_fold_modalities(fold, {"wsi": ("slides", str(bags))})
    message = str(err.value)
    assert message.startswith(str(bags)), message
    assert "none of the 8 training patient(s) of fold 1 has tiles for modality 'wsi'" in message


def survival_patients(events: list[int]) -> pd.DataFrame:
    n = len(events)
    return pd.DataFrame(
        {"patient_id": IDS[:n], "time": np.arange(1.0, n + 1), "event": events}
    ).set_index("patient_id")


def test_fold_without_events_in_validation():
    """Too few events for the folds: a fold would have an undefined c-index."""
    patients = survival_patients([1, 1] + [0] * 10)
    with pytest.raises(SplitError) as err:
        make_folds(patients, k=3, seed=0)
    message = str(err.value)
    assert "'val' patient(s) has an event (event = 1)" in message, message
    assert message.startswith("fold ") and "c-index is undefined" in message
    assert "the cohort has 2 event(s) for 3 folds: lower splits.k to at most 2" in message
    make_folds(patients, k=2, seed=0)  # the control: two folds have an event each


@pytest.mark.parametrize(
    ("events", "what"),
    [
        (0, "has 0 events (every patient is censored), so"),
        (1, "has 1 event, and each fold needs one among its training and one among its validation"),
    ],
)
def test_a_cohort_with_fewer_than_two_events_is_not_told_to_lower_splits_k(tmp_path, events, what):
    """No number of folds helps: the advice is to check the outcome's coding."""
    patients = survival_patients([1] * events + [0] * (12 - events))
    given = tmp_path / "fold0.tsv"
    pd.DataFrame({"patient_id": IDS, "role": ["val"] * 4 + ["train"] * 8}).to_csv(
        given, sep="\t", index=False
    )
    for make in (
        lambda: make_folds(patients, k=2, seed=0),
        lambda: cohort_folds(
            patients, given=[given], k=2, seed=0, tune_fraction=0.2, task="survival"
        ),
    ):
        with pytest.raises(SplitError) as err:
            make()
        message = str(err.value)
        assert message.startswith(f"the cohort {what}"), message
        assert "cannot be evaluated with any number of folds" in message
        assert "censorship: 1 = censored, 0 = death observed" in message
        assert "or leave the cohort out" in message and "splits.k" not in message


def test_fold_without_events_in_training():
    """A given split whose every event is in validation: the model cannot be fitted."""
    patients = survival_patients([1, 1] + [0] * 10)
    fold = pd.DataFrame({"patient_id": IDS, "role": ["val"] * 3 + ["train"] * 9})
    with pytest.raises(SplitError) as err:
        add_tune(fold, patients, fraction=0.2, seed=0, index=4)
    message = str(err.value)
    assert message.startswith("fold 4: none of its 7 'train' patient(s) has an event"), message
    assert "cannot be fitted" in message and "check the split file" in message


def test_a_fold_without_events_is_fine_for_classification():
    patients = survival_patients([0] * 12).assign(label=["a", "b"] * 6)
    folds = make_folds(patients, k=3, seed=0, by="label")
    assert len(folds) == 3
    val = pd.concat([f.loc[f["role"] == "val", "patient_id"] for f in folds])
    assert sorted(val.astype(str)) == sorted(patients.index.astype(str))  # each val once


# --- configuration ---------------------------------------------------------------------------


@pytest.fixture
def config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def _put(cfg: dict, path: tuple[str, ...], value) -> dict:
    cfg = copy.deepcopy(cfg)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return cfg


# bad value -> (key path, value, parts of the schema's message)
CONFIG_CASES = {
    "wrong_type_int": (
        ("splits", "k"),
        "five",
        ["'five' is not of type 'integer'", "['splits']['k']"],
    ),
    "wrong_type_bool": (
        ("wsi", "fail_fast"),
        "yes",
        ["'yes' is not of type 'boolean'", "['wsi']['fail_fast']"],
    ),
    "wrong_type_list": (
        ("experiments", "paired_budget"),
        50,
        ["50 is not of type 'array'", "paired_budget"],
    ),
    "unknown_top_key": (("trainig",), {"epochs": 3}, ["'trainig' was unexpected"]),
    "unknown_nested_key": (("training", "epoch"), 3, ["'epoch' was unexpected", "['training']"]),
    "unsafe_cohort_name": (("cohort",), "../x", ["'../x' does not match", "['cohort']"]),
    "unsafe_modality_name": (
        ("modalities", "RNA seq"),
        {"type": "table", "encoder": {"kind": "snn"}},
        ["'RNA seq' does not match", "['modalities']"],
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_value_is_named_by_the_schema(config, case):
    path, value, expected = CONFIG_CASES[case]
    with pytest.raises(WorkflowError) as err:
        validate(_put(config, path, value), SCHEMA)
    message = str(err.value)
    for part in expected:
        assert part in message, message


def test_config_naming_a_missing_file_is_named(config, tmp_path):
    cfg = _put(config, ("cohort",), "mine")
    cfg["inputs"] = {"patients": str(tmp_path / "nope.tsv"), "slides": str(tmp_path / "s.tsv")}
    cfg["inputs"]["tables"] = {"rnaseq": str(tmp_path / "rnaseq.tsv")}
    del cfg["modalities"]["cnv"]
    with pytest.raises(ConfigError, match=r"^inputs\.patients: file '.*nope\.tsv' does not exist"):
        check_config(cfg)
    assert "relative path" not in str(_config_error(cfg))


def test_a_missing_relative_path_says_where_it_was_looked_for(config, tmp_path, monkeypatch):
    """Relative paths are read from the working directory; a user who wrote them relative to
    the config file's folder is told so."""
    monkeypatch.chdir(tmp_path)
    cfg = _put(config, ("cohort",), "mine")
    cfg["inputs"] = {"patients": "cohort/patients.tsv", "slides": "cohort/slides.tsv"}
    cfg["inputs"]["tables"] = {"rnaseq": "cohort/rnaseq.tsv"}
    del cfg["modalities"]["cnv"]
    message = str(_config_error(cfg))
    assert message.startswith("inputs.patients: file 'cohort/patients.tsv' does not exist")
    assert f"working directory {tmp_path}" in message and "config file's folder" in message


def _config_error(cfg: dict) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    return err.value


# --- the same at workflow level: a dry run stops before any job, naming the key or file -------


def user_cohort(
    folder: Path,
    *,
    missing_slide: bool = False,
    unsafe_slide: bool = False,
    bad_event: bool = False,
) -> dict:
    """Sheets of a small user cohort with real slide files; a config that points at them."""
    frames = cohort_frames()
    slides = frames["slides"]
    if unsafe_slide:
        slides.loc[2, "slide_id"] = "P02 S1"
    if bad_event:  # an event coded 2 (e.g. a cause-of-death code)
        frames["patients"].loc[7, "event"] = 2
    paths = write_cohort(folder, frames)
    for i, rel in enumerate(slides["path"]):
        if not (missing_slide and i == 3):
            write_synthetic_slide(folder / rel, seed=i, factor=0.0, width=256, height=256)
    return {
        "cohort": "user",
        "inputs": {
            "patients": str(paths["patients"]),
            "slides": str(paths["slides"]),
            "tables": {"rnaseq": str(paths["rnaseq"])},
        },
        "modalities": {"cnv": None},
    }


# case -> (config file contents, parts of Snakemake's output, whether the DAG was built)
def workflow_cases(tmp: Path) -> dict[str, tuple[dict, list[str], bool]]:
    return {
        "wrong_type": (
            {"training": {"epochs": "ten"}},
            ["'ten' is not of type 'integer'", "['training']['epochs']"],
            False,
        ),
        "unknown_key": (
            {"training": {"epoch": 3}},
            ["'epoch' was unexpected", "Error validating config file"],
            False,
        ),
        "cross_key": (
            {"modalities": {"wsi": None, "he": {"type": "slides", "encoder": {"kind": "snn"}}}},
            ["ConfigError", "modalities.he.encoder.kind", "a slides modality needs a bag encoder"],
            False,
        ),
        "unknown_patch_encoder": (  # a typo: stopped while parsing, not in the shard jobs
            {"wsi": {"encoder": "unii"}},
            ["ConfigError", "wsi.encoder: unknown patch encoder 'unii'", "hed_texture"],
            False,
        ),
        "unsafe_slide_id": (
            user_cohort(tmp / "unsafe", unsafe_slide=True),
            [
                "slides.tsv: column 'slide_id' has id(s) with characters other than letters",
                "'P02 S1'",
            ],
            False,
        ),
        "bad_event": (  # checked as the cohort import checks it, before the WSI stage
            user_cohort(tmp / "event", bad_event=True),
            [
                "inputs.patients:",
                str(tmp / "event" / "patients.tsv"),
                "column 'event' must be 0 (censored) or 1 (death observed)",
                "P07=2",
            ],
            False,
        ),
        "missing_slide": (
            user_cohort(tmp / "missing", missing_slide=True),
            ["MissingInputException", "wsi_shard", str(tmp / "missing" / "slides" / "P03.tiff")],
            True,
        ),
    }


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory) -> dict[str, tuple[str, Path, list[str], bool]]:
    """Each case's dry run (in parallel: most of a dry run's time is Snakemake starting)."""
    tmp = tmp_path_factory.mktemp("bad_inputs_wf")
    cases = workflow_cases(tmp)

    def dry_run(name: str) -> tuple[int, str, Path]:
        work = make_working_copy(tmp / f"wf_{name}")
        (work / "bad.yaml").write_text(yaml.safe_dump(cases[name][0]))
        proc = run_snakemake(
            "-n", "--cores", "1", "--configfile", "bad.yaml", cwd=work, check=False
        )
        return proc.returncode, proc.stdout + proc.stderr, work

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        done = dict(zip(cases, pool.map(dry_run, cases), strict=True))
    return {name: (*done[name], *cases[name][1:]) for name in cases}


@pytest.mark.parametrize(
    "case",
    [
        "wrong_type",
        "unknown_key",
        "cross_key",
        "unknown_patch_encoder",
        "unsafe_slide_id",
        "bad_event",
        "missing_slide",
    ],
)
def test_workflow_stops_before_any_job_naming_the_problem(dry_runs, case):
    returncode, output, work, expected, dag_built = dry_runs[case]
    assert returncode != 0, output
    for part in expected:
        assert part in output, output
    assert ("Building DAG of jobs" in output) == dag_built, output  # stopped while parsing
    assert "Job stats" not in output and not (work / "results").exists(), output
