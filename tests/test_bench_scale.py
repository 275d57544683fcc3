"""The bags memory benchmark runs end to end on a tiny cohort and reports its table (no memory
or time thresholds: the figures depend on the machine)."""

from __future__ import annotations

import h5py

from mmlego.bench import scale


def test_feature_files_are_clam_style(tmp_path):
    paths = scale.write_feature_files(tmp_path, 2, tiles=7, dim=3)
    assert [p.name for p in paths] == ["slide_0000.h5", "slide_0001.h5"]
    with h5py.File(paths[1]) as f:
        assert f["features"].shape == (7, 3) and f["features"].dtype == "float32"
        assert f["coords"].shape == (7, 2)


def test_memory_benchmark_runs_and_reports(tmp_path):
    lines: list[str] = []
    result = scale.run_memory(
        n_slides=[10, 5], tiles=40, dim=8, workdir=str(tmp_path), out=lines.append
    )
    assert [r["n_slides"] for r in result["rows"]] == [5, 10]
    for r in result["rows"]:
        assert r["assembly_peak_rss_mb"] > 0 and r["epoch_peak_rss_mb"] > 0
        assert r["epoch_seconds"] > 0
    assert result["ratio_epoch"] > 0 and result["ratio_assembly"] > 0
    table = lines[-1]
    assert "| 5 |" in table and "| 10 |" in table and "ratio N=10 / N=5" in table
    assert list(tmp_path.iterdir()) == []  # the generated files are deleted
