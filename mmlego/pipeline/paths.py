"""Every output path of a cohort's run, built and parsed in one place.

``Paths(results)`` with ``results = results/<cohort>``. Each method returns a path string; a
default argument of the form ``"{fold}"`` leaves a Snakemake wildcard in it, so rules and
scripts use the same methods::

    paths.predictions("lego_fuse")          # results/demo/predictions/lego_fuse/fold{fold}.tsv
    paths.predictions("lego_fuse", 3)       # results/demo/predictions/lego_fuse/fold3.tsv
    paths.parse_predictions(p)              # ("lego_fuse", 3)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from mmlego.pipeline.models import spec_of

FOLD = "{fold}"
MODALITY = "{modality}"
_FOLD_FILE = re.compile(r"fold(\d+)")


@dataclass(frozen=True)
class Paths:
    """Output paths under ``results`` (``results/<cohort>``)."""

    results: str

    @classmethod
    def for_cohort(cls, cohort: str, *, root: str = "results") -> Paths:
        """The paths of ``cohort`` under the results folder ``root`` (``<root>/<cohort>``)."""
        return cls(f"{str(root).rstrip('/')}/{cohort}")

    # ---------------------------------------------------------------- logs and benchmarks
    @property
    def logs(self) -> str:
        return f"{self.results}/logs"

    @property
    def benchmarks(self) -> str:
        return f"{self.results}/benchmarks"

    def log(self, rule: str, key: str | None = None) -> str:
        return f"{self.logs}/{rule}.log" if key is None else f"{self.logs}/{rule}/{key}.log"

    def benchmark(self, rule: str, key: str | None = None) -> str:
        base = self.benchmarks
        return f"{base}/{rule}.tsv" if key is None else f"{base}/{rule}/{key}.tsv"

    # ---------------------------------------------------------------- stages
    def split(self, fold: int | str = FOLD) -> str:
        return f"{self.results}/splits/fold{fold}.tsv"

    def omics(self, modality: str = MODALITY, fold: int | str = FOLD) -> str:
        return f"{self.results}/omics/{modality}/fold{fold}.npz"

    @property
    def patient_bags(self) -> str:
        return f"{self.results}/wsi/patient_bags.h5"

    @property
    def wsi_qc(self) -> str:
        return f"{self.results}/wsi/qc.tsv"

    @property
    def slide_means(self) -> str:
        return f"{self.results}/baselines/slide_means.tsv"

    def embeddings(self, modality: str = MODALITY, fold: int | str = FOLD) -> str:
        return f"{self.results}/baselines/embeddings/{modality}/fold{fold}.tsv"

    @property
    def availability(self) -> str:
        return f"{self.results}/availability.tsv"

    @property
    def metrics(self) -> str:
        return f"{self.results}/metrics.tsv"

    @property
    def metrics_summary(self) -> str:
        return f"{self.results}/metrics_summary.tsv"

    @property
    def metrics_paired(self) -> str:
        return f"{self.results}/metrics_paired.tsv"

    @property
    def report(self) -> str:
        return f"{self.results}/report.html"

    # ---------------------------------------------------------------- models
    def predictions(self, model: str, fold: int | str = FOLD) -> str:
        spec_of(model)  # an unknown model is an error here, not a missing file later
        return f"{self.results}/predictions/{model}/fold{fold}.tsv"

    def _artifacts(self, model: str) -> str:
        spec, params = spec_of(model)
        if spec.artifacts is None:
            raise KeyError(f"model {model!r} keeps no model file or history")
        return f"{self.results}/{spec.artifacts.format(**params)}"

    def model_file(self, model: str, fold: int | str = FOLD) -> str:
        return f"{self._artifacts(model)}/fold{fold}.pt"

    def history(self, model: str, fold: int | str = FOLD) -> str:
        if not spec_of(model)[0].history:
            raise KeyError(f"model {model!r} writes no training history")
        return f"{self._artifacts(model)}/fold{fold}.history.tsv"

    def selection(self, model: str, fold: int | str = FOLD) -> str:
        """The settings raced for a model in a fold and the one chosen
        (:mod:`mmlego.pipeline.selection`)."""
        if not spec_of(model)[0].selects:
            raise KeyError(f"model {model!r} chooses no settings")
        return f"{self._artifacts(model)}/fold{fold}.selection.tsv"

    def cv(self, model: str, fold: int | str = FOLD) -> str:
        """The inner cross-validation table of a penalised model."""
        return f"{self._artifacts(model)}/fold{fold}.cv.tsv"

    # ---------------------------------------------------------------- parsing
    @staticmethod
    def parse_predictions(path: str | PurePath) -> tuple[str, int]:
        """``(model, fold)`` of a file written at :meth:`predictions`."""
        p = PurePath(path)
        match = _FOLD_FILE.fullmatch(p.stem)
        if p.parent.parent.name != "predictions" or not match or p.suffix != ".tsv":
            raise ValueError(f"{path}: not a predictions/<model>/fold<k>.tsv file")
        spec_of(p.parent.name)
        return p.parent.name, int(match.group(1))

    def parse_benchmark(self, path: str | PurePath) -> str:
        """The rule of a file written at :meth:`benchmark`."""
        p, base = PurePath(path), PurePath(self.benchmarks)
        if p.suffix != ".tsv" or base not in p.parents:
            raise ValueError(f"{path}: not a benchmark file under {self.benchmarks}")
        return p.stem if p.parent == base else p.parent.name

    def parse_model_file(self, path: str | PurePath, model: str) -> int:
        """The fold of a file written at :meth:`model_file` or :meth:`history` of ``model``."""
        p = PurePath(path)
        match = _FOLD_FILE.fullmatch(p.name.split(".", 1)[0])
        if not match or str(p.parent) != str(PurePath(self._artifacts(model))):
            raise ValueError(f"{path}: not a file of model {model!r}")
        return int(match.group(1))
