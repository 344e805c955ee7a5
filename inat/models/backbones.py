"""The ImageNet architectures FineTuneModel can use: torchvision's six and any timm model.

Names (`model.backbone`): the six names of `BACKBONES` (resnet18, resnet50,
efficientnet_b0, efficientnet_v2_s, convnext_tiny, vit_b_16) are torchvision's models, as
they always were. Every other name is timm's: any name of `timm.list_models()`, with or
without a pretrained tag (`convnext_small.fb_in22k`); `timm/NAME` is timm's too, and
names timm's own version of one of the six (`timm/resnet50`, `timm/convnext_tiny.fb_in1k`).
`torchvision/NAME` is any other classification model of torchvision
(`torchvision.models.list_models()`), trained by the head and full strategies: inat knows
the stages of the six only.

Stages, shallow to deep, are the unit of `last_k`, of layer-wise learning-rate decay and of
gradual unfreezing; the stem is every backbone parameter outside them (before the first
stage) and is trained only by the `full` strategy.
- torchvision: the `stages` of the model's `BACKBONES` entry.
- timm: the groups of the model's own `group_matcher(coarse=True)`, the split timm itself
  uses for layer-wise decay (`timm.models.group_parameters`): its first group is the stem,
  the others are the stages; what it groups with the classifier (a norm before it, a
  pre-logits layer) belongs with the last stage.

Adding a torchvision architecture is one `TorchvisionBackbone` entry in `BACKBONES`.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from inat import schema
from inat.errors import ConfigError
from inat.models.state_dicts import StateDict, load_weights, misfit_error, misfits

if TYPE_CHECKING:
    from timm.models import PretrainedCfg

TIMM_PREFIX = "timm/"
TORCHVISION_PREFIX = "torchvision/"
_SUGGESTED = 3  # close matches named for a name no library knows


class Backbone(ABC):
    """An ImageNet architecture, built, loaded, split and beheaded the same way whichever
    library it comes from."""

    name: str  # as model.backbone names it
    library: ClassVar[str]  # torchvision or timm

    @abstractmethod
    def weights_names(self) -> tuple[str, ...]:
        """The names of pretrained weights model.weights may give (downloaded when used)."""

    @abstractmethod
    def download_name(self, weights: str) -> str:
        """The NAME of `inat weights download NAME DEST` that fetches the weights `weights`."""

    @abstractmethod
    def hub_state(self, weights: str) -> StateDict:
        """The state dict (ImageNet head included) of the pretrained weights named `weights`,
        downloaded unless cached; ConfigError, with the way round it, where they cannot be."""

    @abstractmethod
    def create(self, image_size: int, state: StateDict | None, weights: str | None) -> nn.Module:
        """The architecture with its ImageNet head, for images of this side: with `state`
        (model.weights=`weights`) loaded strictly, or randomly initialised if None."""

    @abstractmethod
    def stages(self, net: nn.Module) -> list[list[nn.Parameter]]:
        """The parameters of each stage of `net`, shallow to deep; `net` as `create` made it,
        its ImageNet classifier still there (timm's stages are told from it)."""

    @abstractmethod
    def remove_head(self, net: nn.Module) -> int:
        """Replace the ImageNet classifier of `net` by an identity; return its input width."""

    @abstractmethod
    def classifiers(self, image_size: int) -> list[str]:
        """Where the library's model (see `library_model`) holds its linear classifier(s)."""

    @abstractmethod
    def library_model(self, num_classes: int, image_size: int) -> dict[str, Any]:
        """The keyword arguments of the library's own function that builds this model with a
        `num_classes` classifier: torchvision.models.get_model or timm.create_model."""


def download_failed(name: str, source: str, error: Exception) -> ConfigError:
    """The error of weights `inat weights download NAME` fetches that cannot be downloaded
    here: a run here would fail again, so it says how to get them elsewhere."""
    return ConfigError(
        f"cannot download the pretrained weights of {name} from {source}: {error}. This "
        f"machine cannot reach them: on a machine with internet (a login node), run "
        f"`inat weights download {name} DEST` once, DEST a local file or s3:// URI, and "
        "pass model.weights=DEST"
    )


def _patch_error(name: str, image_size: int, patch: int) -> ConfigError:
    lower = max(patch, image_size // patch * patch)
    return ConfigError(
        f"data.image_size={image_size} is not allowed with model.backbone={name}: use a "
        f"multiple of {name}'s patch size {patch} (e.g. {lower} or {lower + patch})"
    )


@dataclass(frozen=True)
class TorchvisionBackbone(Backbone):
    """How one torchvision architecture is built, beheaded and split into stages."""

    name: str
    head: str  # the module holding the ImageNet classifier, replaced by the new head
    # Shallow to deep; None: unknown to inat (a torchvision/NAME model), no last_k.
    stage_modules: Callable[[nn.Module], list[list[nn.Module]]] | None
    patch_size: int | None = None  # ViTs: image_size must be a multiple of it
    library: ClassVar[str] = "torchvision"

    @property
    def architecture(self) -> str:
        """torchvision's name of the model."""
        return self.name.removeprefix(TORCHVISION_PREFIX)

    def weights_names(self) -> tuple[str, ...]:
        from torchvision.models import get_model_weights  # seconds to import: only when needed

        return tuple(get_model_weights(self.architecture).__members__)

    def download_name(self, weights: str) -> str:
        return self.name if weights == "DEFAULT" else f"{self.name}.{weights}"

    def hub_state(self, weights: str) -> StateDict:
        from torchvision.models import get_model_weights

        named = get_model_weights(self.architecture)[weights]
        try:
            return named.get_state_dict(progress=False, check_hash=True)
        except OSError as e:  # urllib's URLError and socket errors
            raise download_failed(self.download_name(weights), named.url, e) from e

    def create(self, image_size: int, state: StateDict | None, weights: str | None) -> nn.Module:
        from torchvision.models import get_model  # seconds to import: only when fine-tuning

        if self.patch_size and image_size % self.patch_size:
            raise _patch_error(self.name, image_size, self.patch_size)
        # A ViT is built for the image size; pretrained position embeddings are resized to
        # it by `adapt_state_dict`. CNNs take any size.
        net = get_model(self.architecture, weights=None, **self._size(image_size))
        if state is not None:
            load_weights(net, self.adapt_state_dict(state, image_size), str(weights), self.name)
        return net

    def adapt_state_dict(self, state: StateDict, image_size: int) -> StateDict:
        """`state` made loadable into a model for `image_size`: ViT position embeddings resized."""
        if self.patch_size and "encoder.pos_embedding" in state:
            from torchvision.models.vision_transformer import interpolate_embeddings

            return interpolate_embeddings(image_size, self.patch_size, state)
        return state

    def stages(self, net: nn.Module) -> list[list[nn.Parameter]]:
        if self.stage_modules is None:
            raise ConfigError(
                f"inat does not know the stages of {self.name}: use model.strategy=head or "
                "full, without model.layer_decay and model.unfreeze_schedule, or timm's "
                "version of the model, whose stages timm defines"
            )
        return [[p for m in stage for p in m.parameters()] for stage in self.stage_modules(net)]

    def remove_head(self, net: nn.Module) -> int:
        classifier = net.get_submodule(self.head)
        in_features = next(m for m in classifier.modules() if isinstance(m, nn.Linear)).in_features
        parent, _, child = self.head.rpartition(".")
        setattr(net.get_submodule(parent), child, nn.Identity())
        return in_features

    def classifiers(self, image_size: int) -> list[str]:
        head = self.create(image_size, None, None).get_submodule(self.head)
        inner = next(name for name, m in head.named_modules() if isinstance(m, nn.Linear))
        return [f"{self.head}.{inner}" if inner else self.head]

    def library_model(self, num_classes: int, image_size: int) -> dict[str, Any]:
        return {"name": self.architecture, "num_classes": num_classes, **self._size(image_size)}

    def _size(self, image_size: int) -> dict[str, int]:
        return {"image_size": image_size} if self.patch_size else {}


@dataclass(frozen=True)
class TimmBackbone(Backbone):
    """A timm model: `model` is its timm name (`name` without `timm/`), tag included."""

    name: str
    model: str
    library: ClassVar[str] = "timm"

    def weights_names(self) -> tuple[str, ...]:
        return ("DEFAULT", "pretrained")  # DEFAULT as for torchvision: the config's default

    def download_name(self, weights: str) -> str:
        return self.name  # the tag, if any, is in the name

    def hub_state(self, weights: str) -> StateDict:
        import timm

        cfg = self._pretrained_cfg()
        if not cfg.has_weights:
            tagged = ", ".join(timm.list_pretrained(f"{self.model.split('.')[0]}.*")) or "none"
            raise ConfigError(
                f"timm has no pretrained weights for {self.name} (its tags with weights: "
                f"{tagged}): pass model.weights=null for random initialisation, or a "
                "model.backbone with weights"
            )
        source = f"the Hugging Face Hub ({cfg.hf_hub_id})" if cfg.hf_hub_id else cfg.url
        try:
            return timm.create_model(self.model, pretrained=True).state_dict()
        except OSError as e:  # no connection, the hub offline, an HTTP error (HfHubHTTPError)
            raise download_failed(self.name, source, e) from e

    def create(self, image_size: int, state: StateDict | None, weights: str | None) -> nn.Module:
        import timm

        size = {"img_size": image_size} if self._pretrained_cfg().fixed_input_size else {}
        if state is None:
            net = timm.create_model(self.model, **size)
        else:
            net = self._load(state, str(weights), size)
        patch = getattr(getattr(net, "patch_embed", None), "patch_size", None)
        if size and patch and image_size % patch[0]:
            raise _patch_error(self.name, image_size, patch[0])
        return net

    def _load(self, state: StateDict, weights: str, size: dict[str, int]) -> nn.Module:
        """The model with `state` loaded by timm's own loading, which adapts it (the model's
        checkpoint filter resizes position embeddings to img_size, ...) and loads strictly."""
        import timm

        with torch.device("meta"):  # the keys and shapes alone: no memory, no initialisation
            expected = timm.create_model(self.model).state_dict()
        # Checked first: a checkpoint filter may fail on a state of another architecture.
        if problems := misfits(expected, state, shapes=False):
            raise misfit_error(weights, self.name, problems)
        try:
            net = timm.create_model(
                self.model, pretrained=True, pretrained_cfg_overlay={"state_dict": state}, **size
            )
        except RuntimeError as e:  # load_state_dict's: shapes the filter does not adapt
            raise misfit_error(weights, self.name, misfits(expected, state) or [str(e)]) from e
        net.pretrained_cfg.pop("state_dict")  # the overlay's copy of the weights
        return net

    def stages(self, net: nn.Module) -> list[list[nn.Parameter]]:
        from timm.models import group_parameters

        if not hasattr(net, "group_matcher"):
            raise ConfigError(
                f"timm's {self.name} does not say what its stages are (it has no "
                "group_matcher): use model.strategy=head or full, without model.layer_decay "
                "and model.unfreeze_schedule"
            )
        grouped = group_parameters(net, net.group_matcher(coarse=True), return_values=True)
        _stem, *stages, last = grouped.values()  # timm's matchers give the stem the first group
        classifiers = [net.get_submodule(name) for name in _names(net.pretrained_cfg["classifier"])]
        classifier = {id(p) for module in classifiers for p in module.parameters()}
        if any(id(p) in classifier for p in last):  # the classifier's group: not a stage
            stages[-1] = [*stages[-1], *(p for p in last if id(p) not in classifier)]
        else:
            stages.append(last)
        return stages

    def remove_head(self, net: nn.Module) -> int:
        width = net.head_hidden_size  # what the classifier takes
        net.reset_classifier(0)
        return width

    def classifiers(self, image_size: int) -> list[str]:
        return _names(self._pretrained_cfg().classifier)

    def library_model(self, num_classes: int, image_size: int) -> dict[str, Any]:
        size = {"img_size": image_size} if self._pretrained_cfg().fixed_input_size else {}
        return {"model_name": self.model, "num_classes": num_classes, **size}

    def _pretrained_cfg(self) -> PretrainedCfg:
        from timm.models import get_pretrained_cfg

        return get_pretrained_cfg(self.model)


def _names(classifier: str | Sequence[str]) -> list[str]:
    """The classifier module(s) a timm pretrained config names (distilled models have two)."""
    return [classifier] if isinstance(classifier, str) else list(classifier)


def _resnet_stages(model: nn.Module) -> list[list[nn.Module]]:
    return [[model.layer1], [model.layer2], [model.layer3], [model.layer4]]


def _efficientnet_stages(model: nn.Module) -> list[list[nn.Module]]:
    # features[0] is the stem; the last entry is the final 1x1 convolution.
    return [[block] for block in model.features[1:]]


def _vit_stages(model: nn.Module) -> list[list[nn.Module]]:
    # One encoder block per stage; the final LayerNorm belongs with the last block.
    stages = [[layer] for layer in model.encoder.layers]
    stages[-1].append(model.encoder.ln)
    return stages


def _convnext_stages(model: nn.Module) -> list[list[nn.Module]]:
    # features: stem, stage, then 3 x (downsample, stage); the LayerNorm before
    # the classifier belongs with the last stage.
    f = model.features
    return [[f[1]], [f[2], f[3]], [f[4], f[5]], [f[6], f[7], model.classifier[0]]]


BACKBONES: dict[str, TorchvisionBackbone] = {
    b.name: b
    for b in (
        TorchvisionBackbone("resnet18", "fc", _resnet_stages),
        TorchvisionBackbone("resnet50", "fc", _resnet_stages),
        TorchvisionBackbone("efficientnet_b0", "classifier", _efficientnet_stages),
        TorchvisionBackbone("efficientnet_v2_s", "classifier", _efficientnet_stages),
        TorchvisionBackbone("convnext_tiny", "classifier.2", _convnext_stages),
        TorchvisionBackbone("vit_b_16", "heads", _vit_stages, patch_size=16),
    )
}
assert tuple(BACKBONES) == schema.BACKBONES, "the schema's names and the table's differ"


def _other_torchvision(name: str) -> TorchvisionBackbone:
    """torchvision/NAME: a classification model of torchvision outside BACKBONES, its head
    the last linear layer with ImageNet's 1000 outputs."""
    import torchvision
    from torchvision.models import get_model, list_models

    architecture = name.removeprefix(TORCHVISION_PREFIX)
    models = list_models(module=torchvision.models)
    if architecture not in models:
        close = difflib.get_close_matches(architecture, models, n=_SUGGESTED)
        hint = f"Did you mean {', '.join(TORCHVISION_PREFIX + c for c in close)}? " if close else ""
        raise ConfigError(
            f"model.backbone={name!r}: torchvision has no classification model "
            f"{architecture!r}. {hint}Use a name of torchvision.models.list_models()"
        )
    net = get_model(architecture, weights=None)  # some cannot be built on the meta device
    head = [
        n for n, m in net.named_modules() if isinstance(m, nn.Linear) and m.out_features == 1000
    ]
    return TorchvisionBackbone(name, head[-1], None)


def find_backbone(name: str) -> Backbone:
    """The backbone model.backbone=`name` names (see the module's docstring for the rule);
    ConfigError naming close matches for a name neither library knows."""
    if name in BACKBONES:
        return BACKBONES[name]
    if name.startswith(TORCHVISION_PREFIX):
        return _other_torchvision(name)
    import timm  # seconds to import: only for a timm name
    from timm.models import get_pretrained_cfg, split_model_name_tag

    model = name.removeprefix(TIMM_PREFIX)
    if timm.is_model(split_model_name_tag(model)[0]):
        try:
            get_pretrained_cfg(model)  # refuses an unknown tag
            return TimmBackbone(name, model)
        except RuntimeError:
            pass
    known = dict.fromkeys([*BACKBONES, *timm.list_models(), *timm.list_pretrained()])
    close = difflib.get_close_matches(model, list(known), n=_SUGGESTED)
    hint = f"Did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(
        f"model.backbone={name!r} is neither torchvision's ({', '.join(BACKBONES)}) nor a timm "
        f"model. {hint}Use a torchvision name or a name of timm.list_models(), a pretrained tag "
        "of timm.list_pretrained() allowed (convnext_small.fb_in22k); timm/NAME names timm's "
        "version of a torchvision name, torchvision/NAME any other torchvision model"
    )
