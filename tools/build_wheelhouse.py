#!/usr/bin/env python
"""Collect the wheels an offline GPU machine needs beyond what it already has (`make wheelhouse`).

Why: a GPU node with no package index has Python, PyTorch and the common scientific stack, but
not Detectron2 (which has no release to install), its small dependencies, or this project. This
script, run on a connected machine, puts all of those into one folder as wheels for the node's
Python, so that `pip install --no-index --no-deps --find-links DIR DIR/*.whl` needs nothing else.

What it collects: the project's requirements (requirements.txt and setup.py's install_requires),
Detectron2 (built here as the pure-Python wheel of tools/install_detectron2.py), the project's own
wheel, and every dependency those wheels declare, walked through their metadata for the target
Python and platform; minus the packages the node already has (PREINSTALLED, extend it with
--preinstalled NAME). Binary packages come from the index as manylinux x86-64 wheels for the
target Python; packages published only as source are built here and must come out pure Python.

    python tools/build_wheelhouse.py [--python-version 3.12] [--out .wheelhouse]
    python tools/build_wheelhouse.py --list      # the root requirements only; no network
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent

# What the GPU node's image already holds (and what those packages pull in themselves), so none
# of it is collected: a wheel of these would shadow the node's own, CUDA-built torch included.
PREINSTALLED = frozenset(canonicalize_name(n) for n in (
    "torch", "torchvision", "numpy", "opencv-python-headless", "opencv-python", "timm", "scikit-image",
    "matplotlib", "tensorboard", "tqdm", "pyyaml", "pillow", "setuptools", "wheel", "pip", "pytest",
    # dependencies of torch and matplotlib, present wherever those are
    "packaging", "typing-extensions",
))

# Built here rather than downloaded: name -> builder(dest_dir) -> wheel path.
LOCAL_BUILDS = ("detectron2", "infomin")

# manylinux tags of glibc 2.17 to 2.28: wheels for these run on any x86-64 Linux with glibc >= 2.28.
PLATFORMS = tuple(f"manylinux_2_{n}_x86_64" for n in range(28, 16, -1)) + (
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")
DEFAULT_PYTHON_VERSION = "3.12"
DEFAULT_MAX_MB = 40.0
MANIFEST = "wheelhouse.json"


class WheelhouseError(RuntimeError):
    pass


# ---- the requirement list (pure computation: no network) -------------------------------------

def requirement_lines(path: Path) -> list[str]:
    """Requirement strings of a requirements file (comments, blanks and pip options dropped)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            out.append(line)
    return out


def setup_install_requires(path: Path) -> list[str]:
    """The literal ``install_requires=[...]`` list of a setup.py, read without running it."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return [str(v) for v in ast.literal_eval(node.value)]
    raise WheelhouseError(f"{path} has no literal install_requires=[...] list")


def target_environment(python_version: str) -> dict:
    """PEP 508 marker values of a CPython `python_version` on x86-64 Linux."""
    env = default_environment()
    full = python_version if python_version.count(".") >= 2 else f"{python_version}.0"
    env.update(python_version=".".join(python_version.split(".")[:2]), python_full_version=full,
               implementation_name="cpython", implementation_version=full,
               platform_python_implementation="CPython", sys_platform="linux", platform_system="Linux",
               platform_machine="x86_64", os_name="posix")
    return env


def applies(req: Requirement, env: dict, extras=("",)) -> bool:
    """True when `req`'s marker holds on the target for one of the requesting side's extras."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": extra}) for extra in extras)


def merge(requirements) -> dict[str, Requirement]:
    """One requirement per (canonical) name; version bounds and extras of repeats are combined."""
    merged: dict[str, Requirement] = {}
    for item in requirements:
        req = item if isinstance(item, Requirement) else Requirement(item)
        name = canonicalize_name(req.name)
        if name in merged:
            prev = merged[name]
            prev.specifier &= req.specifier
            prev.extras |= req.extras
        else:
            merged[name] = Requirement(str(req))
            merged[name].name = name
    return merged


def root_requirements(repo: Path = REPO, python_version: str = DEFAULT_PYTHON_VERSION,
                      preinstalled=PREINSTALLED) -> list[Requirement]:
    """What the project asks for, minus what the node has: the walk through wheel metadata starts here."""
    env = target_environment(python_version)
    listed = (requirement_lines(repo / "requirements.txt") + setup_install_requires(repo / "setup.py")
              + list(LOCAL_BUILDS))
    return [req for name, req in merge(listed).items()
            if name not in preinstalled and applies(req, env)]


