"""Neural patch encoders (torch): ResNet50 truncated after layer3, timm models, TorchScript files.

All of them follow the :class:`mmlego.wsi.encoders.Encoder` protocol: ``(n, h, w, 3)`` uint8 RGB
tiles (numpy or torch) in, ``(n, dim)`` float32 numpy out. The tiles are scaled to 0..1,
optionally resized (``img_size``, bilinear with antialiasing), normalised with the model's mean
and standard deviation (ImageNet's by default) and run under :func:`torch.inference_mode`, with
automatic mixed precision on CUDA (``precision='auto'``: float16; ``'bf16'``, ``'fp32'``).

Weights are read from local files only, never downloaded unless ``allow_download=True``:

- ``resnet50_trunc``: :class:`ResNet50Trunc`, torchvision's ResNet50 up to ``layer3`` followed
  by global average pooling (1024 features; the baseline of CLAM and most MIL papers). Its
  parameters carry torchvision's names, so torchvision's ImageNet file loads into it (``fc`` and
  ``layer4`` entries are ignored). The file comes from the ``weights`` option or else from
  ``$TORCH_HOME/hub/checkpoints/resnet50-*.pth`` (torch's cache, where
  ``torchvision.models.resnet50(weights=...)`` leaves it; :data:`RESNET50_FILES` gives the
  preference order).
- ``timm:<model name>``: any timm model created with ``num_classes=0`` (pooled features), with
  ``model_kwargs`` and the state dict of the local file ``weights``; needs the ``timm`` package.
  ``uni`` is the preset for UNI (``vit_large_patch16_224``, ``init_values=1e-5``,
  ``dynamic_img_size=True``, 224 px, 1024 features) with its ``pytorch_model.bin``.
- ``torchscript:<path>``: a TorchScript file (``torch.jit.save``) that maps a normalised
  ``(b, 3, h, w)`` float batch to ``(b, dim)`` features: the way to run any other model
  (CONCH, Virchow, an in-house network) without its code. Needs neither timm nor torchvision.
- ``checkpoint:<path>``: a TorchScript file as above, or a state dict with the timm architecture
  named by the ``arch`` option.

Checkpoints are loaded with ``torch.load(..., weights_only=True)`` (tensors and plain containers
only) or :func:`torch.jit.load`; nothing here unpickles arbitrary objects.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: torchvision's ResNet50 ImageNet files, in order of preference when several are cached:
#: the original weights (used by CLAM's ``resnet50_trunc``), torchvision's V1 re-release, V2.
RESNET50_FILES = ("resnet50-19c8e357.pth", "resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth")
RESNET50_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"


class MissingWeightsError(FileNotFoundError):
    """A model's weights file is not where it was looked for; the message says where to put it."""


class MissingDependencyError(ImportError):
    """An encoder needs a package that is not installed; the message says what to install."""


def checkpoint_dir() -> Path:
    """torch's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


# --- ResNet50 truncated after layer3 ---------------------------------------------------------


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck block (v1.5: the stride sits on the 3 x 3 convolution)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1) -> None:
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * self.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * self.expansion),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50Trunc(nn.Module):
    """ResNet50 (layers 3, 4, 6 of torchvision's 3, 4, 6, 3) + global average pooling.

    ``(b, 3, h, w)`` normalised images -> ``(b, 1024)``. Parameter names match torchvision's
    ``resnet50`` (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ...).
    """

    dim = 1024

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._layer(64, 64, blocks=3, stride=1)
        self.layer2 = self._layer(256, 128, blocks=4, stride=2)
        self.layer3 = self._layer(512, 256, blocks=6, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)

    @staticmethod
    def _layer(inplanes: int, planes: int, *, blocks: int, stride: int) -> nn.Sequential:
        layers = [Bottleneck(inplanes, planes, stride=stride)]
        layers += [Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (b, 64, h/4, w/4)
        x = self.layer3(self.layer2(self.layer1(x)))  # (b, 1024, h/16, w/16)
        return torch.flatten(self.pool(x), 1)  # (b, 1024)


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a ``torch.save`` file, loaded with ``weights_only=True``.

    Accepts a plain state dict or one nested under ``state_dict`` / ``model``; strips a
    ``module.`` prefix (DataParallel). Errors name the file.
    """
    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MissingWeightsError(f"weights file not found: {p}") from None
    except Exception as e:  # pickle errors, truncated files, not a torch file
        raise ValueError(
            f"{p}: cannot read as a state dict with torch.load(weights_only=True): {e}"
        ) from e
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{p}: not a state dict (a mapping of parameter names to tensors)")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def resnet50_weights_path(
    weights: str | os.PathLike | None = None, *, allow_download: bool = False
) -> Path:
    """The ImageNet ResNet50 file to load: ``weights`` if given, else one in torch's cache.

    Raises :class:`MissingWeightsError` saying where to put the file when there is none (or
    downloads torchvision's file into the cache when ``allow_download``).
    """
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise MissingWeightsError(
                f"ResNet50 weights file not found: {p} (the encoder option 'weights')"
            )
        return p
    cache = checkpoint_dir()
    found = sorted(cache.glob("resnet50-*.pth"))
    for name in RESNET50_FILES:
        if (cache / name).is_file():
            return cache / name
    if found:
        return found[0]
    if allow_download:
        cache.mkdir(parents=True, exist_ok=True)
        dest = cache / Path(RESNET50_URL).name
        log.info("downloading %s to %s", RESNET50_URL, dest)
        torch.hub.download_url_to_file(RESNET50_URL, str(dest), progress=False)
        return dest
    raise MissingWeightsError(
        "ResNet50 ImageNet weights not found: no resnet50-*.pth in "
        f"{cache} ($TORCH_HOME/hub/checkpoints). Put torchvision's file there (e.g. "
        f"{RESNET50_URL}, or run torchvision.models.resnet50(weights='IMAGENET1K_V1') once on a "
        "machine with internet and copy the file), or give its path as the encoder option "
        "'weights'. Nothing is downloaded at run time unless allow_download is set."
    )


