"""Slide sheets built from a folder of slides or a GDC manifest / sample sheet."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mmlego.cohort.sheets import load_cohort
from mmlego.io import read_tsv
from mmlego.wsi.find_slides import (
    SlideSheetError,
    main,
    sheet_from_folder,
    sheet_from_gdc,
    slide_id_from_name,
    tcga_case_id,
    validate_slide_sheet,
    write_slide_sheet,
)

ROOT = Path(__file__).resolve().parents[1]
UUID = "195576CF-B739-4BD9-B15B-4A70AE287D3E"
TCGA = [
    f"TCGA-2F-A9KO-01Z-00-DX1.{UUID}.svs",
    "TCGA-2F-A9KO-01A-01-TS1.0B5E9F2A-1111-2222-3333-444455556666.svs",
    "TCGA-4Z-AA7M-01Z-00-DX2.ABCDEF01-1111-2222-3333-444455556666.svs",
]


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"slide")
    return path


def test_tcga_names():
    assert slide_id_from_name(TCGA[0]) == "TCGA-2F-A9KO-01Z-00-DX1"
    assert tcga_case_id(TCGA[0]) == "TCGA-2F-A9KO"
    assert tcga_case_id("TCGA-2F-A9KOX-01.svs") is None  # participant must be 4 characters
    assert tcga_case_id("slide_01.svs") is None


def test_sheet_from_a_folder_of_tcga_slides(tmp_path):
    for name in TCGA:
        _touch(tmp_path / "slides" / "sub" / name)
    _touch(tmp_path / "slides" / "notes.txt")
    _touch(tmp_path / "slides" / "x.mrxs.d" / "Data0001.dat")  # MIRAX data, not a slide
    sheet = sheet_from_folder(tmp_path / "slides")
    assert list(sheet.columns) == ["patient_id", "slide_id", "path", "mpp"]
    assert sheet["slide_id"].tolist() == [
        "TCGA-2F-A9KO-01A-01-TS1",
        "TCGA-2F-A9KO-01Z-00-DX1",
        "TCGA-4Z-AA7M-01Z-00-DX2",
    ]
    assert sheet["patient_id"].tolist() == ["TCGA-2F-A9KO", "TCGA-2F-A9KO", "TCGA-4Z-AA7M"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in sheet["path"])
    assert sheet["mpp"].isna().all()
    only_dx = sheet_from_folder(tmp_path / "slides", pattern="*-DX*.svs")
    assert len(only_dx) == 2
    with pytest.raises(SlideSheetError, match="no slide files"):
        sheet_from_folder(tmp_path / "slides", recursive=False)  # the slides are in sub/


def test_sheet_from_folder_with_id_regex_and_errors(tmp_path):
    for name in ("P001_a.ndpi", "P001_b.tiff", "P002_a.mrxs"):
        _touch(tmp_path / name)
    sheet = sheet_from_folder(tmp_path, id_regex=r"^(?P<patient>P\d+)_")
    assert sheet["patient_id"].tolist() == ["P001", "P001", "P002"]
    assert sheet["slide_id"].tolist() == ["P001_a", "P001_b", "P002_a"]
    with pytest.raises(SlideSheetError, match=r"cannot derive a patient id.*P001_a\.ndpi"):
        sheet_from_folder(tmp_path)  # not TCGA names
    with pytest.raises(SlideSheetError, match="no slide files"):
        sheet_from_folder(tmp_path, pattern="*.svs")
    with pytest.raises(SlideSheetError, match="not found"):
        sheet_from_folder(tmp_path / "nope")
    _touch(tmp_path / "deeper" / "P001_a.svs")  # same slide id twice
    with pytest.raises(SlideSheetError, match=r"slide_id must be unique.*P001_a"):
        sheet_from_folder(tmp_path, id_regex=r"^(P\d+)_")


def _gdc_download(root: Path) -> list[tuple[str, str]]:
    """Files as gdc-client lays them out: <root>/<file id>/<file name>."""
    files = [(f"{i:08d}-aaaa-bbbb-cccc-dddddddddddd", n) for i, n in enumerate(TCGA)]
    for fid, name in files:
        _touch(root / fid / name)
    return files


def test_sheet_from_a_gdc_manifest(tmp_path):
    files = _gdc_download(tmp_path / "gdc")
    rows = [
        {"id": fid, "filename": n, "md5": "0" * 32, "size": 5, "state": "released"}
        for fid, n in files
    ]
    rows.append({"id": "x", "filename": "clinical.tsv", "md5": "0", "size": 1, "state": "released"})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.txt", sep="\t", index=False)
    sheet = sheet_from_gdc(tmp_path / "manifest.txt", tmp_path / "gdc")
    assert sheet["patient_id"].tolist() == ["TCGA-2F-A9KO", "TCGA-2F-A9KO", "TCGA-4Z-AA7M"]
    assert sheet["slide_id"].tolist()[0] == "TCGA-2F-A9KO-01Z-00-DX1"
    assert sheet["file_id"].tolist() == [f for f, _ in files]
    assert all(Path(p).is_file() for p in sheet["path"])


def test_sheet_from_a_gdc_sample_sheet_flat_folder_and_missing_files(tmp_path):
    for name in TCGA[:2]:
        _touch(tmp_path / "flat" / name)
    ss = pd.DataFrame(
        {
            "File ID": ["f0", "f1", "f2"],
            "File Name": TCGA,
            "Data Category": ["Biospecimen"] * 3,
            "Case ID": ["TCGA-2F-A9KO", "TCGA-2F-A9KO", "TCGA-4Z-AA7M"],
            "Sample ID": ["TCGA-2F-A9KO-01Z", "TCGA-2F-A9KO-01A", "TCGA-4Z-AA7M-01Z"],
            "Sample Type": ["Primary Tumor"] * 3,
        }
    )
    ss.to_csv(tmp_path / "samples.tsv", sep="\t", index=False)
    with pytest.raises(SlideSheetError, match=r"1 slide file\(s\) not found.*TCGA-4Z-AA7M"):
        sheet_from_gdc(tmp_path / "samples.tsv", tmp_path / "flat")
    sheet = sheet_from_gdc(tmp_path / "samples.tsv", tmp_path / "flat", missing="skip")
    assert len(sheet) == 2 and sheet["sample_type"].tolist() == ["Primary Tumor"] * 2
    assert sheet["sample_id"].tolist() == ["TCGA-2F-A9KO-01Z", "TCGA-2F-A9KO-01A"]
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other.tsv", sep="\t", index=False)
    with pytest.raises(SlideSheetError, match=r"other\.tsv: not a GDC manifest"):
        sheet_from_gdc(tmp_path / "other.tsv", tmp_path / "flat")


def test_schema_validation_names_rows_and_columns():
    bad = pd.DataFrame(
        {
            "patient_id": ["P1", "P 2"],
            "slide_id": ["s1", "s2"],
            "path": ["a.svs", "b.svs"],
            "mpp": [0.25, -1.0],
        }
    )
    with pytest.raises(SlideSheetError) as err:
        validate_slide_sheet(bad, source="my.tsv")
    msg = str(err.value)
    assert "my.tsv" in msg and "row 2 (s2) column 'patient_id'" in msg
    assert "column 'mpp'" in msg
    with pytest.raises(SlideSheetError, match="missing column"):
        validate_slide_sheet(bad.drop(columns="path"))


def test_written_sheet_loads_with_the_cohort(tmp_path):
    for name in TCGA:
        _touch(tmp_path / "cohort" / "slides" / name)
    sheet = sheet_from_folder(tmp_path / "cohort" / "slides")
    sheet.loc[0, "mpp"] = 0.2527
    write_slide_sheet(sheet, tmp_path / "cohort" / "slides.tsv", relative=True)
    back = read_tsv(tmp_path / "cohort" / "slides.tsv")
    assert back["path"].tolist()[0] == f"slides/{TCGA[1]}"  # sorted by file name
    patients = pd.DataFrame(
        {
            "patient_id": ["TCGA-2F-A9KO", "TCGA-4Z-AA7M"],
            "time": [10.0, 20.0],
            "event": [1, 0],
            "label": ["a", "b"],
        }
    )
    patients.to_csv(tmp_path / "cohort" / "patients.tsv", sep="\t", index=False)
    cohort = load_cohort(
        patients=tmp_path / "cohort" / "patients.tsv",
        slides=tmp_path / "cohort" / "slides.tsv",
        check_slide_files=True,
    )
    assert len(cohort.slides) == 3
    assert cohort.slides["mpp"].iloc[0] == pytest.approx(0.2527)


def test_command_line(tmp_path):
    for name in TCGA:
        _touch(tmp_path / "s" / name)
    out = tmp_path / "slides.tsv"
    cmd = [sys.executable, "-m", "mmlego.wsi.find_slides", "--folder", str(tmp_path / "s")]
    proc = subprocess.run(
        [*cmd, "--out", str(out)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 slides of 2 patients" in proc.stdout
    assert len(read_tsv(out)) == 3
    proc = subprocess.run(
        [*cmd, "--pattern", "*.ndpi", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 2 and "no slide files" in proc.stderr


def test_command_line_error_gives_the_id_regex_flag(tmp_path, capsys):
    """File names without a TCGA barcode: the error names the command line's flag with an
    example that works for these names."""
    for name in ("P001_a.tiff", "P002_a.tiff"):
        _touch(tmp_path / "s" / name)
    args = ["--folder", str(tmp_path / "s"), "--out", str(tmp_path / "slides.tsv")]
    assert main(args) == 2
    message = capsys.readouterr().err
    assert "cannot derive a patient id from 2 file name(s)" in message
    suggested = re.search(r"--id-regex '([^']+)'", message)
    assert suggested, message
    assert main([*args, "--id-regex", suggested.group(1)]) == 0
    assert read_tsv(tmp_path / "slides.tsv")["patient_id"].tolist() == ["P001", "P002"]