# ---- the walk through wheel metadata ---------------------------------------------------------

@dataclass
class Wheel:
    path: Path
    name: str
    version: Version
    requires: list[Requirement] = field(default_factory=list)
    requested_by: list[str] = field(default_factory=list)


def read_wheel(path: Path) -> Wheel:
    """Name, version and Requires-Dist of a wheel file."""
    name, version, _, _ = parse_wheel_filename(path.name)
    with zipfile.ZipFile(path) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        msg = Parser().parsestr(zf.read(meta).decode("utf-8"))
    return Wheel(path, canonicalize_name(name), version,
                 [Requirement(r) for r in msg.get_all("Requires-Dist") or []])


def resolve(roots, fetch, python_version: str = DEFAULT_PYTHON_VERSION,
            preinstalled=PREINSTALLED) -> dict[str, Wheel]:
    """Every wheel the roots need on the target, transitively; `fetch(req) -> Wheel` gets one.

    A package is fetched for the first requirement naming it (the project's own come first); when
    a later one rejects that version, it is fetched again for all of its requirements together."""
    env = target_environment(python_version)
    chosen: dict[str, Wheel] = {}
    bounds: dict[str, dict[str, Requirement]] = {}  # name -> requiring package -> its requirement
    done: set[tuple[str, str]] = set()
    queue = [(req, "project") for req in roots]
    while queue:
        req, parent = queue.pop(0)
        name = canonicalize_name(req.name)
        if name in preinstalled:
            continue
        mine = bounds.setdefault(name, {})
        mine[parent] = merge([mine[parent], req] if parent in mine else [req])[name]
        wanted = merge(mine.values())[name]
        requested_by = []
        if name in chosen and not wanted.specifier.contains(chosen[name].version, prereleases=True):
            first = chosen.pop(name)
            print(f"  {parent} needs {req}: replacing {name} {first.version}", flush=True)
            requested_by = first.requested_by
            done = {d for d in done if d[0] != name}
            for other in bounds.values():  # the replaced wheel's own requirements no longer hold
                other.pop(name, None)
        if name not in chosen:
            chosen[name] = fetch(wanted)
            chosen[name].requested_by = requested_by
            if not wanted.specifier.contains(chosen[name].version, prereleases=True):
                raise WheelhouseError(f"fetched {name} {chosen[name].version}, which does not satisfy {wanted}")
        wheel = chosen[name]
        if parent not in wheel.requested_by:
            wheel.requested_by.append(parent)
        for extra in ("", *sorted(req.extras)):
            if (name, extra) not in done:
                done.add((name, extra))
                queue += [(dep, name) for dep in wheel.requires if applies(dep, env, (extra,))]
    return chosen


# ---- fetching and building (network) ----------------------------------------------------------

def _run(cmd, what):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise WheelhouseError(f"{what} failed: {' '.join(map(str, cmd))}\n{tail}")
    return proc


def _single(folder: Path, suffixes) -> Path:
    found = [p for p in folder.iterdir() if p.name.endswith(suffixes)]
    if len(found) != 1:
        raise WheelhouseError(f"expected one file in {folder}, found {[p.name for p in found]}")
    return found[0]


def _is_pure(path: Path) -> bool:
    return all(t.abi == "none" and t.platform == "any" for t in parse_wheel_filename(path.name)[3])


