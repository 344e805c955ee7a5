"""The layout of a data set folder: <root>/train/<class>/<images>, <root>/val/<class>/<images>,
or a plain folder of class folders, <root>/<class>/<images> (FLAT).

train/ is split into training and validation data; val/ is the test set. A flat folder's
images are split into all three (inat.data.split).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from inat.errors import DataError

SPLITS = ("train", "val")
FLAT = "."  # the "split folder" of a flat data set: its root
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

Sample = tuple[str, int]
"""An image as (path relative to its split folder, in POSIX form; class index)."""


def _visible(name: str) -> bool:
    return not name.startswith(".") and name != "__MACOSX"


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p.name))


def has_splits(folder: Path) -> bool:
    """Whether `folder` holds train/ and val/ (else it is a flat folder of class folders)."""
    return all((folder / split).is_dir() for split in SPLITS)


def _is_flat(folder: Path) -> bool:
    """Whether `folder` is a plain folder of class folders: two or more, images in them."""
    subfolders = _subfolders(folder)
    return len(subfolders) >= 2 and any(
        p.suffix.lower() in IMAGE_SUFFIXES for sub in subfolders for p in sub.iterdir()
    )


def _is_root(folder: Path) -> bool:
    return has_splits(folder) or _is_flat(folder)


def _describe(folder: Path, depth: int = 1) -> str:
    entries = sorted(p for p in folder.iterdir() if _visible(p.name))
    if not entries:
        return "nothing"
    if depth and len(entries) == 1 and entries[0].is_dir():
        return f"{entries[0].name}/, holding {_describe(entries[0], depth - 1)}"
    names = [p.name + ("/" if p.is_dir() else "") for p in entries]
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return ", ".join(names[:10]) + more


def find_root(folder: Path, source: str | None = None) -> Path:
    """The data set's folder: the one holding train/ and val/, or class folders of images;
    `folder` itself or its only subfolder.

    `source` names where `folder` came from (an archive, a URL) for the message.
    """
    if _is_root(folder):
        return folder
    subfolders = _subfolders(folder)
    if len(subfolders) == 1 and _is_root(subfolders[0]):
        return subfolders[0]
    raise DataError(
        f"{source or folder} has no train/ and val/ folders and no class folders of images; "
        f"found: {_describe(folder)}. A data set needs train/<class>/<images> and "
        "val/<class>/<images>, or two or more <class>/<images> folders, at its top or in its "
        "only subfolder (like inaturalist_12K/ in nature_12K.zip). Check data.source."
    )


def refuse_links_out(root: Path, paths: Iterable[Path]) -> None:
    """DataError naming those of `paths` (below `root`) that lead outside `root`, through a
    symbolic link: a data set is read from its own folder only (`train/etc -> /etc` would
    read the system's files as a class). Links that stay inside `root` are followed."""
    base = root.resolve()
    leaving = [(path, path.resolve()) for path in paths]
    leaving = [(path, target) for path, target in leaving if not target.is_relative_to(base)]
    if leaving:
        listed = ", ".join(f"{path.relative_to(root)} -> {target}" for path, target in leaving[:5])
        more = f" and {len(leaving) - 5} more" if len(leaving) > 5 else ""
        raise DataError(
            f"{root} holds symbolic links that lead outside it: {listed}{more}. inat reads a "
            "data set only from inside its folder. Copy what they point to into the data set "
            "(cp -rL), or remove the links."
        )


def class_folders(folder: Path) -> list[str]:
    """The sorted names of the (visible) subfolders of `folder`: its class folders, each of
    which must stay inside `folder` (see refuse_links_out)."""
    subfolders = _subfolders(folder)
    refuse_links_out(folder, subfolders)
    return [p.name for p in subfolders]


def find_classes(root: Path) -> list[str]:
    """Sorted class names: the subfolders of train/, which val/ must have too. Class folders
    must stay inside `root` (see refuse_links_out)."""
    train, val = _subfolders(root / "train"), _subfolders(root / "val")
    refuse_links_out(root, [*train, *val])
    train, val = [p.name for p in train], [p.name for p in val]
    if not train:
        raise DataError(
            f"{root / 'train'} has no class folders. Put each class's images in "
            "train/<class>/ and val/<class>/."
        )
    problems = [
        f"{root / split} lacks {', '.join(missing)}"
        for split, missing in (
            ("val", sorted(set(train) - set(val))),
            ("train", sorted(set(val) - set(train))),
        )
        if missing
    ]
    if problems:
        raise DataError(
            f"train/ and val/ must hold the same class folders: {'; '.join(problems)}. "
            "Add the missing class folders with images, or remove the class from both."
        )
    return train


def list_images(split_dir: Path, classes: Sequence[str], root: Path | None = None) -> list[Sample]:
    """Every image file below `split_dir/<class>/`, sorted by path (hidden files skipped).

    A file that is a link must stay inside `root`, the data set's folder (by default the
    parent of `split_dir`; see refuse_links_out).
    """
    samples = []
    links = []
    for label, name in enumerate(classes):
        # rglob does not descend into linked folders: below a class folder, only the files
        # themselves can be links.
        for path in (split_dir / name).rglob("*"):
            rel = path.relative_to(split_dir)
            if (
                rel.suffix.lower() in IMAGE_SUFFIXES
                and all(_visible(part) for part in rel.parts)
                and path.is_file()
            ):
                samples.append((rel.as_posix(), label))
                if path.is_symlink():
                    links.append(path)
    refuse_links_out(split_dir.parent if root is None else root, links)
    return sorted(samples)


def require_every_class(samples: Sequence[Sample], classes: Sequence[str], split_dir: Path) -> None:
    """DataError naming the class folders of `split_dir` that have no (usable) image."""
    empty = sorted(set(classes) - {classes[label] for _, label in samples})
    if empty:
        raise DataError(
            f"class folder(s) {', '.join(empty)} in {split_dir} hold no readable image "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}). Add images, or remove the class from "
            "train/ and val/ and set data.num_classes to the new number of classes."
        )
