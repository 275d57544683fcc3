"""Report: provenance, plots, benchmark summary and the self-contained HTML page."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from mmlego.evaluation.evaluate import ORACLE_MODEL, summarise
from mmlego.report import plots
from mmlego.report.html import render_report, summarise_benchmarks
from mmlego.report.provenance import collect_provenance, config_sha256, git_state, input_checksum

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# ---------------------------------------------------------------------------------------------
# provenance


def test_config_hash_stable_across_key_order():
    a = {"cohort": {"name": "demo", "folds": 5}, "models": ["merge", "fuse"], "seed": 1}
    b = {"seed": 1, "models": ["merge", "fuse"], "cohort": {"folds": 5, "name": "demo"}}
    assert config_sha256(a) == config_sha256(b)
    assert config_sha256(a) != config_sha256({**a, "seed": 2})
    assert config_sha256(a) != config_sha256({**a, "models": ["fuse", "merge"]})  # order matters


def test_collect_provenance(tmp_path):
    data = tmp_path / "patients.tsv"
    data.write_bytes(b"patient_id\ttime\n" + b"P1\t1.0\n" * 5000)
    folder = tmp_path / "omics"
    folder.mkdir()
    (folder / "rnaseq.tsv").write_text("patient_id\tg1\nP1\t0.5\n")
    prov = collect_provenance(
        config={"b": 1, "a": {"y": 2, "x": 1}},
        inputs=[data, folder],
        seeds={"split": 0},
        repo_dir=tmp_path,
    )
    assert prov["config_sha256"] == config_sha256({"a": {"x": 1, "y": 2}, "b": 1})
    assert prov["inputs"][0]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert prov["inputs"][0]["bytes"] == data.stat().st_size
    assert prov["inputs"][1]["kind"] == "folder" and prov["inputs"][1]["files"] == 1
    assert prov["git"]["commit"] is None  # tmp_path is no git checkout: recorded, not raised
    assert prov["seeds"] == {"split": 0}
    assert prov["packages"]["numpy"] == np.__version__
    assert prov["cpu_count"] >= 1
    assert "cuda_available" in prov["gpu"]
    before = prov["inputs"][1]["sha256"]
    (folder / "cnv.tsv").write_text("patient_id\tc1\n")
    assert input_checksum(folder)["sha256"] != before
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        input_checksum(tmp_path / "does-not-exist")


def test_git_state_outside_repository(tmp_path):
    state = git_state(tmp_path)
    assert state["commit"] is None and "not a git repository" in state["note"]


# ---------------------------------------------------------------------------------------------
# plots and benchmark summary


def test_risk_groups_split_each_fold_at_its_median():
    df = pd.DataFrame({"fold": [0, 0, 0, 0, 1, 1], "risk": [1.0, 2.0, 3.0, 4.0, 100.0, 200.0]})
    assert plots.risk_groups(df).tolist() == ["low", "low", "high", "high", "low", "high"]


def test_logrank_separates_groups():
    time = np.concatenate([np.arange(1.0, 21.0), np.arange(50.0, 70.0)])
    event = np.ones(40, dtype=int)
    group = np.array(["high"] * 20 + ["low"] * 20)
    assert plots.logrank_p(time, event, group) < 1e-6
    rng = np.random.default_rng(0)
    assert plots.logrank_p(time, event, rng.permutation(group)) > 1e-3
    assert np.isnan(plots.logrank_p(time, event, np.array(["low"] * 40)))


def test_summarise_benchmarks(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    paths = []
    for i, (s, rss) in enumerate([(10.0, 100.5), (30.0, 250.0), (20.0, "NA")]):
        path = tmp_path / f"b{i}.tsv"
        path.write_text(header + f"{s}\t0:00:{int(s)}\t{rss}\t1\t1\t1\t0\t0\t0\t{s}\n")
        paths.append(path)
    table = summarise_benchmarks({"train_block": paths, "tile": paths[:1]}).set_index("rule")
    assert table.loc["train_block", "n_jobs"] == 3
    assert table.loc["train_block", "total_s"] == pytest.approx(60.0)
    assert table.loc["train_block", "median_s"] == pytest.approx(20.0)
    assert table.loc["train_block", "max_rss_mb"] == pytest.approx(250.0)
    assert list(table.index) == ["train_block", "tile"]  # largest total first
    bad = tmp_path / "bad.tsv"
    bad.write_text("x\ty\n1\t2\n")
    with pytest.raises(ValueError, match=r"bad\.tsv \(rule r\) has no 's' column"):
        summarise_benchmarks({"r": [bad]})


# ---------------------------------------------------------------------------------------------
# the HTML page


class _Collector(HTMLParser):
    """Collects tags with their attributes, table cell text and the title."""

    def __init__(self):
        super().__init__()
        self.attrs: list[tuple[str, dict]] = []
        self.cells: list[str] = []
        self.title = ""
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.attrs.append((tag, dict(attrs)))
        if tag in ("td", "th", "title"):
            self._in = tag
            if tag != "title":
                self.cells.append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in:
            self.cells[-1] += data


def _report_inputs(tmp_path):
    rng = np.random.default_rng(3)
    ids = [f"S{i:02d}" for i in range(30)]
    time = rng.exponential(20, 30) + 0.5
    event = (rng.uniform(size=30) < 0.6).astype(int)
    patients = pd.DataFrame({"patient_id": ids, "time": time, "event": event})
    availability = pd.DataFrame(
        {"patient_id": ids, "rnaseq": True, "wsi": np.arange(30) % 4 != 0, "cnv": True}
    )
    rows, predictions = [], {}
    for model, base in (("lego_merge", 0.71), ("wsi_block", 0.62), ("<script>x", 0.55)):
        for fold in range(3):
            rows += [
                (model, fold, "c_index", base + 0.01 * fold),
                (model, fold, "c_index_complete", base - 0.01),
                (model, fold, "n_patients", 10.0),
            ]
        val = [i for i in range(30) if i % 3 == 0]
        predictions[model] = {
            f: patients.iloc[[i + f for i in val if i + f < 30]].assign(
                risk=lambda d: -np.log(d["time"]) + rng.normal(0, 0.5, len(d)), modalities="rnaseq"
            )
            for f in range(3)
        }
    rows += [(ORACLE_MODEL, f, "c_index", 0.8) for f in range(3)]
    metrics = pd.DataFrame(rows, columns=["model", "fold", "metric", "value"])
    bench = tmp_path / "bench.tsv"
    bench.write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t321.0\n")
    qc = tmp_path / "qc_slide1.png"
    qc.write_bytes(plots.metric_plot(metrics, metric="n_patients"))
    logs = {
        "lego_merge": pd.DataFrame(
            {
                "epoch": [0, 1, 2, 0, 1, 2],
                "split": ["train"] * 3 + ["tune"] * 3,
                "loss": [1.0, 0.8, 0.7, 1.1, 0.9, 0.85],
            }
        )
    }
    prov = collect_provenance(config={"cohort": "demo"}, inputs=[bench], seeds={"seed": 0})
    return dict(
        cohort_name="demo",
        metrics=metrics,
        patients=patients,
        availability=availability,
        predictions=predictions,
        benchmarks={"train_block": [bench]},
        qc_images=[qc],
        provenance=prov,
        synthetic=True,
        training_logs=logs,
    )


def test_render_report_self_contained(tmp_path):
    inputs = _report_inputs(tmp_path)
    out = render_report(out_html=tmp_path / "out" / "report.html", **inputs)
    text = out.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)

    assert "synthetic" in parser.title.lower()
    assert "demo" in parser.title
    cells = parser.cells
    for model in ("lego_merge", "wsi_block", "<script>x", ORACLE_MODEL):
        assert model in cells  # model names appear as table cells (escaped in the source)
    assert "<script>x" not in text and "&lt;script&gt;x" in text
    assert not any(tag == "script" for tag, _ in parser.attrs)
    # mean ± sd of lego_merge c_index over folds 0.71, 0.72, 0.73
    assert "0.720 ± 0.010 (n=3)" in cells
    # the models table is ranked by mean c_index: merge, wsi_block, <script>x after the oracle
    order = [c for c in cells if c in ("lego_merge", "wsi_block", "<script>x", ORACLE_MODEL)]
    assert order[:4] == [ORACLE_MODEL, "lego_merge", "wsi_block", "<script>x"]
    assert "Oracle c-index" in text and "0.800" in text
    # cohort summary: patients and events
    n_events = int(inputs["patients"]["event"].sum())
    assert "30" in cells and str(n_events) in cells
    # benchmark row: 12.5 s, 321 MB
    assert "train_block" in cells and "12.5" in cells and "321.0" in cells
    assert inputs["provenance"]["config_sha256"] in cells
    # images embedded; at least: 2 metric plots + 3 KM + training curves + 1 QC image
    imgs = [a for tag, a in parser.attrs if tag == "img"]
    assert len(imgs) >= 7
    assert '<img src="data:image/png;base64,' in text
    assert all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    # no external resources of any kind
    for tag, attrs in parser.attrs:
        for key in ("src", "href"):
            assert not attrs.get(key, "data:").startswith(("http", "//")), (tag, attrs)
    assert not re.search(r"https?://", text)
    assert not any(tag == "link" for tag, _ in parser.attrs)
    assert not list(out.parent.glob(".report.html*"))  # no temporary left behind


def test_render_report_real_cohort_and_nan_metric(tmp_path):
    inputs = _report_inputs(tmp_path)
    metrics = inputs["metrics"]
    metrics = pd.concat(
        [metrics, pd.DataFrame([("wsi_block", 3, "c_index", np.nan)], columns=metrics.columns)]
    )
    inputs.update(metrics=metrics, synthetic=False, training_logs=None, benchmarks=None)
    out = render_report(out_html=tmp_path / "real.html", **inputs)
    parser = _Collector()
    parser.feed(out.read_text(encoding="utf-8"))
    assert "synthetic" not in parser.title.lower()
    # the NaN fold is skipped in the mean, so wsi_block still shows 3 folds
    assert (
        summarise(metrics).query("model == 'wsi_block' and metric == 'c_index'")["n_folds"].item()
        == 3
    )
    assert "0.630 ± 0.010 (n=3)" in parser.cells
    assert "–" in parser.cells  # the NaN fold renders as a dash in the per-fold table


def test_plots_are_png():
    metrics = pd.DataFrame(
        {"model": ["a", "a", "b"], "fold": [0, 1, 0], "metric": "c_index", "value": [0.6, 0.7, 0.5]}
    )
    assert plots.metric_plot(metrics).startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="no finite values for metric 'auc'"):
        plots.metric_plot(metrics, metric="auc")
    log = pd.DataFrame({"epoch": [0, 1], "split": ["train", "train"], "loss": [1.0, 0.5]})
    assert plots.training_curves_plot({"m": log}).startswith(PNG_MAGIC)
    wide = pd.DataFrame({"epoch": [0, 1], "train_loss": [1.0, 0.5], "tune_loss": [1.2, np.nan]})
    long = plots.long_loss_table(wide)
    assert long[["split", "loss"]].values.tolist() == [
        ["train", 1.0],
        ["train", 0.5],
        ["tune", 1.2],
    ]
    assert plots.training_curves_plot({"wide": wide}).startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="training log 'bad' lacks column"):
        plots.training_curves_plot({"bad": log.drop(columns="loss")})


def test_render_report_classification(tmp_path):
    metrics = pd.DataFrame(
        {
            "model": ["clf_a", "clf_a", "clf_b", "clf_b"],
            "fold": [0, 1, 0, 1],
            "metric": "auc",
            "value": [0.9, 0.8, 0.6, 0.7],
        }
    )
    preds = pd.DataFrame({"patient_id": ["1", "2"], "label": ["x", "y"], "prob_x": [0.7, 0.2]})
    patients = pd.DataFrame({"patient_id": ["1", "2"], "label": ["x", "y"]})
    out = render_report(
        out_html=tmp_path / "clf.html",
        cohort_name="cls",
        metrics=metrics,
        patients=patients,
        availability=None,
        predictions={("clf_a", 0): preds},
        benchmarks=None,
        qc_images=[],
        provenance={"timestamp_utc": "2026-01-01T00:00:00+00:00"},
        synthetic=False,
    )
    parser = _Collector()
    parser.feed(out.read_text(encoding="utf-8"))
    assert "0.850 ± 0.071 (n=2)" in parser.cells
    assert "x: 1, y: 1" in parser.cells  # label counts in the cohort summary
    # ranked by auc: clf_a first in both tables
    names = [c for c in parser.cells if c.startswith("clf_")]
    assert names[:2] == ["clf_a", "clf_b"] and names[2:4] == ["clf_a", "clf_a"]
    imgs = [a for tag, a in parser.attrs if tag == "img"]
    assert len(imgs) == 1  # the auc plot; no Kaplan-Meier for classification
