"""The project's YAML configs, shipped inside the package as ``infomin.configs``.

Why: a plain ``pip install`` has no checkout beside it, so every tool must find its configs in
the installed package, the way Detectron2's ``model_zoo.get_config_file`` finds its own. A config
is named by its path relative to this folder:

* ``detection/coco/*.yaml``, ``detection/voc/*.yaml`` -- the Detectron2 transfer protocols (their
  ``Base-*.yaml`` bases in ``detection/``),
* ``pretrain/*.yaml`` -- the pretraining engine's method presets,
* ``views/*.yaml`` -- the view tools (STL-10 view learning, view sweeps),
* ``study/*.yaml`` -- the one-command study.

``_BASE_`` entries are relative paths, so the chains resolve wherever the folder is installed.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path, PurePosixPath

__all__ = ["CONFIG_ROOT", "list_config_files", "get_config_file", "resolve_config_file"]

CONFIG_ROOT = Path(__file__).resolve().parent
_FOLDERS = "detection/coco/, detection/voc/, pretrain/, views/, study/"


def list_config_files() -> list[str]:
    """Every packaged config, as the names `get_config_file` takes (sorted)."""
    return sorted(p.relative_to(CONFIG_ROOT).as_posix() for p in CONFIG_ROOT.rglob("*.yaml"))


def _normalise(name: str) -> str | None:
    """`name` as a path below CONFIG_ROOT (a leading "configs/" is the checkout's spelling of the
    same name); None when it would leave the folder."""
    parts = PurePosixPath(str(name).replace(os.sep, "/")).parts
    if parts[:1] == ("configs",):
        parts = parts[1:]
    if not parts or parts[0] == "/" or ".." in parts:
        return None
    return PurePosixPath(*parts).as_posix()


def _close_matches(name: str) -> list[str]:
    names = list_config_files()
    wanted = _normalise(name) or str(name)
    same_file = [n for n in names if PurePosixPath(n).name == PurePosixPath(wanted).name]
    by_path = difflib.get_close_matches(wanted, names, n=5, cutoff=0.6)
    by_file = {PurePosixPath(n).name: n for n in names}
    by_name = [by_file[f] for f in difflib.get_close_matches(PurePosixPath(wanted).name, list(by_file), n=3)]
    return list(dict.fromkeys(same_file + by_path + by_name))[:5]


def _not_found(name: str, what: str, where: str = "") -> FileNotFoundError:
    close = _close_matches(name)
    hint = (f"close matches: {', '.join(close)}" if close
            else f"packaged configs are under {_FOLDERS} (infomin.configs.list_config_files())")
    return FileNotFoundError(f"{what} {name!r} does not exist{where}; {hint}.")


def get_config_file(name: str) -> str:
    """Absolute path of a packaged config, e.g. "detection/coco/mask_rcnn_R50_FPN_1x_coco_infomin.yaml"
    (mirrors Detectron2's `model_zoo.get_config_file`)."""
    rel = _normalise(name)
    path = CONFIG_ROOT / rel if rel else None
    if path is None or not path.is_file() or path.suffix not in (".yaml", ".yml"):
        raise _not_found(name, "packaged config")
    return str(path)


def resolve_config_file(path_or_name: str) -> str:
    """What every tool's ``--config-file`` goes through: an existing file is used as given,
    anything else is looked up as a packaged config name."""
    if os.path.isfile(path_or_name):
        return path_or_name
    try:
        return get_config_file(path_or_name)
    except FileNotFoundError:
        raise _not_found(path_or_name, "config file", " (neither as a file nor as a packaged config name)") from None
