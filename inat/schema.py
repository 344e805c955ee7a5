"""The typed schema of `inat train`'s config: one dataclass per config group.

Each YAML file of a group extends its schema through its defaults list
(`- /schema/<group>/<option>@_here_`), so Hydra refuses an unknown key or a value
of the wrong type while it composes. What a type cannot say (a range, a choice, a
list of five) is a `Rule` in the field's metadata, checked by `inat.compose.validate`
over the composed config; `RELATIONS` holds the few rules that tie keys together.
The YAML files keep the comments and the defaults a user reads; these classes say
what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from inat.errors import ConfigError

# -- rules: a test of one value and the words that say what is allowed


@dataclass(frozen=True)
class Rule:
    """What a field's value must be: `test` passes it, `allowed` says it in words."""

    test: Callable[[Any], bool]
    allowed: str

    def accepts(self, value: Any) -> bool:
        """Whether `value` is allowed; a test that cannot compare the value refuses it."""
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def int_at_least(minimum: int, *, nullable: bool = False) -> Rule:
    """An integer >= minimum (or null)."""
    words = f"an integer >= {minimum}"
    return Rule(
        lambda v: (nullable and v is None) or (_is_int(v) and v >= minimum),
        f"null or {words}" if nullable else words,
    )


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = True,
    nullable: bool = False,
) -> Rule:
    """A finite number in a range: [low, high) unless told which ends are open."""

    def test(v: Any) -> bool:
        if nullable and v is None:
            return True
        if not _is_number(v):
            return False
        above = low is None or (v > low if low_open else v >= low)
        below = high is None or (v < high if high_open else v <= high)
        return above and below

    if high is None:
        words = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        opening, closing = "(" if low_open else "[", ")" if high_open else "]"
        words = f"a number in {opening}{low:g}, {high:g}{closing}"
    return Rule(test, f"null or {words}" if nullable else words)


def one_of(*choices: str | None) -> Rule:
    """One of `choices` (None: null is allowed)."""
    names = [c for c in choices if c is not None]
    words = f"one of {', '.join(names)}" if len(names) > 1 else names[0]
    return Rule(lambda v: v in choices, f"{words} or null" if None in choices else words)


