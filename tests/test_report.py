"""Report: provenance, plots, benchmark summary and the self-contained HTML page."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from mmlego.evaluation.evaluate import ORACLE_MODEL, summarise
from mmlego.evaluation.metrics import bootstrap_ci
from mmlego.report import plots
from mmlego.report.html import (
    compute_cost,
    km_models,
    render_report,
    shrink_image,
    summarise_benchmarks,
)
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


BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path, s, rss, cpu):
    path.write_text(BENCH_HEADER + f"{s}\t0:00:{int(s):02d}\t{rss}\t1\t1\t1\t0\t0\t0\t{cpu}\n")
    return path


def report_inputs(tmp_path):
    """render_report's inputs for a small synthetic cohort (no workflow run needed).

    Models: lego_merge (c-index 0.71-0.73), wsi_block (0.62-0.64, the best baseline),
    '<script>x' (0.55-0.57, a name that must be escaped), the paired-budget LegoFuse models and
    the oracle (0.8). lego_merge and wsi_block also have td_auc and ibs.
    """
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
    for model, auc, ibs in (("lego_merge", 0.75, 0.18), ("wsi_block", 0.66, 0.21)):
        rows += [(model, f, "td_auc", auc) for f in range(3)]
        rows += [(model, f, "ibs", ibs + 0.01 * f) for f in range(3)]
    for model, base in (("lego_fuse_paired0", 0.50), ("lego_fuse_paired50", 0.52)):
        rows += [(model, f, "c_index", base + 0.01 * f) for f in range(3)]
    rows += [("lego_fuse", f, "c_index", 0.54) for f in range(3)]
    rows += [(ORACLE_MODEL, f, "c_index", 0.8) for f in range(3)]
    metrics = pd.DataFrame(rows, columns=["model", "fold", "metric", "value"])
    bench = {
        "train_block": [
            _bench(tmp_path / "block_a.tsv", 12.5, 321.0, 10.0),
            _bench(tmp_path / "block_b.tsv", 7.5, 300.0, 5.0),
        ],
        "merge": [_bench(tmp_path / "merge.tsv", 2.0, 250.0, 1.5)],
        "fuse": [_bench(tmp_path / "fuse.tsv", 4.0, 330.0, 3.0)],
        "concat_fusion": [_bench(tmp_path / "e2e.tsv", 30.0, 340.0, 25.0)],
    }
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
    prov = collect_provenance(
        config={"cohort": "demo"}, inputs=[bench["merge"][0]], seeds={"seed": 0}
    )
    return dict(
        cohort_name="demo",
        metrics=metrics,
        patients=patients,
        availability=availability,
        predictions=predictions,
        benchmarks=bench,
        qc_images=[qc],
        provenance=prov,
        synthetic=True,
        training_logs=logs,
    )


def _ci_cell(mean_sd: str, values, n: int) -> str:
    low, high = bootstrap_ci(values, n_boot=1000, seed=0)
    return f"{mean_sd} [{low:.3f}, {high:.3f}] n={n}"


def _section_cells(text: str, anchor: str) -> list[str]:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', text, re.S)
    assert match, f"no section {anchor!r}"
    parser = _Collector()
    parser.feed(match.group(1))
    return parser.cells


def _png_colour_type(data: bytes) -> int:
    assert data.startswith(PNG_MAGIC) and data[12:16] == b"IHDR"
    return data[25]  # 3 = palette, 2 = RGB, 6 = RGBA


def _class_report(tmp_path, metrics, patients, predictions, **kw) -> Path:
    """The report of a small classification cohort without slides, benchmarks or QC."""
    return render_report(
        out_html=tmp_path / "clf.html",
        cohort_name="cls",
        metrics=metrics,
        patients=patients,
        availability=None,
        predictions=predictions,
        benchmarks=None,
        qc_images=[],
        provenance={"timestamp_utc": "2026-01-01T00:00:00+00:00"},
        synthetic=False,
        **kw,
    )


def test_render_report_self_contained(tmp_path):
    inputs = report_inputs(tmp_path)
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
    # mean ± sd of lego_merge c_index over folds 0.71, 0.72, 0.73 with its bootstrap interval
    assert _ci_cell("0.720 ± 0.010", [0.71, 0.72, 0.73], 3) in cells
    # the models table is ranked by mean c_index: merge, wsi_block, <script>x after the oracle
    order = [c for c in cells if c in ("lego_merge", "wsi_block", "<script>x", ORACLE_MODEL)]
    assert order[:4] == [ORACLE_MODEL, "lego_merge", "wsi_block", "<script>x"]
    assert "Oracle c-index" in text and "0.800" in text
    # IBS and time-dependent AUC columns
    models = _section_cells(text, "models")
    assert {"td_auc", "ibs"} <= set(models)
    assert _ci_cell("0.190 ± 0.010", [0.18, 0.19, 0.20], 3) in models
    # counts are totals over the folds (10 validation patients in each of 3), whole numbers
    assert "n_patients" in models and "30" in models and "10.0" not in models
    # cohort summary: patients and events
    n_events = int(inputs["patients"]["event"].sum())
    assert "30" in cells and str(n_events) in cells
    # benchmark rows: train_block 2 jobs, 20 s in all, longest 12.5 s, 321 MB
    bench = _section_cells(text, "benchmarks")
    i = bench.index("train_block")
    assert bench[i : i + 6] == ["train_block", "2", "20.0", "10.0", "12.5", "321.0"]
    assert inputs["provenance"]["config_sha256"] in cells
    # images embedded; at least: 2 metric plots + td_auc + ibs + budget + 3 KM + training + QC
    imgs = [a for tag, a in parser.attrs if tag == "img"]
    assert len(imgs) >= 10
    assert "paired-data budget curve of LegoFuse" in {a["alt"] for a in imgs}
    assert all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    for a in imgs:  # every figure is a palette PNG (a third of the true-colour size)
        assert _png_colour_type(base64.b64decode(a["src"].split(",", 1)[1])) == 3, a["alt"]
    assert len(text) < 400_000
    # no external resources of any kind; links only to the page's own sections
    for tag, attrs in parser.attrs:
        for key in ("src", "href"):
            assert not attrs.get(key, "data:").startswith(("http", "//")), (tag, attrs)
    hrefs = [a["href"] for tag, a in parser.attrs if tag == "a"]
    assert hrefs and all(h.startswith("#") for h in hrefs)
    ids = {a.get("id") for _, a in parser.attrs}
    assert all(h[1:] in ids for h in hrefs)
    assert not re.search(r"https?://", text)
    assert not any(tag == "link" for tag, _ in parser.attrs)
    assert not list(out.parent.glob(".report.html*"))  # no temporary left behind


def test_report_paired_differences_against_best_baseline(tmp_path):
    inputs = report_inputs(tmp_path)
    text = render_report(out_html=tmp_path / "r.html", **inputs).read_text(encoding="utf-8")
    assert "model − wsi_block" in text  # the best non-Lego model by mean c_index
    cells = _section_cells(text, "paired")
    header = ["model", "c_index", "c_index_complete", "td_auc", "ibs"]
    assert cells[:5] == header
    i = cells.index("lego_merge")
    row = dict(zip(header, cells[i : i + len(header)], strict=True))
    assert row["c_index"] == "+0.090 ± 0.000 [+0.090, +0.090] wins 3/3"
    assert row["td_auc"] == "+0.090 ± 0.000 [+0.090, +0.090] wins 3/3"
    assert row["ibs"] == "-0.030 ± 0.000 [-0.030, -0.030] wins 3/3"  # lower IBS wins
    j = cells.index("<script>x")
    assert cells[j + 1] == "-0.070 ± 0.000 [-0.070, -0.070] wins 0/3"
    assert "wsi_block" not in cells and ORACLE_MODEL not in cells
    # a given paired table (the workflow's metrics_paired.tsv) is rendered as given
    given = pd.DataFrame(
        {
            "model": "lego_merge",
            "baseline": "<script>x",
            "metric": "c_index",
            "fold": [0, 1],
            "diff": [0.1, 0.3],
        }
    )
    text = render_report(out_html=tmp_path / "r2.html", **inputs, paired=given).read_text()
    cells = _section_cells(text, "paired")
    assert cells[:2] == ["model", "c_index"] and cells[2] == "lego_merge"
    assert cells[3].startswith("+0.200 ± 0.141 [") and cells[3].endswith("wins 2/2")


def test_compute_cost_merge_fuse_end_to_end(tmp_path):
    inputs = report_inputs(tmp_path)
    cost = compute_cost(inputs["benchmarks"]).set_index("rule")
    assert list(cost.index) == ["train_block", "merge", "fuse", "concat_fusion"]
    assert cost.loc["train_block", "n_jobs"] == 2
    assert cost.loc["train_block", ["wall_s", "cpu_s", "max_rss_mb"]].tolist() == [20, 15, 321]
    # merge and fuse reuse the blocks: their cost including the blocks adds 20 s wall, 15 s CPU
    assert cost.loc["merge", ["wall_s_with_blocks", "cpu_s_with_blocks"]].tolist() == [22, 16.5]
    assert cost.loc["fuse", ["wall_s_with_blocks", "cpu_s_with_blocks"]].tolist() == [24, 18]
    assert cost.loc["concat_fusion", ["wall_s_with_blocks", "cpu_s"]].tolist() == [30, 25]
    # no cpu_time column (older Snakemake): NaN CPU, wall still summed
    old = tmp_path / "old.tsv"
    old.write_text("s\th:m:s\tmax_rss\n5.0\t0:00:05\t10\n")
    cost = compute_cost({"merge": [old]}).set_index("rule")
    assert cost.loc["merge", "wall_s"] == 5.0 and np.isnan(cost.loc["merge", "cpu_s"])
    # an approach of two steps sums both rules' jobs
    two = compute_cost(
        {"slide_means": [old, old], "linear_baseline": [old]},
        approaches=(("Coxnet", "slide_means+linear_baseline", False),),
    )
    assert two["n_jobs"].tolist() == [3] and two["wall_s"].tolist() == [15.0]
    text = render_report(out_html=tmp_path / "r.html", **inputs).read_text(encoding="utf-8")
    cells = _section_cells(text, "compute")
    i = cells.index("LegoMerge (no training)")
    assert cells[i : i + 8] == [
        "LegoMerge (no training)",
        "merge",
        "1",
        "2.0",
        "1.5",
        "250.0",
        "22.0",
        "16.5",
    ]


def test_render_report_real_cohort_and_nan_metric(tmp_path):
    inputs = report_inputs(tmp_path)
    metrics = inputs["metrics"]
    metrics = pd.concat(
        [metrics, pd.DataFrame([("wsi_block", 3, "c_index", np.nan)], columns=metrics.columns)]
    )
    excluded = pd.DataFrame(
        {
            "patient_id": [f"X{i}" for i in range(7)],
            "reason": ["subtype='rare' not in classes ['a', 'b']"] * 6 + ["subtype empty"],
        }
    )
    inputs.update(metrics=metrics, synthetic=False, training_logs=None, benchmarks=None)
    out = render_report(out_html=tmp_path / "real.html", excluded=excluded, **inputs)
    text = out.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    assert "synthetic" not in parser.title.lower()
    assert "Oracle c-index" not in text
    # the NaN fold is skipped in the mean, so wsi_block still shows 3 folds
    assert (
        summarise(metrics).query("model == 'wsi_block' and metric == 'c_index'")["n_folds"].item()
        == 3
    )
    assert _ci_cell("0.630 ± 0.010", [0.62, 0.63, 0.64], 3) in parser.cells
    assert "–" in parser.cells  # the NaN fold renders as a dash in the per-fold table
    assert 'id="compute"' not in text and 'href="#compute"' not in text
    # the patients left out on purpose are counted by reason, with examples
    cohort = _section_cells(text, "cohort")
    i = cohort.index("subtype='rare' not in classes ['a', 'b']")
    assert cohort[i + 1 : i + 3] == ["6", "X0, X1, X2, X3, X4, ..."]
    assert cohort[cohort.index("subtype empty") + 1] == "1"
    assert "7 patient(s) of the input were left out" in text
    plain = render_report(out_html=tmp_path / "none.html", **inputs).read_text(encoding="utf-8")
    assert "Patients left out" not in plain


def test_budget_points_and_km_models():
    inputs_metrics = pd.DataFrame(
        [
            ("lego_fuse_paired50", 0, "c_index", 0.6),
            ("lego_fuse_paired10", 0, "c_index", 0.55),
            ("lego_fuse_paired10", 1, "c_index", np.nan),
            ("lego_fuse", 0, "c_index", 0.7),
            ("lego_fuse_paired50x", 0, "c_index", 0.1),  # not a budget model
            ("coxnet", 0, "c_index", 0.65),
            ("block_a", 0, "c_index", 0.9),
        ],
        columns=["model", "fold", "metric", "value"],
    )
    points = plots.budget_points(inputs_metrics, metric="c_index")
    assert points[["percent", "value"]].values.tolist() == [[10, 0.55], [50, 0.6], [100, 0.7]]
    assert plots.budget_plot(inputs_metrics, metric="c_index").startswith(PNG_MAGIC)
    assert plots.budget_points(
        inputs_metrics[inputs_metrics["model"] == "lego_fuse"], metric="c_index"
    ).empty
    with pytest.raises(ValueError, match="no lego_fuse_paired<pct> model"):
        plots.budget_plot(inputs_metrics, metric="auc")
    pooled = {m: pd.DataFrame() for m in ("block_a", "coxnet", "lego_fuse", "lego_merge", "z")}
    # LegoFuse, LegoMerge and the best baseline (block_a) first, then by c-index
    assert km_models(inputs_metrics, pooled, max_plots=4) == [
        "lego_fuse",
        "lego_merge",
        "block_a",
        "coxnet",
    ]


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
    out = _class_report(tmp_path, metrics, patients, {("clf_a", 0): preds})
    text = out.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    assert _ci_cell("0.850 ± 0.071", [0.9, 0.8], 2) in parser.cells
    assert "x: 1, y: 1" in parser.cells  # label counts in the cohort summary
    # ranked by auc: clf_a first in both tables
    names = [c for c in parser.cells if c.startswith("clf_")]
    assert names[:2] == ["clf_a", "clf_b"] and names[3:5] == ["clf_a", "clf_a"]
    # the paired table between them: clf_b against the best baseline clf_a
    assert names[2] == "clf_b"
    paired = _section_cells(text, "paired")
    assert paired[:3] == ["model", "auc", "clf_b"]
    assert paired[3].startswith("-0.200 ± 0.141 [") and paired[3].endswith("wins 0/2")
    imgs = [a for tag, a in parser.attrs if tag == "img"]
    assert len(imgs) == 1  # the auc plot; no Kaplan-Meier for classification


def test_report_per_class_results(tmp_path):
    """Three classes: the report names them and gives, per model and class, the validation
    patients, the recall of the pooled folds and the one-vs-rest AUC over the folds; fold 1's
    model had no training patient of class c (no prob_c column)."""
    fold0 = pd.DataFrame(
        {
            "patient_id": ["1", "2", "3", "4", "5", "6"],
            "label": ["a", "a", "b", "b", "c", "c"],
            "prob_a": [0.6, 0.3, 0.2, 0.1, 0.3, 0.2],
            "prob_b": [0.3, 0.5, 0.7, 0.2, 0.3, 0.1],
            "prob_c": [0.1, 0.2, 0.1, 0.7, 0.4, 0.7],
        }
    )
    fold1 = pd.DataFrame(
        {
            "patient_id": ["7", "8", "9", "10"],
            "label": ["a", "b", "c", "a"],
            "prob_a": [0.8, 0.4, 0.6, 0.3],
            "prob_b": [0.2, 0.6, 0.4, 0.7],
        }
    )
    patients = pd.concat([fold0, fold1])[["patient_id", "label"]]
    metrics = pd.DataFrame({"model": "clf", "fold": [0, 1], "metric": "auc", "value": 0.7})
    out = _class_report(
        tmp_path, metrics, patients, {("clf", 0): fold0, ("clf", 1): fold1}, task="classification"
    )
    text = out.read_text(encoding="utf-8")
    assert "Classes: a, b, c." in text
    cells = _section_cells(text, "classes")
    header = ["model", "class", "patients", "recall", "auc (one vs rest)"]
    assert cells[:5] == header
    rows = [cells[i : i + 5] for i in range(5, len(cells), 5)]
    assert [r[:3] for r in rows] == [["clf", "a", "4"], ["clf", "b", "3"], ["clf", "c", "3"]]
    # most probable class: fold 0 a, b, b, c, c, c; fold 1 a, b, a, b: a 2/4, b 2/3, c 2/3
    assert [r[3] for r in rows] == ["0.500", "0.667", "0.667"]
    # class a: fold 0 AUC 7.5/8 (its 0.3 ties a c patient's), fold 1 2/4 (0.8, 0.3 against
    # 0.4, 0.6); class c in fold 1: probability 0 for every patient, AUC 0.5
    auc_a = [roc_auc_score([1, 1, 0, 0, 0, 0], fold0["prob_a"]), 0.5]
    assert rows[0][4].startswith(f"{np.mean(auc_a):.3f} ± {np.std(auc_a, ddof=1):.3f}")
    auc_c = [roc_auc_score([0, 0, 0, 0, 1, 1], fold0["prob_c"]), 0.5]
    assert rows[2][4].startswith(f"{np.mean(auc_c):.3f} ± {np.std(auc_c, ddof=1):.3f}")
    assert rows[2][4].endswith("n=2")


def test_shrink_image_for_embedding():
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 255, (800, 1000, 3), dtype=np.uint8))
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    data = buf.getvalue()
    small = shrink_image(data, max_side=540)
    with Image.open(io.BytesIO(small)) as img:
        assert img.size == (540, 432) and img.mode == "P"
    assert len(small) < len(data)
    assert shrink_image(data, max_side=None) == data
    assert shrink_image(small, max_side=540) == small  # small enough: untouched
    assert shrink_image(b"not an image", max_side=10) == b"not an image"
    jpg = io.BytesIO()
    big.save(jpg, format="JPEG", quality=95)
    assert shrink_image(jpg.getvalue(), max_side=300).startswith(b"\xff\xd8\xff")
