"""The DAG benchmark (python -m mmlego.bench.dag) on a tiny placeholder cohort: the WSI stage
is one job per shard, whatever the number of slides."""

from __future__ import annotations

import json

from mmlego.bench import dag


def test_dag_benchmark_counts_one_wsi_job_per_shard(tmp_path, capsys):
    out_json = tmp_path / "dag.json"
    args = ["--patients", "12", "--slides", "30", "--rnaseq", "20", "--cnv", "10"]
    args += ["--shard-size", "8", "--workdir", str(tmp_path / "w"), "--json", str(out_json)]
    assert dag.main(args) == 0
    printed = capsys.readouterr().out
    result = json.loads(out_json.read_text())
    by_rule = result["by_rule"]
    assert by_rule["wsi_shard"] == 4 == result["shards"]  # 30 slides in shards of 8
    assert by_rule["patient_bags"] == by_rule["wsi_qc"] == 1
    assert result["wsi_jobs"] == 6
    assert result["jobs"] == sum(by_rule.values()) < 150
    assert result["wall_s"] > 0 and result["peak_rss_mb"] > 50
    assert f"jobs: {result['jobs']}\n" in printed and "wsi jobs: 6 (4 shards)" in printed
    # the cohort as generated: 30 links to one slide, 12 patients, tables of 20 and 10 columns
    cohort = tmp_path / "w" / "cohort"
    links = sorted((cohort / "slides").iterdir())
    assert len(links) == 30 and {p.resolve() for p in links} == {cohort / "slide.tiff"}
    assert (cohort / "rnaseq.tsv").read_text().splitlines()[0].count("\t") == 20
    assert len((cohort / "patients.tsv").read_text().splitlines()) == 13
