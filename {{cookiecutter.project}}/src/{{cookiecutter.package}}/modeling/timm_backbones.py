"""Any timm model as a backbone, by name: ``timm:<model>[.<tag>]`` (e.g. ``timm:convnext_tiny.fb_in22k_ft_in1k``).

Everything the project needs to know of such a backbone comes from timm's own description of it, not from a class
per family: ``pretrained_cfg`` gives the normalisation, the input size, the weights' source and licence;
``feature_info`` the stages (the maps bilinear and multistage pooling read, Grad-CAM's layer, the blocks fine-tuning
can freeze); ``forward_head(..., pre_logits=True)`` the pooled features. Weights come from timm's own download,
cached where timm caches them, or from a local file (``BACKBONE_WEIGHTS``).
"""

import difflib
import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from ..core.choices import TIMM_PREFIX, TIMM_RESOLUTION_RANGE
from ..core.errors import ConfigError
from .backbone_base import Features

HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm looks for in a hub repository, in its order
CONNECT_SECONDS = 3.0  # how long the network check waits: an offline machine answers in seconds, not minutes


def is_timm(name: str) -> bool:
    return name.startswith(TIMM_PREFIX)


def model_name(backbone: str) -> str:
    """'timm:convnext_tiny.fb_in1k' -> 'convnext_tiny.fb_in1k'."""
    return backbone.removeprefix(TIMM_PREFIX)


@functools.lru_cache(maxsize=64)
def pretrained_cfg(backbone: str) -> dict:
    """timm's description of the named weights (the model's default weights when no tag is given); an unknown model
    or tag is a ``ConfigError`` naming close names."""
    import timm

    name = model_name(backbone)
    architecture, _, tag = name.partition(".")
    if not timm.is_model(architecture):
        close = close_names(architecture, timm.list_models())
        hint = f"close names: {', '.join(close)}" if close else "no close name"
        raise ConfigError(
            f"BACKBONE={backbone!r}: timm {timm.__version__} has no model {architecture!r} ({hint}); "
            f"`python -m {__package__.split('.')[0]} backbones 'PATTERN'` lists the names timm knows."
        )
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:
        cfg = None
    if cfg is None:
        tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{architecture}.*")]
        raise ConfigError(
            f"BACKBONE={backbone!r}: timm has no weights tagged {tag!r} for {architecture}; "
            f"its tags: {', '.join(tags) or 'none'}."
        )
    return cfg.to_dict()


def close_names(name: str, known: list[str], n: int = 5) -> list[str]:
    """Names like ``name``: spelled alike, else sharing a part of it (timm's names are parts joined by '_')."""
    import fnmatch

    close = difflib.get_close_matches(name, known, n=n, cutoff=0.6)
    for part in sorted((p for p in name.split("_") if len(p) >= 3), key=len, reverse=True):
        close += [k for k in fnmatch.filter(known, f"*{part}*") if k not in close]
    return close[:n]


@dataclass(frozen=True)
class Description:
    """What a built model says of itself (``describe``): its features, stages and what sizes it takes."""

    feature_dim: int
    stages: tuple[dict, ...]  # timm's feature_info: module, num_chs, reduction per stage
    blocks: tuple[str, ...]  # the stages that hold weights: what fine-tuning can freeze
    patch: int  # patch size of a patch embedding; 1 for a convolutional network
    resolution_range: tuple[int, int]
    sized: bool  # built for the resolution asked (``img_size``): position embeddings fit one input size
    rescales: bool  # takes other sizes once built: prediction may run above the training resolution (FixRes)
    intermediates: bool  # the model has ``forward_intermediates``: bilinear and multistage pooling work


