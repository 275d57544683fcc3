"""LegoMerge: combine separately trained LegoBlocks with no training and no paired data.

For each patient, over the modalities it has (weights w_m >= 0 renormalised over them)::

    |z|   = 1 / sum_m w_m / max(|z_m|, eps)          # weighted harmonic mean of magnitudes
    arg z = angle(sum_m w_m exp(i arg z_m))          # weighted circular mean of phases
    logits = Head_merged(Re z)

(or the weighted mean, the sum or the product of the z_m; or the balanced mean, the weighted mean
of the z_m each divided by the spread of its readout, ``z = sum_m w_m z_m / s_m * sum_m w_m s_m``
with ``s_m`` the standard deviation over l_d of the channel mean of Re z_m, the vector the
head's LayerNorm normalises: every block then counts by its weight whatever its scale). Heads
are merged parameter tensor by parameter tensor: SLERP for two, its order-independent
generalisation (the weighted spherical / Karcher mean of the directions, norms averaged
linearly) for N, or linear averaging.
Blocks are kept in sorted name order, so the order of any mapping passed in never matters.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from mmlego.config import MIN_MODALITIES
from mmlego.models.lego_block import LatentHead, LegoBlock, readout

LATENT_MERGES = ("harmonic", "mean", "balanced", "sum", "product")
HEAD_MERGES = ("slerp", "linear")
Inputs = Mapping[str, tuple[torch.Tensor, torch.Tensor | None]]


# --------------------------------------------------------------------------- tensor merges
def _angle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Angle between unit vectors along the last axis, accurate near 0 and pi."""
    return 2 * torch.atan2((u - v).norm(dim=-1), (u + v).norm(dim=-1))


def slerp(
    a: torch.Tensor, b: torch.Tensor, t: float, *, eps: float = 1e-12, parallel_tol: float = 1e-6
) -> torch.Tensor:
    """Spherical interpolation of two tensors (as flat vectors), norms interpolated linearly.

    ``t = 0`` gives ``a``, ``t = 1`` gives ``b``. Falls back to ``(1-t) a + t b`` when either
    tensor is (nearly) zero or the two are (nearly) parallel or anti-parallel.
    """
    if a.shape != b.shape:
        raise ValueError(f"slerp: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    x, y = a.detach().reshape(-1).double(), b.detach().reshape(-1).double()
    linear = ((1 - t) * x + t * y).reshape(a.shape).to(a.dtype)
    na, nb = x.norm(), y.norm()
    if min(float(na), float(nb)) <= eps:
        return linear
    ua, ub = x / na, y / nb
    omega = float(_angle(ua, ub))
    if omega < parallel_tol or math.pi - omega < parallel_tol:
        return linear
    direction = (math.sin((1 - t) * omega) * ua + math.sin(t * omega) * ub) / math.sin(omega)
    out = ((1 - t) * na + t * nb) * direction
    return out.reshape(a.shape).to(a.dtype)


def _as_weights(weights: Sequence[float] | torch.Tensor, n: int) -> torch.Tensor:
    w = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if w.numel() != n or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"need {n} finite weights >= 0, got {w.tolist()}")
    if float(w.sum()) <= 0:
        raise ValueError(f"weights sum to zero: {w.tolist()}")
    return w / w.sum()


def block_weights(
    weights: Mapping[str, float] | None, names: Sequence[str], *, what: str = "weights"
) -> dict[str, float]:
    """``weights`` (block name -> finite weight >= 0, not all 0; None: equal) as a dict in the
    order of ``names``, checked to name exactly the blocks ``names``."""
    given = dict.fromkeys(names, 1.0) if weights is None else dict(weights)
    if sorted(given) != sorted(names):
        raise ValueError(
            f"{what} must name exactly the blocks {sorted(names)}, got {sorted(given)}"
        )
    _as_weights([given[n] for n in names], len(names))
    return {n: float(given[n]) for n in names}