def _auto_or(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v == "auto" or test(v)


def _five(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, Sequence) and len(v) == NUM_BLOCKS and all(map(test, v))


def _non_empty(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _odd_positive(v: Any) -> bool:
    return _is_int(v) and v >= 1 and v % 2 == 1


POSITIVE_INT = int_at_least(1)
POSITIVE = number(0, low_open=True)
FRACTION = number(0, 1)  # [0, 1): dropout, label smoothing, a share of bad files


def checked(rule: Rule) -> dict[str, Rule]:
    """A field's metadata: the rule `inat.compose.validate` checks its value against."""
    return {"rule": rule}


# -- the choices other modules share

NUM_BLOCKS = 5  # the scratch CNN's conv blocks
ACTIVATIONS = ("relu", "gelu", "silu", "mish")
POOLS = ("flatten", "avg", "max")  # what the scratch CNN's dense layer sees of the last block
BACKBONES = (
    "resnet18",
    "resnet50",
    "efficientnet_b0",
    "efficientnet_v2_s",
    "convnext_tiny",
    "vit_b_16",
)
MIN_IMAGE_SIZE = 2**NUM_BLOCKS  # every model downsamples by 32: a smaller image leaves no pixel
STRATEGIES = ("head", "last_k", "full")
SCHEDULES = ("cosine", "onecycle", "constant")
PIPELINES = ("prepared", "images")
MIXED_PRECISION = ("no", "fp16", "bf16")
RETRY_MODES = ("standard", "adaptive", "legacy")
ADDRESSING_STYLES = ("auto", "path", "virtual")
TTA_MODES = ("none", "flip")  # test-time augmentation (inat.train.scoring.with_tta)
TRACKERS = ("wandb", "tensorboard", "mlflow", "csv")  # the options of logger=, in LoggerConfig


# data.image_size: the minimum is checked here; a ViT's patch size where the model is built
# (inat.models.backbones), which knows it. The words say both.
IMAGE_SIZE = Rule(
    lambda v: _is_int(v) and v >= MIN_IMAGE_SIZE,
    f"an integer >= {MIN_IMAGE_SIZE} (every model halves the image {NUM_BLOCKS} times); with "
    "a ViT backbone a multiple of its patch size (16 for vit_b_16)",
)


# -- data

# data.augment: what each does is inat.data.datasets.build_transform's (per image) and
# inat.data.batch_transform.BatchTransform's (per batch, on the training device).
AUGMENTATIONS = ("none", "basic", "randaugment", "trivialaugment", "autoaugment")
AUGMENT = Rule(
    lambda v: isinstance(v, bool) or v in AUGMENTATIONS,
    f"one of {', '.join(AUGMENTATIONS)}, or true (basic) or false (none)",
)
RANDAUGMENT_MAX_MAGNITUDE = 30  # torchvision's RandAugment has 31 magnitude bins


def augmentation(augment: str | bool) -> str:
    """data.augment as one of AUGMENTATIONS: true is basic, false none.

    The one place that reads true and false (data.augment's values before the policies),
    so every reader of the value goes through here.
    """
    if not AUGMENT.accepts(augment):
        raise ConfigError(f"data.augment={augment!r} is not allowed: use {AUGMENT.allowed}.")
    if isinstance(augment, bool):
        return "basic" if augment else "none"
    return augment


@dataclass
class SyntheticConfig:
    """data.synthetic: the generated image folder (read when data.source is "synthetic")."""

    train_per_class: int = field(default=60, metadata=checked(int_at_least(2)))
    """Images per class in train/."""
    image_side: int = field(default=64, metadata=checked(int_at_least(16)))
    """Side of the generated images."""
    seed: int = field(default=0, metadata=checked(int_at_least(0)))


@dataclass
class DataConfig:
    """data: where the images come from and how they are batched (configs/data/*.yaml)."""

    source: str = field(
        default="synthetic",
        metadata=checked(Rule(_non_empty, "a non-empty string")),
    )
    """A .zip, a folder, an http(s) URL, an s3:// URI or "synthetic"."""
    cache_dir: str | None = None
    """Where archives are extracted; null: $SLURM_TMPDIR, $TMPDIR or the user cache dir."""
    prepared_dir: str | None = None
    """Where prepared images are shared between nodes: a shared folder or s3:// URI; null:
    each node's cache dir. Never beside the data set."""
    image_size: int = field(default=224, metadata=checked(IMAGE_SIZE))
    """Side of the square images the model sees."""
    val_fraction: float = field(default=0.2, metadata=checked(number(0, 1, low_open=True)))
    """Share of train/ held out for validation (of a flat folder: of what the test left)."""
    test_fraction: float = field(default=0.2, metadata=checked(number(0, 1, low_open=True)))
    """A flat folder of class folders (no train/ and val/): share held out for the test."""
    split_seed: int = field(default=0, metadata=checked(int_at_least(0)))
    pipeline: str = field(default="prepared", metadata=checked(one_of(*PIPELINES)))
    augment: Any = field(default="none", metadata=checked(AUGMENT))
    """Training images: none; basic (random resized crop, horizontal flip, colour jitter);
    randaugment, trivialaugment or autoaugment (the same crop and flip, then torchvision's
    policy instead of the jitter). true and false are read as basic and none, in one place:
    `augmentation`."""
    randaugment_magnitude: int = field(
        default=9,
        metadata=checked(
            Rule(
                lambda v: _is_int(v) and 0 <= v <= RANDAUGMENT_MAX_MAGNITUDE,
                f"an integer from 0 to {RANDAUGMENT_MAX_MAGNITUDE}",
            )
        ),
    )
    """Strength of every randaugment op, on torchvision's scale of 0 to 30."""
    randaugment_ops: int = field(default=2, metadata=checked(POSITIVE_INT))
    """Ops randaugment draws and applies to each image, one after the other."""
    random_erasing: float = field(default=0.0, metadata=checked(number(0, 1, high_open=False)))
    """Share of training images with a random rectangle erased to noise (timm's
    RandomErasing, after normalization); 0: off."""
    batch_size: int = field(default=64, metadata=checked(POSITIVE_INT))
    """Per optimizer step, over all processes."""
    num_workers: Any = field(
        default="auto",
        metadata=checked(
            Rule(_auto_or(lambda v: _is_int(v) and v >= 0), "auto or an integer >= 0")
        ),
    )
    """DataLoader workers per process."""
    num_classes: int = field(default=10, metadata=checked(int_at_least(2)))
    max_bad_fraction: float = field(default=0.01, metadata=checked(FRACTION))
    """Unreadable files skipped before failing."""
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


# -- model: the group's _target_ is the class each schema builds


@dataclass
class ScratchCNNConfig:
    """model=scratch_cnn: 5 x (conv -> activation -> max-pool), dense, dropout, head."""

    _target_: str = "inat.models.ScratchCNN"
    filters: list[int] = field(
        default_factory=lambda: [32, 64, 128, 128, 256],
        metadata=checked(
            Rule(_five(lambda v: _is_int(v) and v >= 1), f"a list of {NUM_BLOCKS} integers >= 1")
        ),
    )
    """Output channels of the 5 conv blocks."""
    kernel_size: Any = field(
        default=5,
        metadata=checked(
            Rule(
                lambda v: _odd_positive(v) or _five(_odd_positive)(v),
                f"an odd integer >= 1 or a list of {NUM_BLOCKS} of them "
                "(odd: a convolution then keeps the image size)",
            )
        ),
    )
    activation: str = field(default="gelu", metadata=checked(one_of(*ACTIVATIONS)))
    batch_norm: bool = True
    """BatchNorm2d after each conv."""
    dropout: float = field(default=0.3, metadata=checked(FRACTION))
    """Before the output layer."""
    dense_neurons: int = field(default=256, metadata=checked(POSITIVE_INT))
    """Width of the dense layer."""
    pool: str = field(default="flatten", metadata=checked(one_of(*POOLS)))
    """What the dense layer sees of the last block: flatten (every position, the original's),
    or avg or max (its global average or maximum per channel)."""


# model.backbone: whether timm knows a name is checked where the model is built
# (inat.models.backbones.find_backbone), which imports timm only for a timm name.
BACKBONE = Rule(
    _non_empty,
    f"one of {', '.join(BACKBONES)} (torchvision's), or a timm model name (timm.list_models(), "
    "a pretrained tag allowed; timm/NAME for timm's version of one of those), or "
    "torchvision/NAME for any other torchvision model",
)


@dataclass
class UnfreezeScheduleConfig:
    """model.unfreeze_schedule: gradual unfreezing of what model.strategy trains (last_k or
    full), deepest stage first, the stem last; off while head_epochs is null."""

    head_epochs: int | None = field(default=None, metadata=checked(int_at_least(0, nullable=True)))
    """Epochs of the head alone, before the first stage unfreezes; null: off."""
    every: int = field(default=1, metadata=checked(POSITIVE_INT))
    """Epochs between one stage unfreezing and the next."""


@dataclass
class FineTuneConfig:
    """model=finetune: a pretrained torchvision or timm backbone with a new head."""

    _target_: str = "inat.models.FineTuneModel"
    backbone: str = field(default="resnet50", metadata=checked(BACKBONE))
    strategy: str = field(default="head", metadata=checked(one_of(*STRATEGIES)))
    """What is trained."""
    last_k: int = field(default=1, metadata=checked(POSITIVE_INT))
    """Stages unfrozen by last_k (at most the backbone's)."""
    weights: str | None = "DEFAULT"
    """A weights name (DEFAULT; torchvision's IMAGENET1K_V1...; timm's pretrained), a file,
    an s3:// URI, null."""
    backbone_lr_scale: float = field(default=0.1, metadata=checked(POSITIVE))
    """Backbone lr = optimizer.lr * this."""
    dropout: float = field(default=0.0, metadata=checked(FRACTION))
    """Before the new head."""
    layer_decay: float | None = field(
        default=None, metadata=checked(number(0, 1, low_open=True, high_open=False, nullable=True))
    )
    """Layer-wise lr decay: each stage below the last one more factor (inat.models.stages)."""
    unfreeze_schedule: UnfreezeScheduleConfig = field(default_factory=UnfreezeScheduleConfig)


# -- optimizer: torch.optim classes, built by the trainer with the model's param groups


@dataclass
class OptimizerConfig:
    """What every optimizer takes."""

    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    """The trainer passes the model's parameter groups."""
    lr: float = field(default=0.001, metadata=checked(POSITIVE))
    weight_decay: float = field(default=0.0, metadata=checked(number(0)))


@dataclass
class AdamConfig(OptimizerConfig):
    """optimizer=adam | adamw | nadam."""

    betas: list[float] = field(
        default_factory=lambda: [0.9, 0.999],
        metadata=checked(
            Rule(
                lambda v: len(v) == 2 and all(FRACTION.accepts(b) for b in v),
                "two numbers in [0, 1)",
            )
        ),
    )


@dataclass
class SGDConfig(OptimizerConfig):
    """optimizer=sgd."""

    _target_: str = "torch.optim.SGD"
    lr: float = field(default=0.01, metadata=checked(POSITIVE))
    momentum: float = field(default=0.9, metadata=checked(number(0)))
    nesterov: bool = False


# -- scheduler: its name picks the schedule; each schema holds that schedule's keys


@dataclass
class ConstantConfig:
    """scheduler=constant: the optimizer's lr throughout, after an optional linear warm-up."""

    name: str = field(default="constant", metadata=checked(one_of("constant")))
    warmup_epochs: float = field(default=0, metadata=checked(number(0)))
    """May be fractional."""


@dataclass
class CosineConfig:
    """scheduler=cosine: linear warm-up, then cosine decay to min_lr_ratio * lr."""

    name: str = field(default="cosine", metadata=checked(one_of("cosine")))
    warmup_epochs: float = field(default=1, metadata=checked(number(0)))
    """May be fractional."""
    min_lr_ratio: float = field(default=0.0, metadata=checked(number(0, 1, high_open=False)))


@dataclass
class OneCycleConfig:
    """scheduler=onecycle: torch's OneCycleLR with optimizer.lr as the peak."""

    name: str = field(default="onecycle", metadata=checked(one_of("onecycle")))
    pct_start: float = field(default=0.3, metadata=checked(number(0, 1, low_open=True)))
    """Share of steps increasing lr."""


# -- trainer, storage, logger


@dataclass
class TrainerConfig:
    """trainer: how the loop runs (configs/trainer/default.yaml)."""

    epochs: int = field(default=10, metadata=checked(POSITIVE_INT))
    mixed_precision: str = field(default="no", metadata=checked(one_of(*MIXED_PRECISION)))
    grad_accum_steps: int = field(default=1, metadata=checked(POSITIVE_INT))
    """Micro-batches per optimizer step."""
    grad_clip_norm: float | None = field(
        default=None, metadata=checked(number(0, low_open=True, nullable=True))
    )
    max_nonfinite_steps: int = field(default=20, metadata=checked(POSITIVE_INT))
    """Inf/NaN steps in a row: diverged."""
    label_smoothing: float = field(default=0.0, metadata=checked(FRACTION))
    """Share of each target spread evenly over the classes; with mixup or cutmix it is folded
    into the mixed targets (inat.train.mixing)."""
    mixup_alpha: float = field(default=0.0, metadata=checked(number(0)))
    """Mixup: a batch is blended with itself in reverse order, the share drawn from
    Beta(alpha, alpha); 0: off."""
    cutmix_alpha: float = field(default=0.0, metadata=checked(number(0)))
    """CutMix: a box of the batch in reverse order is pasted in, its area drawn from
    Beta(alpha, alpha); 0: off. With mixup on too, each mixed batch gets one of the two."""
    mix_prob: float = field(
        default=1.0, metadata=checked(number(0, 1, low_open=True, high_open=False))
    )
    """Share of batches mixed while mixup or cutmix is on."""
    early_stopping_patience: int | None = field(
        default=None, metadata=checked(int_at_least(1, nullable=True))
    )
    keep_checkpoints: int = field(default=2, metadata=checked(POSITIVE_INT))
    """Recent checkpoints kept besides the best."""
    log_every_n_steps: int = field(default=50, metadata=checked(POSITIVE_INT))
    cpu: bool = False
    """Train on the CPU even when a GPU is there."""
    channels_last: bool = True
    """NHWC memory format for convolutions."""
    compile: bool = False
    """Torch.compile the model."""
    cache_features: Any = field(
        default="auto",
        metadata=checked(Rule(_auto_or(lambda v: isinstance(v, bool)), "auto, true or false")),
    )
    """Head-only fine-tuning on the frozen backbone's features, computed once."""
    lease_timeout_s: float = field(default=300, metadata=checked(POSITIVE))
    """Seconds without a heartbeat after which another process may take the run over."""
    ema_decay: float | None = field(
        default=None, metadata=checked(number(0, 1, low_open=True, nullable=True))
    )
    """Keep a moving average of the weights with this decay per optimizer step (e.g. 0.999);
    validation, the best checkpoint's test, evaluate, predict and export then use it."""
    ema_warmup: bool = True
    """Let the average's decay grow from 0 to ema_decay over the first steps (timm's warm-up)."""
    tta: str = field(default="none", metadata=checked(one_of(*TTA_MODES)))
    """Test-time augmentation of the test (and of evaluate and predict): none, or flip (the
    mean of the predictions for each image and its mirror image)."""


@dataclass
class S3Settings:
    """storage: how to reach and talk to S3; null leaves a value to boto3's own chain."""

    endpoint_url: str | None = None
    """An S3-compatible server; null: AWS_ENDPOINT_URL[_S3]."""
    region: str | None = None
    """The region; null: AWS_REGION, AWS_DEFAULT_REGION or the profile's."""
    addressing_style: str | None = field(
        default=None, metadata=checked(one_of(*ADDRESSING_STYLES, None))
    )
    retry_mode: str | None = field(default="standard", metadata=checked(one_of(*RETRY_MODES, None)))
    max_attempts: int | None = field(default=10, metadata=checked(int_at_least(1, nullable=True)))
    """Attempts of one request (botocore's), the first included."""
    retry_budget_s: float = field(default=300, metadata=checked(number(0)))
    """Seconds an operation keeps being retried after botocore's attempts failed."""
    connect_timeout: float = field(default=10, metadata=checked(POSITIVE))
    """Seconds to open a connection."""
    read_timeout: float = field(default=60, metadata=checked(POSITIVE))
    """Seconds to wait for data."""
    multipart_threshold_mb: float = field(default=64, metadata=checked(POSITIVE))
    """Larger files move in parts."""

    @property
    def multipart_threshold(self) -> int:
        """The multipart threshold in bytes."""
        return int(self.multipart_threshold_mb * 1024 * 1024)


@dataclass
class WandbConfig:
    """logger=wandb: Weights & Biases (WANDB_MODE, WANDB_API_KEY from the environment)."""

    project: str = "inat"
    entity: str | None = None
    group: str | None = None
    """The run group; null: the sweep's name for sweep points."""
    tags: list[str] = field(default_factory=lambda: [])
    log_checkpoint: bool = False
    """Upload the best checkpoint as a model artifact when the run ends."""


@dataclass
class TensorBoardConfig:
    """logger=tensorboard: event files in the run directory's tensorboard/ folder."""


@dataclass
class MLflowConfig:
    """logger=mlflow: one MLflow run per inat run (MLFLOW_TRACKING_URI from the environment)."""

    experiment: str | None = None
    """The experiment; null: the sweep's name for sweep points, else the run's name."""
    log_checkpoint: bool = False
    """Also log the best checkpoint as an artifact (checkpoint/state.pt)."""


@dataclass
class CSVConfig:
    """logger=csv: metrics.csv in the run directory, one row per logged step, epoch and test."""


@dataclass
class LoggerConfig:
    """logger=NAME or logger=[NAME,...]: the trackers chosen, each under its own key."""

    wandb: WandbConfig | None = None
    tensorboard: TensorBoardConfig | None = None
    mlflow: MLflowConfig | None = None
    csv: CSVConfig | None = None


# -- the top level: groups are typed by their own schemas, merged in by the defaults list


@dataclass
class TrainConfig:
    """The composed config of one training run (configs/train.yaml)."""

    name: str | None = field(
        default=None,
        metadata=checked(
            Rule(
                lambda v: v is None or _non_empty(v),
                "a non-empty name, or null (named after its config)",
            )
        ),
    )
    """The run's folder below `output` (a sweep's points get subfolders); null: its model and
    a hash of its config (inat.rundir.run_name), so a new config gets a new folder."""
    output: str = field(
        default="outputs",
        metadata=checked(Rule(_non_empty, "a local folder or s3:// URI")),
    )
    seed: int = field(default=42, metadata=checked(int_at_least(0)))
    run_dir: str = field(
        default="${output}/${name}", metadata=checked(Rule(_non_empty, "a folder or s3:// URI"))
    )
    """This run's directory; each point of a multirun gets its own below it."""
    data: Any = None
    model: Any = None
    optimizer: Any = None
    scheduler: Any = None
    trainer: Any = None
    storage: Any = None
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    """The trackers chosen (logger=[wandb,mlflow]); none: metrics.jsonl alone."""


# -- rules across keys: each yields (the key it names, what is allowed) for a composed config


def _unfreeze_schedule(cfg: Any) -> Iterator[tuple[str, str]]:
    # Gradual unfreezing unfreezes backbone stages; the head strategy trains none.
    key = "model.unfreeze_schedule.head_epochs"
    if OmegaConf.select(cfg, key) is not None and cfg.model.strategy == "head":
        yield key, "null with model.strategy=head, or model.strategy=last_k or full to unfreeze"


def _random_erasing(cfg: Any) -> Iterator[tuple[str, str]]:
    # Erasing is augmentation: none must mean fixed inputs (trainer.cache_features relies on it).
    if cfg.data.random_erasing > 0 and augmentation(cfg.data.augment) == "none":
        yield "data.random_erasing", "0 with data.augment=none, or a data.augment that augments"


RELATIONS: tuple[Callable[[Any], Iterator[tuple[str, str]]], ...] = (
    _unfreeze_schedule,
    _random_erasing,
)

# -- registration: the schemas as configs of the `schema/<group>` groups


def _config_help(*, _root_: Any) -> str:
    from inat.config_help import annotated

    return annotated(_root_)


def _config_groups() -> str:
    from inat.config_help import groups

    return groups()


def register() -> None:
    """Store every schema in Hydra's ConfigStore, where the YAML files find them, and the
    resolver of `inat train --help`'s config section (see inat.config_help)."""
    OmegaConf.register_new_resolver("inat_config_help", _config_help, replace=True)
    OmegaConf.register_new_resolver("inat_config_groups", _config_groups, replace=True)
    store = ConfigStore.instance()
    store.store(group="schema", name="train", node=TrainConfig)
    for group, name, node in (
        ("data", "nature12k", DataConfig),
        ("model", "scratch_cnn", ScratchCNNConfig),
        ("model", "finetune", FineTuneConfig),
        ("optimizer", "adam", AdamConfig),
        ("optimizer", "sgd", SGDConfig),
        ("scheduler", "constant", ConstantConfig),
        ("scheduler", "cosine", CosineConfig),
        ("scheduler", "onecycle", OneCycleConfig),
        ("trainer", "default", TrainerConfig),
        ("storage", "default", S3Settings),
        ("logger", "wandb", WandbConfig),
        ("logger", "tensorboard", TensorBoardConfig),
        ("logger", "mlflow", MLflowConfig),
        ("logger", "csv", CSVConfig),
    ):
        store.store(group=f"schema/{group}", name=name, node=node)


register()
