"""The workflow's single source of names: models, output paths and fold roles.

Torch-free, so that rules, scripts, the evaluation, the report and the cluster profile's tests
all take their names from here:

- :mod:`mmlego.pipeline.models`: the model registry (name, rule, task, GPU, history, label);
- :mod:`mmlego.pipeline.paths`: every output path of a cohort, built and parsed in one place;
- :mod:`mmlego.pipeline.fold`: a fold's patient roles and what each role is used for.
"""

from mmlego.pipeline.fold import Fold, Role
from mmlego.pipeline.models import MODELS, ModelSpec, model_names, spec_of
from mmlego.pipeline.paths import Paths

__all__ = ["MODELS", "Fold", "ModelSpec", "Paths", "Role", "model_names", "spec_of"]