def linear_mean(
    tensors: Sequence[torch.Tensor], weights: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Weighted average of same-shaped tensors (weights renormalised to sum to 1)."""
    w = _as_weights(weights, len(tensors))
    x = torch.stack([t.detach().double() for t in tensors])  # (N, ...)
    return torch.tensordot(w.to(x.device), x, dims=1).to(tensors[0].dtype)


def spherical_mean(
    tensors: Sequence[torch.Tensor],
    weights: Sequence[float] | torch.Tensor,
    *,
    eps: float = 1e-12,
    parallel_tol: float = 1e-6,
    tol: float = 1e-12,
    max_iter: int = 200,
) -> torch.Tensor:
    """Weighted spherical (Karcher) mean of N tensors' directions times their mean norm.

    Minimises ``sum_i w_i d(x, u_i)^2`` over the unit sphere (geodesic distance ``d``, unit
    directions ``u_i``) by Riemannian fixed-point iteration from the normalised linear mean; the
    norm is the weighted mean of the norms. For N = 2 with weights (1-t, t) this is
    ``slerp(a, b, t)``. Symmetric in its inputs. Same fallback to the weighted linear mean as
    :func:`slerp` (a zero tensor, all directions nearly parallel, or an anti-parallel pair).
    """
    w_all = _as_weights(weights, len(tensors))
    keep = [i for i in range(len(tensors)) if float(w_all[i]) > 0]
    tensors, w = [tensors[i] for i in keep], w_all[keep]
    shape, dtype = tensors[0].shape, tensors[0].dtype
    if any(t.shape != shape for t in tensors):
        raise ValueError(f"spherical_mean: shapes differ: {[tuple(t.shape) for t in tensors]}")
    x = torch.stack([t.detach().reshape(-1).double() for t in tensors])  # (N, D)
    w = w.to(x.device)
    linear = (w @ x).reshape(shape).to(dtype)
    if len(tensors) == 1:
        return linear
    norms = x.norm(dim=1)  # (N,)
    if float(norms.min()) <= eps:
        return linear
    u = x / norms[:, None]  # (N, D) unit directions
    pair = _angle(u[:, None, :], u[None, :, :])  # (N, N)
    if float(pair.max()) < parallel_tol or math.pi - float(pair.max()) < parallel_tol:
        return linear
    mean = w @ u
    mean = mean / mean.norm()  # (D,)
    for _ in range(max_iter):
        theta = _angle(u, mean[None])  # (N,)
        cos = u @ mean  # (N,)
        scale = torch.where(theta > 1e-15, theta / torch.sin(theta), torch.ones_like(theta))
        v = ((w * scale)[:, None] * (u - cos[:, None] * mean[None])).sum(0)  # tangent (D,)
        nv = float(v.norm())
        if nv < tol:
            break
        mean = math.cos(nv) * mean + math.sin(nv) * v / nv
        mean = mean / mean.norm()
    else:
        warnings.warn(f"spherical_mean did not converge in {max_iter} iterations", stacklevel=2)
    return (float(w @ norms) * mean).reshape(shape).to(dtype)


def merge_tensors(
    tensors: Sequence[torch.Tensor], weights: Sequence[float] | torch.Tensor, *, method: str
) -> torch.Tensor:
    """Merge same-shaped parameter tensors: 'slerp' (spherical mean) or 'linear'."""
    if method == "slerp":
        return spherical_mean(tensors, weights)
    if method == "linear":
        return linear_mean(tensors, weights)
    raise ValueError(f"unknown head merge {method!r}; choose from {HEAD_MERGES}")


def merge_state(
    modules: Sequence[nn.Module], weights: Sequence[float] | torch.Tensor, *, method: str
) -> dict[str, torch.Tensor]:
    """Merged parameters and buffers of same-architecture modules, name by name."""
    states = [dict(m.named_parameters()) | dict(m.named_buffers()) for m in modules]
    names = list(states[0])
    for s in states[1:]:
        if list(s) != names or any(s[k].shape != states[0][k].shape for k in names):
            raise ValueError("cannot merge modules with different parameter names or shapes")
    return {k: merge_tensors([s[k] for s in states], weights, method=method) for k in names}


def merged_head(
    blocks: Sequence[LegoBlock], weights: Sequence[float] | torch.Tensor, *, method: str
) -> LatentHead:
    """A new head module holding the merge of the blocks' heads."""
    head = copy.deepcopy(blocks[0].head_module)
    merged = merge_state([b.head_module for b in blocks], weights, method=method)
    with torch.no_grad():
        for name, value in (dict(head.named_parameters()) | dict(head.named_buffers())).items():
            value.copy_(merged[name])
    return head


def score_weights(
    scores: Mapping[str, float], *, chance: float = 0.5, floor: float = 0.0
) -> dict[str, float]:
    """Merge weights from each block's own held-out score (no paired data needed).

    ``g_m = max(score_m - chance, 0)``, ``w_m = g_m / sum_k g_k + floor``, renormalised to sum
    to 1: a block at or below chance (or without a score, NaN) gets weight ``floor`` before the
    renormalisation (0 by default), the others weight in proportion to how far they are above
    chance, plus ``floor``. When no block is above chance the weights are
    equal. Any number M >= 1 of blocks.
    """
    if not scores:
        raise ValueError("score_weights: no scores")
    if floor < 0:
        raise ValueError(f"score_weights: floor must be >= 0, got {floor}")
    gain = {
        m: max(float(s) - chance, 0.0) if math.isfinite(float(s)) else 0.0
        for m, s in scores.items()
    }
    total = sum(gain.values())
    if total <= 0:
        return {m: 1.0 / len(scores) for m in scores}
    raw = {m: g / total + floor for m, g in gain.items()}
    norm = sum(raw.values())
    return {m: w / norm for m, w in raw.items()}


# --------------------------------------------------------------------------- latent merges
def merge_latents(
    latents: Sequence[torch.Tensor],
    weights: Sequence[float] | torch.Tensor,
    *,
    method: str = "harmonic",
    eps: float = 1e-8,
) -> torch.Tensor:
    """Merge complex latents z_m (each (b, l_c, l_d)) with weights renormalised to sum to 1.

    'harmonic': harmonic mean of magnitudes, circular mean of phases; 'mean': weighted mean;
    'balanced': weighted mean of the latents each scaled to one readout spread (module docs),
    the weighted mean spread restored; 'sum' and 'product': plain sum / product (weights
    unused).
    """
    z = torch.stack(list(latents))  # (N, b, l_c, l_d) complex
    if method in ("sum", "product"):
        return z.sum(0) if method == "sum" else z.prod(0)
    w = _as_weights(weights, z.shape[0]).to(device=z.device, dtype=z.real.dtype)
    w = w.view(-1, *([1] * (z.dim() - 1)))  # (N, 1, 1, 1)
    if method == "mean":
        return (w * z).sum(0)
    if method == "balanced":
        spread = readout(z.real).std(dim=-1, correction=0).clamp_min(eps)  # (N, b)
        spread = spread[..., None, None]  # (N, b, 1, 1)
        return (w * z / spread).sum(0) * (w * spread).sum(0)
    if method == "harmonic":
        magnitude = 1.0 / (w / z.abs().clamp_min(eps)).sum(0)  # (b, l_c, l_d)
        phase = torch.angle((w * torch.polar(torch.ones_like(z.real), torch.angle(z))).sum(0))
        return torch.polar(magnitude, phase)
    raise ValueError(f"unknown latent merge {method!r}; choose from {LATENT_MERGES}")


# --------------------------------------------------------------------------- presence
def presence_matrix(
    inputs: Inputs, present: Mapping[str, torch.Tensor] | None, names: Sequence[str]
) -> torch.Tensor:
    """(b, M) bool: which of the modalities ``names`` each batch row has; validated."""
    missing = [m for m in names if m not in inputs]
    if missing:
        raise ValueError(f"no input for modalities {missing}; inputs given: {sorted(inputs)}")
    sizes = {m: int(inputs[m][0].shape[0]) for m in names}
    b = sizes[names[0]]
    if any(s != b for s in sizes.values()):
        raise ValueError(f"inputs have different batch sizes: {sizes}")
    device = inputs[names[0]][0].device
    if present is None:
        return torch.ones(b, len(names), dtype=torch.bool, device=device)
    missing = [m for m in names if m not in present]
    if missing:
        raise ValueError(f"`present` lacks modalities {missing}")
    cols = []
    for m in names:
        p = torch.as_tensor(present[m], device=device)
        if p.shape != (b,):
            raise ValueError(f"present[{m!r}] has shape {tuple(p.shape)}, expected ({b},)")
        cols.append(p.bool())
    mat = torch.stack(cols, dim=1)  # (b, M)
    none = ~mat.any(dim=1)
    if bool(none.any()):
        raise ValueError(
            f"batch rows {none.nonzero().flatten().tolist()[:5]} have none of the modalities "
            f"{list(names)}"
        )
    return mat


def select_rows(
    x: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rows ``rows`` of an input and its mask (no copy when all rows are selected in order)."""
    if rows.numel() == x.shape[0] and bool(
        (rows == torch.arange(x.shape[0], device=rows.device)).all()
    ):
        return x, mask
    return x.index_select(0, rows), None if mask is None else mask.index_select(0, rows)


def check_compatible(blocks: Mapping[str, LegoBlock], *, what: str) -> None:
    """At least :data:`~mmlego.config.MIN_MODALITIES` blocks, sharing the latent shape and the
    number of outputs."""
    if len(blocks) < MIN_MODALITIES:
        raise ValueError(f"{what} needs at least {MIN_MODALITIES} blocks, got {list(blocks)}")
    for name, block in blocks.items():
        if not isinstance(block, LegoBlock):
            raise ValueError(f"{what}: block {name!r} is a {type(block).__name__}, not a LegoBlock")
    shapes = {n: (b.latent_shape, b.n_outputs) for n, b in blocks.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{what}: blocks differ in ((l_c, l_d), n_outputs): {shapes}")


# --------------------------------------------------------------------------- LegoMerge
class LegoMerge(nn.Module):
    """Merge of N >= 2 trained LegoBlocks; no parameters of its own, no training.

    Parameters
    ----------
    blocks
        Modality name -> trained block (kept, not copied). Same latent shape and outputs.
    latent_merge
        'harmonic' (default), 'mean', 'balanced', 'sum' or 'product'.
    head_merge
        'slerp' (spherical mean for N heads) or 'linear'.
    weights
        Modality name -> weight >= 0 (default equal); renormalised per patient over the
        modalities it has.
    eps
        Floor on latent magnitudes in the harmonic mean.
    """

    def __init__(
        self,
        blocks: Mapping[str, LegoBlock],
        *,
        latent_merge: str = "harmonic",
        head_merge: str = "slerp",
        weights: Mapping[str, float] | None = None,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        check_compatible(blocks, what="LegoMerge")
        if latent_merge not in LATENT_MERGES:
            raise ValueError(f"unknown latent_merge {latent_merge!r}; choose from {LATENT_MERGES}")
        if head_merge not in HEAD_MERGES:
            raise ValueError(f"unknown head_merge {head_merge!r}; choose from {HEAD_MERGES}")
        names = sorted(blocks)
        self.blocks = nn.ModuleDict({n: blocks[n] for n in names})
        self.latent_merge, self.head_merge, self.eps = latent_merge, head_merge, eps
        self.weights = block_weights(weights, names)

    @property
    def names(self) -> list[str]:
        return list(self.blocks)

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able dict rebuilding this merge with :meth:`from_config`."""
        return {
            "type": "LegoMerge",
            "blocks": {n: b.config for n, b in self.blocks.items()},
            "latent_merge": self.latent_merge,
            "head_merge": self.head_merge,
            "weights": dict(self.weights),
            "eps": self.eps,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LegoMerge:
        blocks = {n: LegoBlock.from_config(c) for n, c in config["blocks"].items()}
        return cls(
            blocks,
            latent_merge=config["latent_merge"],
            head_merge=config["head_merge"],
            weights=config["weights"],
            eps=config["eps"],
        )

    def _logits(self, members: Sequence[str], latents: Sequence[torch.Tensor]) -> torch.Tensor:
        """Merged logits of rows sharing the same present modalities ``members``."""
        if len(members) == 1:
            return self.blocks[members[0]].head(latents[0].real)
        w = [self.weights[m] for m in members]
        if sum(w) <= 0:  # only blocks weighted 0 here: they count equally among themselves
            w = [1.0] * len(members)
        z = merge_latents(latents, w, method=self.latent_merge, eps=self.eps)
        heads = [self.blocks[m].head_module for m in members]
        params = merge_state(heads, w, method=self.head_merge)
        return functional_call(heads[0], params, (z.real,))

    def forward(
        self, inputs: Inputs, present: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Merged logits (b, n_outputs).

        Parameters
        ----------
        inputs
            Modality name -> (x, mask | None), every x with the same batch size b; rows of a
            patient without the modality are never read. Extra modalities are ignored.
        present
            Modality name -> bool (b,), True where the patient has it (default: all).
        """
        names = self.names
        pres = presence_matrix(inputs, present, names)  # (b, M)
        latents: dict[str, torch.Tensor] = {}
        for i, m in enumerate(names):
            rows = pres[:, i].nonzero().flatten()
            if rows.numel():
                latents[m] = self.blocks[m].latent(*select_rows(*inputs[m], rows))  # (k_m, ...)
        pos = pres.long().cumsum(0) - 1  # (b, M): row index within each modality's subset
        codes = (pres.long() << torch.arange(len(names), device=pres.device)).sum(1)  # (b,)
        out = None
        for code in codes.unique().tolist():
            rows = (codes == code).nonzero().flatten()
            members = [i for i in range(len(names)) if code >> i & 1]
            zs = [latents[names[i]].index_select(0, pos[rows, i]) for i in members]
            logits = self._logits([names[i] for i in members], zs)  # (k, n_outputs)
            if out is None:
                out = logits.new_zeros(pres.shape[0], logits.shape[1])
            out = out.index_copy(0, rows, logits)
        return out