def load_resnet50_trunc(path: str | os.PathLike) -> ResNet50Trunc:
    """:class:`ResNet50Trunc` with the weights of a torchvision ``resnet50`` state-dict file.

    ``fc.*`` and ``layer4.*`` entries are dropped; every other parameter and buffer must match
    (names and shapes), otherwise ValueError names the file and the offending keys.
    """
    state = load_state_dict_file(path)
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "layer4."))}
    model = ResNet50Trunc()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        raise ValueError(
            f"{path}: not a torchvision ResNet50 state dict: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}, wrong shapes {shapes[:5]}"
        )
    model.load_state_dict(state, strict=True)
    return model.eval()


# --- the encoder wrapper ---------------------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """``'auto'``: CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"encoder device {device!r} requested but CUDA is not available")
    return dev


_PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}


class TorchModuleEncoder:
    """Wrap an ``nn.Module`` that maps normalised ``(b, 3, h, w)`` images to ``(b, dim)``.

    Parameters
    ----------
    module
        The network (put in eval mode, moved to ``device``).
    name
        Encoder name recorded in the features file.
    dim
        Feature width; ``None`` runs one dummy batch of ``probe_size`` pixels to find it.
    mean, std
        Per-channel normalisation of the 0..1 RGB input.
    img_size
        Resize tiles to this edge (bilinear, antialiased) before the network; ``None`` keeps
        the tiling stage's size.
    device
        ``'auto'`` (CUDA if available), ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ...
    precision
        ``'auto'`` (float16 autocast on CUDA, float32 on CPU), ``'fp16'``, ``'bf16'``, ``'fp32'``.
    probe_size
        Edge of the dummy batch used to find ``dim``.
    source
        Where the weights came from (recorded in the features file).
    """

    torch_encoder = True

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str,
        dim: int | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        img_size: int | None = None,
        device: str = "auto",
        precision: str = "auto",
        probe_size: int = 224,
        source: str = "",
    ) -> None:
        self.name = name
        self.source = source
        self.device = resolve_device(device)
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        if precision not in _PRECISIONS:
            raise ValueError(
                f"encoder {name!r}: precision must be one of auto, {', '.join(_PRECISIONS)}; "
                f"got {precision!r}"
            )
        self.precision = precision
        self.img_size = None if img_size is None else int(img_size)
        self.module = module.eval().to(self.device)
        if self.device.type == "cuda":
            self.module = self.module.to(memory_format=torch.channels_last)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        if dim is None:
            size = self.img_size or probe_size
            probe = np.full((1, size, size, 3), 200, dtype=np.uint8)
            dim = int(self._forward(probe).shape[1])
        self.dim = int(dim)

    def _forward(self, tiles: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(tiles)
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(
                f"{self.name}: expected (n, h, w, 3) uint8 tiles, got {tuple(x.shape)} {x.dtype}"
            )
        with torch.inference_mode():
            x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
            if self.img_size is not None and tuple(x.shape[-2:]) != (self.img_size,) * 2:
                size = (self.img_size, self.img_size)
                x = F.interpolate(x, size=size, mode="bilinear", antialias=True)
            x = (x - self.mean) / self.std  # (b, 3, h, w)
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            amp = _PRECISIONS[self.precision]
            ctx = torch.autocast(self.device.type, dtype=amp) if amp else contextlib.nullcontext()
            with ctx:
                out = self.module(x)
            if isinstance(out, (tuple, list)):
                out = out[0]
            return out.float().flatten(1)  # (b, dim)

    def __call__(self, tiles: np.ndarray | torch.Tensor) -> np.ndarray:
        if len(tiles) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._forward(tiles)
        if out.shape != (len(tiles), self.dim):
            raise ValueError(
                f"encoder {self.name!r} returned shape {tuple(out.shape)}, "
                f"expected {(len(tiles), self.dim)}"
            )
        return out.cpu().numpy().astype(np.float32, copy=False)


# --- factories (registered in mmlego.wsi.encoders) -------------------------------------------


def _describe(path: str | os.PathLike) -> str:
    """``/abs/path (N bytes)``: which weights file a features file came from."""
    p = Path(path).expanduser().resolve()
    return f"{p} ({p.stat().st_size} bytes)"


def resnet50_trunc_encoder(
    *,
    weights: str | os.PathLike | None = None,
    allow_download: bool = False,
    img_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> TorchModuleEncoder:
    """ImageNet ResNet50 truncated after layer3 (1024 features), ImageNet normalisation."""
    path = resnet50_weights_path(weights, allow_download=allow_download)
    log.info("resnet50_trunc: weights %s", path)
    return TorchModuleEncoder(
        load_resnet50_trunc(path),
        name="resnet50_trunc",
        dim=ResNet50Trunc.dim,
        source=_describe(path),
        img_size=img_size,
        device=device,
        precision=precision,
    )


def _import_timm(what: str) -> Any:
    try:
        import timm
    except Exception as e:  # ImportError, or torchvision not matching torch
        raise MissingDependencyError(
            f"encoder {what!r} needs the timm package, which cannot be imported ({e}); "
            "install it in the WSI environment: pip install timm (with a torchvision build "
            "matching torch), or export the model to TorchScript and use 'torchscript:<path>'"
        ) from e
    return timm


def timm_encoder(
    model_name: str,
    *,
    weights: str | os.PathLike | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    allow_download: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    img_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    name: str | None = None,
) -> TorchModuleEncoder:
    """A timm model (``num_classes=0``: pooled features) with a local state-dict file.

    ``weights`` is required unless ``allow_download`` (then timm's pretrained weights are
    fetched from its hub). The state dict must match the model exactly (strict loading).
    """
    label = name or f"timm:{model_name}"
    if weights is None and not allow_download:
        raise MissingWeightsError(
            f"encoder {label!r}: give the local checkpoint file as the encoder option 'weights' "
            "(e.g. UNI's pytorch_model.bin downloaded from its model page); nothing is "
            "downloaded at run time unless allow_download is set"
        )
    if weights is not None and not Path(weights).expanduser().is_file():
        raise MissingWeightsError(f"encoder {label!r}: weights file not found: {weights}")
    timm = _import_timm(label)
    kwargs = dict(model_kwargs or {})
    kwargs["num_classes"] = 0
    model = timm.create_model(model_name, pretrained=weights is None, **kwargs)
    if weights is not None:
        state = load_state_dict_file(Path(weights).expanduser())
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"{weights}: does not match timm model {model_name!r} {kwargs}: missing "
                f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
            )
    return TorchModuleEncoder(
        model,
        name=label,
        dim=int(model.num_features),
        source=_describe(weights) if weights is not None else f"timm pretrained {model_name}",
        mean=mean,
        std=std,
        img_size=img_size,
        device=device,
        precision=precision,
    )


#: UNI (Chen et al., Nature Medicine 2024), as documented on its model page.
UNI_KWARGS = {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "dynamic_img_size": True}


def uni_encoder(
    *,
    weights: str | os.PathLike | None = None,
    img_size: int = 224,
    device: str = "auto",
    precision: str = "auto",
) -> TorchModuleEncoder:
    """UNI: timm ``vit_large_patch16_224`` (:data:`UNI_KWARGS`) + its ``pytorch_model.bin``."""
    return timm_encoder(
        "vit_large_patch16_224",
        weights=weights,
        model_kwargs=UNI_KWARGS,
        img_size=img_size,
        device=device,
        precision=precision,
        name="uni",
    )


def is_torchscript(path: str | os.PathLike) -> bool:
    """True if ``path`` is a TorchScript archive (a zip with a ``code/`` folder)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n or n.startswith("code/") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def torchscript_encoder(
    path: str | os.PathLike,
    *,
    dim: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    img_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> TorchModuleEncoder:
    """A TorchScript file mapping normalised ``(b, 3, h, w)`` images to ``(b, dim)``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingWeightsError(f"TorchScript encoder file not found: {p}")
    try:
        with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript as deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(p), map_location="cpu")
    except Exception as e:
        raise ValueError(f"{p}: not a TorchScript file (torch.jit.save): {e}") from e
    return TorchModuleEncoder(
        module,
        name=f"torchscript:{p.name}",
        source=_describe(p),
        dim=dim,
        mean=mean,
        std=std,
        img_size=img_size,
        device=device,
        precision=precision,
    )


def checkpoint_encoder(
    path: str | os.PathLike, *, arch: str | None = None, **kwargs: Any
) -> TorchModuleEncoder:
    """A local checkpoint: TorchScript (used as is) or a state dict for the timm model ``arch``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingWeightsError(f"encoder checkpoint not found: {p}")
    if is_torchscript(p):
        return torchscript_encoder(p, **kwargs)
    if arch is None:
        raise ValueError(
            f"{p}: a state dict, not a TorchScript file; name its timm architecture with the "
            "encoder option 'arch' (e.g. vit_large_patch16_224 for UNI, with model_kwargs), "
            "or export the model with torch.jit.save"
        )
    return timm_encoder(arch, weights=p, name=f"checkpoint:{p.name}", **kwargs)
