"""The config section of `inat train --help`: every key of the composed config with its
value, the comment its YAML file gives it and what its schema allows.

Hydra's help template (configs/hydra/default.yaml) calls the `inat_config_groups` and
`inat_config_help` resolvers, which inat.schema registers; the comments come from the group
files chosen (hydra's runtime choices) and train.yaml, the allowed values from
inat/schema.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from inat.secrets import redact

CONFIGS = Path(__file__).parent / "configs"
_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w]*):(?P<rest>.*)$")
_VAGUE = ("a value of the right type", "Any")  # no rule to show


def yaml_comments(path: Path) -> dict[str, str]:
    """The comment at the end of each key's line of a YAML file, by dotted key."""
    comments: dict[str, str] = {}
    parents: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    for line in path.read_text().splitlines():
        match = _KEY_LINE.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        parents = [(i, k) for i, k in parents if i < indent]
        key = ".".join([*(k for _, k in parents), match["key"]])
        parents.append((indent, match["key"]))
        value, hash_, comment = match["rest"].partition(" #")
        if hash_ and value.count('"') % 2 == 0 and value.count("'") % 2 == 0:
            comments[key] = comment.strip()
    return comments


def _comments(root: DictConfig) -> dict[str, str]:
    """Comments by full dotted key: train.yaml's and those of each chosen group file."""
    found = yaml_comments(CONFIGS / "train.yaml")
    choices = OmegaConf.select(root, "hydra.runtime.choices") or {}
    for group, option in choices.items():
        path = CONFIGS / group / f"{option}.yaml"
        if group.startswith(("hydra", "schema")) or option is None or not path.is_file():
            continue
        found |= {f"{group}.{key}": text for key, text in yaml_comments(path).items()}
    return found


def _value(value: Any) -> str:
    """`value` on one line, as YAML writes it (lists in brackets)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _lines(node: DictConfig, values: dict[str, Any], prefix: str, notes: dict[str, str]):
    from inat.compose import allowed_words

    for key, value in values.items():
        if key.startswith("_"):
            continue
        full = f"{prefix}{key}"
        indent = "  " * full.count(".")
        if isinstance(value, dict):
            yield f"{indent}{key}:"
            yield from _lines(node[key], value, f"{full}.", notes)
            continue
        words = allowed_words(OmegaConf.get_type(node), key)
        parts = [notes.get(full, ""), "" if words in _VAGUE else f"allowed: {words}"]
        comment = "; ".join(p for p in parts if p)
        yield f"{indent}{key}: {_value(value)}" + (f"  # {comment}" if comment else "")


def annotated(root: DictConfig) -> str:
    """The composed config (without hydra), a line per key with its comment and what it
    allows; `$` doubled for Hydra's string.Template."""
    values = redact(OmegaConf.to_container(root, resolve=False))
    values.pop("hydra", None)
    text = "\n".join(_lines(root, values, "", _comments(root)))
    return text.replace("$", "$$")


def groups() -> str:
    """The groups a user chooses options of (group=option), a line each: the folders of
    configs/ (the schema/* groups of inat.schema are types, never chosen)."""
    folders = sorted(
        p for p in CONFIGS.iterdir() if p.name != "hydra" and p.is_dir() and any(p.glob("*.yaml"))
    )
    return "\n".join(
        f"{folder.name}: {', '.join(sorted(f.stem for f in folder.glob('*.yaml')))}"
        for folder in folders
    )