class Fetcher:
    """Gets one wheel per requirement into `out`: local builds, index wheels, or sdists built here."""

    def __init__(self, out: Path, python_version: str, python: str = sys.executable, sdist: str | None = None):
        self.out, self.python_version, self.python, self.sdist = out, python_version, python, sdist

    def __call__(self, req: Requirement) -> Wheel:
        name = canonicalize_name(req.name)
        builder = {"detectron2": self.build_detectron2, "infomin": self.build_project}.get(name)
        path = builder() if builder else self.download(req)
        print(f"  {path.name}", flush=True)
        return read_wheel(path)

    def build_detectron2(self) -> Path:
        spec = importlib.util.spec_from_file_location("install_detectron2", REPO / "tools" / "install_detectron2.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        try:
            return Path(module.build_wheel(str(self.out), self.sdist))
        except module.InstallError as exc:
            raise WheelhouseError(str(exc)) from exc

    def build_project(self) -> Path:
        with tempfile.TemporaryDirectory(prefix="wheelhouse-") as tmp:
            _run([self.python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                  "--wheel-dir", tmp, str(REPO)], "building the project's wheel")
            return self._keep(_single(Path(tmp), ".whl"))

    def download(self, req: Requirement) -> Path:
        spec = f"{req.name}{req.specifier}"
        flags = ["--python-version", self.python_version, "--implementation", "cp"]
        for platform in PLATFORMS:
            flags += ["--platform", platform]
        with tempfile.TemporaryDirectory(prefix="wheelhouse-") as tmp:
            # --no-deps allows a source distribution when the package has no wheel at all
            _run([self.python, "-m", "pip", "download", "--quiet", "--no-deps", *flags, "--dest", tmp, spec],
                 f"downloading {spec} for Python {self.python_version}")
            got = _single(Path(tmp), (".whl", ".tar.gz", ".zip"))
            if got.name.endswith(".whl"):
                return self._keep(got)
            built = Path(tmp) / "built"
            _run([self.python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                  "--wheel-dir", str(built), str(got)], f"building a wheel of {got.name}")
            wheel = _single(built, ".whl")
            if not _is_pure(wheel):
                raise WheelhouseError(f"{spec} has no wheel for Python {self.python_version} on manylinux "
                                      f"x86-64, and its source builds a platform wheel here ({wheel.name})")
            return self._keep(wheel)

    def _keep(self, path: Path) -> Path:
        dest = self.out / path.name
        shutil.move(str(path), dest)
        return dest


# ---- the command ------------------------------------------------------------------------------

def build(out: Path, python_version: str, preinstalled, sdist=None, python=sys.executable) -> dict:
    """Fill `out` (replaced as a whole) and return the manifest written beside the wheels."""
    roots = root_requirements(REPO, python_version, preinstalled)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    print(f"collecting wheels for CPython {python_version} into {out}:", flush=True)
    chosen = resolve(roots, Fetcher(staging, python_version, python, sdist), python_version, preinstalled)
    files = sorted(p for p in staging.iterdir() if p.suffix == ".whl")
    kept = {w.path.name for w in chosen.values()}
    for stray in [p for p in files if p.name not in kept]:
        stray.unlink()
    manifest = {
        "python_version": python_version,
        "platforms": list(PLATFORMS),
        "preinstalled": sorted(preinstalled),
        "install": "pip install --no-index --no-deps --find-links DIR DIR/*.whl",
        "wheels": [{"name": w.name, "version": str(w.version), "file": w.path.name,
                    "bytes": w.path.stat().st_size, "requested_by": w.requested_by}
                   for w in sorted(chosen.values(), key=lambda w: w.name)],
    }
    manifest["total_bytes"] = sum(w["bytes"] for w in manifest["wheels"])
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--python-version", default=DEFAULT_PYTHON_VERSION,
                   help="the offline machine's Python, MAJOR.MINOR (default: %(default)s)")
    p.add_argument("--out", default=str(REPO / ".wheelhouse"), help="folder to (re)create (default: %(default)s)")
    p.add_argument("--preinstalled", action="append", default=[], metavar="NAME",
                   help="one more package the offline machine already has (repeatable)")
    p.add_argument("--sdist", help="a local pb1-detectron2-0.6.tar.gz instead of downloading it")
    p.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB,
                   help="fail when the wheels total more than this (default: %(default)s)")
    p.add_argument("--list", action="store_true", help="print the root requirements and exit (no network)")
    args = p.parse_args(argv)
    if not (args.python_version.count(".") == 1 and args.python_version.replace(".", "").isdigit()):
        p.error(f"--python-version {args.python_version!r}: give MAJOR.MINOR, e.g. 3.12")
    preinstalled = PREINSTALLED | {canonicalize_name(n) for n in args.preinstalled}

    if args.list:
        for req in root_requirements(REPO, args.python_version, preinstalled):
            print(req)
        return 0
    try:
        manifest = build(Path(args.out).resolve(), args.python_version, preinstalled, args.sdist)
    except WheelhouseError as exc:
        print(f"build_wheelhouse: error: {exc}", file=sys.stderr)
        return 1
    total_mb = manifest["total_bytes"] / 2**20
    print(f"{len(manifest['wheels'])} wheels, {total_mb:.1f} MiB in {args.out}")
    if total_mb > args.max_mb:
        biggest = sorted(manifest["wheels"], key=lambda w: -w["bytes"])[:5]
        print(f"build_wheelhouse: error: {total_mb:.1f} MiB is over --max-mb {args.max_mb:g}; largest: "
              + ", ".join(f"{w['file']} ({w['bytes'] / 2**20:.1f} MiB)" for w in biggest), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