@functools.lru_cache(maxsize=64)
def describe(backbone: str) -> Description:
    """The model built once without weights on the meta device (no memory, no time), asked what it is."""
    cfg = pretrained_cfg(backbone)
    default = cfg["input_size"][-1]
    for kwargs in _size_options(cfg, default):
        try:
            net = _create(backbone, pretrained=False, device="meta", **kwargs)
            break
        except TypeError:  # the model takes no such argument: it runs at one size only
            continue
    patch = getattr(getattr(net, "patch_embed", None), "patch_size", 1)
    patch = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
    fixed = cfg.get("fixed_input_size") and "img_size" not in kwargs
    return Description(
        feature_dim=int(getattr(net, "head_hidden_size", None) or net.num_features),
        stages=tuple(dict(info) for info in net.feature_info),
        blocks=tuple(
            i["module"] for i in net.feature_info if any(True for _ in net.get_submodule(i["module"]).parameters())
        ),
        patch=patch,
        resolution_range=(default, default) if fixed else TIMM_RESOLUTION_RANGE,
        sized="img_size" in kwargs,
        rescales=not cfg.get("fixed_input_size"),
        intermediates=hasattr(net, "forward_intermediates"),
    )


def _size_options(cfg: dict, resolution: int) -> list[dict]:
    """A model with a fixed input size (a patch embedding with position embeddings) is built for the resolution
    asked, where it takes one (timm resamples the position embeddings of its weights)."""
    return [{"img_size": resolution}, {}] if cfg.get("fixed_input_size") else [{}]


def _create(backbone: str, pretrained: bool, device: str = "cpu", **kwargs) -> nn.Module:
    import timm

    with torch.device(device):
        return timm.create_model(model_name(backbone), pretrained=pretrained, **kwargs)


def check_resolution(backbone: str, resolution: int, parameter: str) -> None:
    """The backbone's own limits: the sizes it takes, in multiples of its patch size."""
    about = describe(backbone)
    low, high = about.resolution_range
    if not low <= resolution <= high:
        raise ConfigError(f"{parameter}={resolution} is outside what {backbone} takes: use {low} to {high} pixels.")
    if resolution % about.patch:
        below, above = resolution // about.patch * about.patch, -(-resolution // about.patch) * about.patch
        raise ConfigError(
            f"{parameter}={resolution} is no multiple of {backbone}'s patch size {about.patch}: use e.g. "
            f"{below if below >= low else above} or {above}."
        )


def n_blocks(backbone: str) -> int:
    """The blocks fine-tuning can freeze: timm's stages that hold weights."""
    return len(describe(backbone).blocks)


# --- weights: timm's cache, timm's download, or a file ---------------------------------------------------------


def weights_note(backbone: str, weights: str = "pretrained") -> str:
    """The weights and their licence, for the model card."""
    cfg = pretrained_cfg(backbone)
    name = f"{cfg['architecture']}.{cfg['tag']}" if cfg.get("tag") else cfg["architecture"]
    if weights == "none":
        return f"timm {cfg['architecture']} with random weights"
    source = source_url(cfg) if weights == "pretrained" else f"the file {weights}"
    return f"timm {name} weights from {source}, licence {cfg.get('license') or 'not stated by timm'}"


def source_url(cfg: dict) -> str:
    """Where timm downloads the weights from."""
    if cfg.get("hf_hub_id"):
        from huggingface_hub import constants

        filename = cfg.get("hf_hub_filename") or HF_FILES[0]
        return f"{constants.ENDPOINT}/{cfg['hf_hub_id']}/resolve/main/{filename}"
    return cfg.get("url") or ""


def cached_weights(cfg: dict) -> Path | None:
    """The weights file timm downloaded before, if it is in timm's cache (the Hugging Face hub's, or torch's)."""
    if cfg.get("hf_hub_id"):
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = cfg["hf_hub_id"].partition("@")
        for filename in [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else HF_FILES:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
    if cfg.get("url"):
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(cfg["url"]).path)
        if path.is_file():
            return path
    return None


def cache_folder(cfg: dict) -> str:
    if cfg.get("hf_hub_id"):
        from huggingface_hub import constants

        return constants.HF_HUB_CACHE
    return str(Path(torch.hub.get_dir()) / "checkpoints")


