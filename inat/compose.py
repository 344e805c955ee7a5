"""Composing `inat train`'s config, checked once: the one place a bad key or value is found.

    cfg = compose(["optimizer.lr=0.01", "model=finetune"])   # a validated DictConfig

Hydra refuses unknown keys and wrong types while it composes (the YAML files extend
the schemas of inat/schema.py); `validate` then checks each field's `Rule` and the
rules across keys. Every failure becomes one `ConfigError` (exit code 65) that names
the key, what is allowed and, for a misspelt key, the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
    ValidationError,
)

from inat import configs, schema
from inat.errors import ConfigError
from inat.rundir import run_name
from inat.secrets import redact

CONFIG_MODULE = "inat.configs"
CONFIG_DIR = Path(configs.__file__).parent
# Where each primary config's keys are listed, for the end of an error message.
HELP = {
    "train": "`inat train --help` lists every group and key.",
    "slurm_sweep": "The launcher's keys are in inat/configs/hydra/launcher/slurm.yaml.",
}

# What a field of each annotated type takes, for a value Hydra could not convert.
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "list[int]": "a list of integers",
    "list[float]": "a list of numbers",
    "list[str]": "a list of strings",
}


def compose(
    overrides: Sequence[str] = (), config_name: str = "train", *, hydra_node: bool = False
) -> DictConfig:
    """The config `config_name` with Hydra `overrides`, validated; ConfigError if it is bad.

    `hydra_node`: keep Hydra's own node (`cfg.hydra`), as a launcher needs it.
    """
    overrides = hydra_overrides([str(o) for o in overrides])
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            cfg = hydra_compose(config_name, overrides, return_hydra_config=hydra_node)
    except (HydraException, OmegaConfBaseException) as e:
        raise config_error(e, overrides, config_name) from e
    except AssertionError as e:  # OmegaConf cannot set a key below a null section
        raise _unchosen_section(overrides) from e
    validate(cfg)
    if OmegaConf.get_type(cfg) is schema.TrainConfig:
        name_run(cfg)
    return cfg


def name_run(cfg: DictConfig, leave_out: Sequence[str] = ()) -> None:
    """Name a validated train config that has no name (`name` null) after what it trains,
    `leave_out` (a multirun's swept keys) left out: see inat.rundir.run_name."""
    if cfg.name is None:
        cfg.name = run_name(OmegaConf.to_container(cfg, resolve=True), leave_out)


def hydra_overrides(overrides: Sequence[str]) -> list[str]:
    """`overrides` as Hydra takes them: `logger=null`, which Hydra refuses for a group,
    chooses no tracker (`logger=[]`), as leaving `logger=` out does."""
    return ["logger=[]" if o.replace(" ", "").lower() == "logger=null" else o for o in overrides]


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first key or value the schemas do not allow."""
    for problem in problems(cfg):
        raise ConfigError(problem)


def problems(cfg: DictConfig) -> Iterator[str]:
    """A message for each key of `cfg` its schema lacks and each value that breaks a rule."""
    try:
        yield from _node_problems(cfg, "")
        # The rules across keys are those of a training run's config.
        relations = schema.RELATIONS if OmegaConf.get_type(cfg) is schema.TrainConfig else ()
        for relation in relations:
            for key, allowed in relation(cfg):
                yield _not_allowed(key, OmegaConf.select(cfg, key), allowed)
    except OmegaConfBaseException as e:  # an interpolation that does not resolve
        raise config_error(e, ()) from e


def _node_problems(node: DictConfig, prefix: str) -> Iterator[str]:
    kind = OmegaConf.get_type(node)
    fields = {f.name: f for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else {}
    for key in node:
        if prefix == "" and key == "hydra":
            continue
        if dataclasses.is_dataclass(kind) and key not in fields:  # added with +key=...
            tree = OmegaConf.to_container(node, resolve=False)
            yield _unknown_key(f"{prefix}{key}", prefix.rstrip("."), {k: tree[k] for k in fields})
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig) and child._is_none():
            continue  # an optional section left out (logger.mlflow when not chosen)
        rule = fields[key].metadata.get("rule") if key in fields else None
        if isinstance(child, DictConfig) and not dataclasses.is_dataclass(
            OmegaConf.get_type(child)
        ):
            # Every group's node has its schema; a plain one was made with +group.key=...
            # while the group is not chosen (logger: null).
            example = min(p.stem for p in (CONFIG_DIR / key).glob("*.yaml"))
            yield (
                f"{prefix}{key} has no config group chosen, so {prefix}{key}.* cannot be set: "
                f"choose one first, e.g. {prefix}{key}={example} (`inat train --help` lists "
                "them)."
            )
            continue
        if isinstance(child, DictConfig):
            yield from _node_problems(child, f"{prefix}{key}.")
        elif rule is not None:
            value = node[key]
            if isinstance(value, ListConfig):
                value = OmegaConf.to_container(value, resolve=True)
            if not rule.accepts(value):
                yield _not_allowed(f"{prefix}{key}", value, rule.allowed)


def _not_allowed(key: str, value: Any, allowed: str) -> str:
    return f"{key}={_shown(value)} is not allowed: use {allowed}."


def _shown(value: Any) -> str:
    """`value` as an override would write it."""
    if isinstance(value, str):
        return repr(value)
    if value is None or isinstance(value, bool):
        return str(value).lower() if value is not None else "null"
    if isinstance(value, list):
        return f"[{', '.join(map(_shown, value))}]"
    return str(value)


def config_error(
    error: BaseException, overrides: Sequence[str], config_name: str = "train"
) -> ConfigError:
    """The one clear ConfigError for a Hydra or OmegaConf error while composing.

    A key or value that a config file (an experiment, a group option) got wrong is named
    with the file: `in experiment/x: optimizer.lrr is not a config key: ...`.
    """
    where = HELP.get(config_name, "")
    if isinstance(error, MissingConfigException):
        return _missing_option(error, where)
    if isinstance(error, OverrideParseException):
        return _unparsable(error, overrides, where)
    source = re.match(r"In '([^']+)'", str(error))
    origin = f"in {source[1]}: " if source else ""
    given = () if source else overrides  # a file's error is not about the overrides' values
    cause = _omegaconf_cause(error)
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and cause.full_key:
        return ConfigError(origin + _unknown_key_message(cause, given, where))
    if isinstance(cause, ValidationError) and cause.full_key:
        return ConfigError(origin + _wrong_type_message(cause, given))
    detail = str(cause.msg if cause is not None else error).splitlines()[0]
    if cause is not None and cause.full_key:
        origin += f"{cause.full_key}: "
    return ConfigError(f"the config does not compose: {origin}{detail}. {where}".strip())


def _unchosen_section(overrides: Sequence[str]) -> ConfigError:
    """The error for a key set below a section that is null, a tracker not chosen
    (logger.mlflow.experiment=x without logger=mlflow)."""
    keys = [_override_key(o) for o in overrides if "=" in o]
    key = next((k for k in keys if k.startswith("logger.") and k.count(".") >= 2), "logger.*")
    tracker = key.split(".")[1]
    return ConfigError(
        f"{key} cannot be set: logger.{tracker} is not chosen. Choose it first, e.g. "
        f"logger={tracker} or logger=[{tracker},...] (`inat train --help` lists them)."
    )


def _unparsable(error: OverrideParseException, overrides: Sequence[str], where: str) -> ConfigError:
    """An override Hydra cannot read: name it; a value with `=` (a URL's query) or other
    characters of the grammar needs quotes."""
    bad = [o for o in overrides if "=" in o.partition("=")[2] and not _quoted(o)]
    detail = str(error).splitlines()[0]
    if not bad:
        return ConfigError(f"an override cannot be read: {detail}. {where}".strip())
    key, _, value = redact(bad[0]).partition("=")
    return ConfigError(
        f"{key}= has a value with '=' in it, which Hydra's override grammar reads as "
        f"syntax: quote the value, e.g. '{key}=\"{value}\"' (the outer quotes are the "
        f"shell's). {where}".strip()
    )


def _quoted(override: str) -> bool:
    value = override.partition("=")[2]
    return len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""


def _omegaconf_cause(error: BaseException | None) -> OmegaConfBaseException | None:
    """The OmegaConf error below Hydra's (raised from it, or while handling it)."""
    while error is not None:
        if isinstance(error, OmegaConfBaseException):
            return error
        error = error.__cause__ or error.__context__
    return None


def _missing_option(error: MissingConfigException, where: str) -> ConfigError:
    missing = error.missing_cfg_file or ""
    group, _, option = missing.rpartition("/")
    if not group or not error.options:
        return ConfigError(f"{str(error).splitlines()[0]}. {where}".strip())
    options = sorted(error.options)
    close = difflib.get_close_matches(option, options, n=1)
    hint = f"; did you mean {group}={close[0]}?" if close else ""
    return ConfigError(
        f"{group}={option} is not an option of the {group} group: use one of "
        f"{', '.join(options)}{hint}"
    )


def _unknown_key_message(
    error: ConfigAttributeError | ConfigKeyError, overrides: Sequence[str], where: str
) -> str:
    full_key = str(error.full_key)
    # The key as given: `optimzer.lr=1` fails at `optimzer`, and means optimizer.lr.
    given = [_override_key(o) for o in overrides]
    asked = next((k for k in given if k.startswith(f"{full_key}.")), full_key)
    node = error.parent_node
    tree = OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig) else None
    siblings = {k: v for k, v in tree.items() if k != "hydra"} if isinstance(tree, dict) else None
    return _unknown_key(asked, full_key.rpartition(".")[0], siblings, where)


def _unknown_key(
    asked: str, parent: str, siblings: dict[str, Any] | None, where: str = HELP["train"]
) -> str:
    """The message for an unknown key `asked` below `parent`, whose keys are `siblings`
    (None: `parent` is null)."""
    known = list(_dotted(siblings or {}, f"{parent}." if parent else ""))
    close = difflib.get_close_matches(asked, known, n=1, cutoff=0.8)
    if close:
        hint = f"did you mean {close[0]}?"
    elif siblings:
        hint = f"{parent or 'the top level'} takes {', '.join(sorted(siblings))}."
    elif siblings is None:
        hint = f"{parent} is empty (null) in this config; choose an option of its group first."
    else:
        hint = f"{parent} takes no keys."
    return f"{asked} is not a config key: {hint} {where}".strip()


def _override_key(override: str) -> str:
    """The key of a `key=value` override, without its +, ++ or ~."""
    return override.partition("=")[0].lstrip("+~")


def _dotted(tree: Any, prefix: str) -> Iterator[str]:
    """Every dotted key of a nested mapping, inner ones included."""
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        yield f"{prefix}{key}"
        yield from _dotted(value, f"{prefix}{key}.")


def _wrong_type_message(error: ValidationError, overrides: Sequence[str]) -> str:
    full_key = str(error.full_key)
    given = {_override_key(o): o.partition("=")[2] for o in overrides if "=" in o}
    found = re.search(r"Value '(.*?)' of type", str(error.msg))
    value = given.get(full_key, found[1] if found else "?")
    node = error.parent_node
    if isinstance(node, ListConfig) and node._get_parent() is not None:
        # An item of a list field: what is allowed is the list field's.
        field_key = re.sub(r"\[\d+\]$", "", full_key)
        allowed = allowed_words(OmegaConf.get_type(node._get_parent()), str(node._key()))
        return f"{full_key}={value!r} is not allowed: use {allowed} for {field_key}."
    allowed = allowed_words(error.object_type, str(error.key))
    return f"{full_key}={value!r} is not allowed: use {allowed}."


def allowed_words(kind: Any, key: str) -> str:
    """What field `key` of the schema `kind` takes, in words."""
    if not dataclasses.is_dataclass(kind):
        return "a value of the right type"
    for f in dataclasses.fields(kind):
        if f.name == key:
            if "rule" in f.metadata:
                return f.metadata["rule"].allowed
            type_name = str(f.type)
            optional = re.fullmatch(r"(.*) \| None", type_name)
            base = optional[1] if optional else type_name
            if base.endswith("Config"):  # a section a group option fills (logger=wandb)
                return "null (off), or its keys once its group option is chosen"
            words = _TYPE_WORDS.get(base, type_name)
            return f"null or {words}" if optional else words
    return "a value of the right type"
