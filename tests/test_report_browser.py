"""The report is a web page: render it in headless Chromium and check what a reader would see.

Chromium comes from Debian's ``chromium`` package. Without it the test is skipped, unless
``CI`` is set: then the session fixture installs it (as root, with apt-get, bounded by a
timeout; a no-op when it is already there) and fails with the reason if it cannot.

Artifacts (kept for a person to look at) go to ``test-artifacts/report_browser/`` in the
repository root: the rendered report, Chromium's DOM dump, the probe's findings and the
screenshot ``report.png``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_report import report_inputs
from workflow_utils import APT_LOCK, locked

from mmlego.evaluation.evaluate import ORACLE_MODEL
from mmlego.evaluation.metrics import bootstrap_ci
from mmlego.report.html import render_report

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "report_browser"
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
APT_INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
APT_TIMEOUT_S = 600
CHROMIUM_TIMEOUT_S = 120
WINDOW = (1280, 2400)
#: The synthetic-data banner's background (#fff3cd): proves the inline CSS was applied.
BANNER_RGB = (255, 243, 205)


def _find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _apt_install_chromium() -> str:
    """Install Debian's chromium with apt-get (root only); return a failure reason or ''."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root or no apt-get; install it with: " + " ".join(APT_INSTALL)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = []
    # a fresh container may have no package lists yet: update once if the install fails
    for cmd in (APT_INSTALL, ["apt-get", "update"], APT_INSTALL):
        try:
            done = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            return f"{' '.join(cmd)} timed out after {APT_TIMEOUT_S} s"
        log.append(f"$ {' '.join(cmd)} -> {done.returncode}\n{done.stderr[-1500:]}")
        if cmd is APT_INSTALL and done.returncode == 0 and _find_chromium():
            return ""
    return "apt-get could not install chromium:\n" + "\n".join(log)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the chromium executable; installed on CI when missing (idempotent)."""
    exe = _find_chromium()
    if exe:
        return exe
    if not IN_CI:
        pytest.skip(
            "chromium is not on PATH (Debian: apt-get install -y --no-install-recommends "
            "chromium); the browser test runs whenever CI is set"
        )
    with locked(APT_LOCK):  # another test may be installing packages at the same time
        reason = "" if _find_chromium() else _apt_install_chromium()
    exe = _find_chromium()
    if exe is None:
        pytest.fail(f"CI is set but chromium is unavailable: {reason}")
    return exe


def _run_chromium(exe: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on a local file, with a fresh profile and no network chatter."""
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",  # small /dev/shm in containers crashes big pages
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=5000",  # let layout, image decoding and onload finish
        *args,
        page.as_uri(),
    ]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise AssertionError(f"chromium timed out after {CHROMIUM_TIMEOUT_S} s: {cmd}") from err
    assert done.returncode == 0, f"chromium failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


#: Injected into a copy of the page only (the report itself has no scripts): after load it
#: reports every image's decoded size, the tables and whether the page overflows sideways.
PROBE = """<script>
window.addEventListener('load', () => {
  const out = {
    images: Array.from(document.images).map(i => ({
      alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
      shown: i.getBoundingClientRect().width, data: i.src.startsWith('data:image/')})),
    tables: Array.from(document.querySelectorAll('section table')).map(
      t => t.closest('section').id),
    overflow: document.documentElement.scrollWidth - window.innerWidth,
  };
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


class _Cells(HTMLParser):
    """Tags with attributes and the text of each table cell."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.cells: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("td", "th"):
            self._depth += 1
            self.cells.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.cells[-1] += data


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, chromium):
    """The report of a small synthetic cohort rendered by Chromium: DOM, probe and screenshot."""
    work = tmp_path_factory.mktemp("browser")
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    inputs = report_inputs(work)
    page = render_report(out_html=ARTIFACTS / "report.html", **inputs)
    text = page.read_text(encoding="utf-8")

    shot = ARTIFACTS / "report.png"
    _run_chromium(chromium, page, work / "profile-shot", f"--screenshot={shot}")
    dom = _run_chromium(chromium, page, work / "profile-dom", "--dump-dom").stdout
    (ARTIFACTS / "dom.html").write_text(dom, encoding="utf-8")

    probe_page = work / "probe.html"
    probe_page.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    probe_dom = _run_chromium(chromium, probe_page, work / "profile-probe", "--dump-dom").stdout
    match = re.search(r'<pre id="probe">(.*?)</pre>', probe_dom, re.S)
    assert match, "the probe script did not run (no #probe element in the DOM dump)"
    probe = json.loads(html.unescape(match.group(1)))
    (ARTIFACTS / "probe.json").write_text(json.dumps(probe, indent=1), encoding="utf-8")
    return {"inputs": inputs, "html": text, "dom": dom, "probe": probe, "shot": shot}


def test_dom_has_tables_with_models_and_values(rendered):
    parser = _Cells()
    parser.feed(rendered["dom"])
    tables = [a for tag, a in parser.tags if tag == "table"]
    assert len(tables) >= 8  # cohort (3), models, paired, per fold, compute, run times, provenance
    for model in ("lego_merge", "wsi_block", "<script>x", ORACLE_MODEL):
        assert model in parser.cells
    low, high = bootstrap_ci([0.71, 0.72, 0.73], n_boot=1000, seed=0)
    assert f"0.720 ± 0.010 [{low:.3f}, {high:.3f}] n=3" in parser.cells
    assert "+0.090 ± 0.000 [+0.090, +0.090] wins 3/3" in parser.cells  # vs the best baseline
    assert not any(tag == "script" for tag, _ in parser.tags)  # the page itself has none


def test_dom_images_are_data_uris_and_decode(rendered):
    parser = _Cells()
    parser.feed(rendered["dom"])
    imgs = [a for tag, a in parser.tags if tag == "img"]
    assert len(imgs) >= 10
    assert all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    probe = rendered["probe"]
    assert len(probe["images"]) == len(imgs)
    for img in probe["images"]:  # decoded by the browser, with a real size, and displayed
        assert img["data"] and img["complete"], img
        assert img["w"] > 100 and img["h"] > 100, img
        assert 50 < img["shown"] <= WINDOW[0], img
    sections = set(probe["tables"])
    assert {"cohort", "models", "paired", "folds", "compute", "benchmarks"} <= sections
    assert probe["overflow"] <= 0, "the page scrolls sideways (a figure or table too wide)"


def test_screenshot_is_a_rendered_page(rendered):
    with Image.open(rendered["shot"]) as img:
        assert img.size == WINDOW
        rgb = np.asarray(img.convert("RGB"))  # (h, w, 3)
    flat = rgb.reshape(-1, 3)
    colours = np.unique(flat[::7], axis=0)
    assert len(colours) > 50, f"screenshot nearly blank: {len(colours)} colours"
    non_white = np.mean(np.any(flat < 245, axis=1))
    assert 0.02 < non_white < 0.9, f"{non_white:.1%} of the screenshot is not white"
    # the inline CSS applied: the synthetic-data banner's background is on screen, near the top
    banner = np.all(rgb[:400] == BANNER_RGB, axis=-1)
    assert banner.sum() > 5000, "synthetic banner (CSS background #fff3cd) not rendered"
    assert rendered["shot"].stat().st_size > 50_000