def unreachable(url: str) -> str:
    """Why ``url``'s host cannot be reached ("" when it can): a quick connection, where a download would retry for a
    minute before failing."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return ""  # the proxy reaches the network, not this machine: let the download try
    parsed = urlparse(url)
    host = parsed.hostname or ""
    try:
        socket.create_connection((host, parsed.port or 443), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        return f"{host} cannot be reached: {error.strerror or error}"
    return ""


def check_weights(backbone: str, weights: str) -> None:
    """Pretrained weights for ``backbone`` are at hand (timm's cache) or can be downloaded now: else one line that
    names the model, what was tried and where to put the file. 'none' and a file need nothing."""
    if weights != "pretrained":
        return
    cfg = pretrained_cfg(backbone)
    url = source_url(cfg)
    if not url and not cfg.get("file"):
        raise ConfigError(f"timm publishes no pretrained weights for {backbone}: set BACKBONE_WEIGHTS to a file.")
    if cached_weights(cfg) is not None:
        return
    why = unreachable(url)
    if why:
        raise ConfigError(
            f"No pretrained weights for BACKBONE={backbone!r}: none in timm's cache ({cache_folder(cfg)}) and {why}. "
            f"Download {url} on a machine with network and set BACKBONE_WEIGHTS to that file's path here."
        )


def create_with_weights(backbone: str, weights: str, resolution: int) -> nn.Module:
    """The timm model with its ImageNet head, built for ``resolution``: random ('none'), timm's pretrained weights
    (from its cache, else downloaded into it now) or a file's (loaded by timm, which adapts position embeddings
    to the resolution)."""
    cfg = pretrained_cfg(backbone)
    kwargs = {"img_size": resolution} if describe(backbone).sized else {}
    if weights == "none":
        return _create(backbone, pretrained=False, **kwargs)
    if weights == "pretrained":
        check_weights(backbone, weights)
        cached = cached_weights(cfg)
        file = str(cached) if cached is not None else None
    else:
        file = str(weights)
    overlay = {"file": file} if file else None
    try:
        return _create(backbone, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except RuntimeError as error:  # a file of other weights: the keys or shapes do not match
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"BACKBONE_WEIGHTS={file!r} does not hold {backbone}'s weights ({first}).") from None


# --- the features module -----------------------------------------------------------------------------------------


class TimmFeatures(Features):
    """A timm model up to its pooled pre-logits features, with its own normalisation in front."""

    def __init__(self, net: nn.Module, cfg: dict, about: Description) -> None:
        super().__init__(tuple(255 * m for m in cfg["mean"]), tuple(255 * s for s in cfg["std"]))
        net.reset_classifier(0)  # the ImageNet classifier: unused, and DDP wants every parameter used
        self.net = net
        self.about = about

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(self.normalize(images)), pre_logits=True)

    def stage_modules(self) -> list[nn.Module]:
        return [self.net.get_submodule(info["module"]) for info in self.about.stages]

    def parameter_blocks(self) -> tuple[list[nn.Parameter], list[list[nn.Parameter]]]:
        """The stages that hold weights, each with every parameter registered after the previous one's (timm
        registers modules in the order they run); the stem is what comes before the first."""
        names, params = zip(*self.net.named_parameters())
        inside = [[i for i, n in enumerate(names) if n.startswith(block + ".")] for block in self.about.blocks]
        first, ends = inside[0][0], [max(i) + 1 for i in inside]
        blocks = [list(params[start:end]) for start, end in zip([first, *ends[:-1]], ends)]
        return list(params[:first]), blocks

    def _frozen_modules(self) -> list[nn.Module]:
        """Every module whose weights are all frozen (its dropout and normalisation then run as in inference)."""
        if not self.frozen_blocks:
            return []
        return [
            m
            for m in self.net.modules()
            if any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())
        ]

    def stage_taps(self, first: int) -> tuple[list[int], list[int]]:
        return [i for i in range(first, len(self.about.stages))], [
            info["num_chs"] for info in self.about.stages[first:]
        ]

    def forward_taps(self, images: torch.Tensor, taps: list[int], pooled: bool = True):
        if not self.about.intermediates:
            raise ConfigError(f"{type(self.net).__name__} gives no stage maps in timm: use POOLING='average'.")
        x = self.normalize(images)
        if not pooled:
            maps = self.net.forward_intermediates(
                x, indices=taps, norm=False, output_fmt="NCHW", intermediates_only=True, stop_early=True
            )
            return maps, None
        final, maps = self.net.forward_intermediates(x, indices=taps, norm=False, output_fmt="NCHW")
        return maps, self.net.forward_head(final, pre_logits=True)

    def tap_module(self, tap: int) -> nn.Module:
        return self.net.get_submodule(self.about.stages[tap]["module"])

    def last_tap(self) -> int:
        """The last stage's map, or for a transformer that pools its class token, the map its last block reads:
        the last block's output reaches the features through the class token alone, so its gradient on the
        patches is zero."""
        last = len(self.about.stages) - 1
        return last - 1 if getattr(self.net, "global_pool", "") == "token" else last

    def cam_reshape(self):
        """Token sequences (N, L, C) as maps (N, C, h, w) for Grad-CAM; convolutional maps as they are."""
        prefix = getattr(self.net, "num_prefix_tokens", 0)
        if self.about.patch == 1:
            return None

        def reshape(tokens: torch.Tensor) -> torch.Tensor:
            if tokens.dim() == 4:
                return tokens
            patches = tokens[:, prefix:]
            side = round(patches.shape[1] ** 0.5)
            return patches.reshape(patches.shape[0], side, side, -1).permute(0, 3, 1, 2)

        return reshape


def build(backbone: str, weights: str, resolution: int) -> TimmFeatures:
    check_resolution(backbone, resolution, "RESOLUTION")
    net = create_with_weights(backbone, weights, resolution)
    return TimmFeatures(net, pretrained_cfg(backbone), describe(backbone))


def check_config(cfg) -> None:
    """A review, probe or fine-tuning config whose backbone is a timm model, held to that model's own limits and
    its weights found, before any work: the resolution, the blocks to freeze, the pooling, the weights."""
    if not is_timm(cfg.backbone):
        return
    from ..core.config import parameter_names

    names = parameter_names(type(cfg))
    check_resolution(cfg.backbone, cfg.resolution, names["resolution"])
    about = describe(cfg.backbone)
    if "freeze_blocks" in names and cfg.freeze_blocks > len(about.blocks):
        raise ConfigError(f"FREEZE_BLOCKS={cfg.freeze_blocks} must be 0 to {len(about.blocks)} for {cfg.backbone}.")
    if "eval_scales" in names and about.rescales and max(cfg.eval_resolutions()) > about.resolution_range[1]:
        raise ConfigError(
            f"EVAL_SCALES={list(cfg.eval_scales)} reach {max(cfg.eval_resolutions())} pixels, above the "
            f"{about.resolution_range[1]} {cfg.backbone} takes."
        )
    if getattr(cfg, "pooling", "average") in ("bilinear", "multistage") and not about.intermediates:
        raise ConfigError(f"POOLING={cfg.pooling!r}: {cfg.backbone} gives no stage maps in timm; use 'average'.")
    check_weights(cfg.backbone, cfg.weights)


def catalogue(pattern: str) -> list[str]:
    """The timm weights whose names match ``pattern`` (fnmatch, e.g. 'convnext*'): name, input size, licence."""
    import timm

    names = timm.list_pretrained(pattern)
    if not names:
        return [f"no timm weights match {pattern!r} (timm {timm.__version__}); try e.g. 'convnext*' or '*dinov2*'"]
    lines = []
    for name in names:
        cfg = timm.models.get_pretrained_cfg(name)
        lines.append(f"{TIMM_PREFIX}{name:<50} {cfg.input_size[-1]} px, licence {cfg.license or 'not stated'}")
    return lines
