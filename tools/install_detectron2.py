#!/usr/bin/env python
"""Make Detectron2 importable in the current Python environment.

Detectron2 publishes no installable release, and its v0.6 source does not import on current
numpy/Pillow or without its compiled extension. This step:

1. keeps an importable ``detectron2`` as it is (a user's own source build wins);
2. otherwise fetches the ``pb1-detectron2==0.6`` source distribution from PyPI (upstream's v0.6
   Python package, without the C++ sources), checks its sha256 *before* unpacking it, applies
   exactly the upstream fixes made after v0.6 that current numpy/Pillow and a missing ``_C`` need,
   and pip-installs the result as a pure-Python distribution named ``detectron2`` (so ``pip show
   detectron2`` knows it, and nothing is patched at run time).

Run it with the interpreter of the environment to install into::

    python tools/install_detectron2.py [--sdist FILE] [--force]

or build the same patched tree into a pure-Python wheel (``py3-none-any``, for an offline machine's
wheelhouse) instead of installing it::

    python tools/install_detectron2.py --wheel-dir DIR [--sdist FILE]
"""
import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request

SDIST_NAME = "pb1-detectron2"
SDIST_VERSION = "0.6"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
DEFAULT_INDEX = "https://pypi.org/simple"
LOCAL_VERSION = "0.6+infomin.1"  # bump when FIXES change, so an old build is replaced

SOURCE_BUILD_HINT = (
    "python -m pip install 'git+https://github.com/facebookresearch/detectron2.git' "
    "(needs a C++ compiler, and nvcc for the CUDA ops)"
)

_LAZY_C = (
    "try:\n"
    "    from detectron2 import _C\n"
    "except ImportError:  # built without the C++/CUDA extension: fail only when an op needs it\n"
    "    from detectron2.utils.env import MissingCompiledOps\n"
    "\n"
    "    _C = MissingCompiledOps()\n"
)

_MISSING_OPS_CLASS = f'''

class MissingCompiledOps:
    """Stands in for ``detectron2._C`` in a pure-Python build; any use says what is missing."""

    def __getattr__(self, name):
        raise ImportError(
            f"detectron2._C.{{name}} is not available: this Detectron2 was installed without its "
            "compiled C++/CUDA extension (deformable convolution, rotated boxes and the fast COCO "
            "evaluator need it). Build Detectron2 from source instead: {SOURCE_BUILD_HINT}"
        )


def has_compiled_ops():
    """True when ``detectron2._C`` was built and imports."""
    try:
        from detectron2 import _C  # noqa: F401
    except ImportError:
        return False
    return True
'''

# (path, old text, new text, why). Each old text must occur exactly once in the pinned source.
FIXES = [
    # upstream 710e7795 / ac31916c: detectron2 usable without building the C extension
    ("detectron2/utils/env.py", '__all__ = ["seed_all_rng"]\n',
     '__all__ = ["seed_all_rng"]\n' + _MISSING_OPS_CLASS, "lazy _C"),
    ("detectron2/layers/deform_conv.py", "from detectron2 import _C\n", _LAZY_C, "lazy _C"),
    ("detectron2/layers/roi_align_rotated.py", "from detectron2 import _C\n", _LAZY_C, "lazy _C"),
    ("detectron2/layers/rotated_boxes.py", "from detectron2 import _C\n", _LAZY_C, "lazy _C"),
    ("detectron2/evaluation/fast_eval_api.py", "from detectron2 import _C\n", _LAZY_C, "lazy _C"),
    ("detectron2/evaluation/coco_evaluation.py",
     "        self._use_fast_impl = use_fast_impl\n",
     "        from detectron2.utils.env import has_compiled_ops\n"
     "\n"
     "        if use_fast_impl and not has_compiled_ops():\n"
     '            self._logger.info("Fast COCO eval is not built. Falling back to official COCO eval.")\n'
     "            use_fast_impl = False\n"
     "        self._use_fast_impl = use_fast_impl\n",
     "lazy _C (pycocotools path)"),
    # upstream ff53992b: Pillow >= 10 removed Image.LINEAR
    ("detectron2/data/transforms/transform.py", "interp=Image.LINEAR", "interp=Image.BILINEAR",
     "Pillow 10"),
    # upstream 654570a2 / 027099d3 / 54dd614e / 857d5de2: numpy >= 1.24 removed the aliases
    ("detectron2/data/datasets/pascal_voc.py", "dtype=np.str)", "dtype=str)", "numpy np.str"),
    ("detectron2/data/build.py", "histogram = np.zeros((num_classes,), dtype=np.int)",
     "histogram = np.zeros((num_classes,), dtype=int)", "numpy np.int"),
    ("detectron2/data/build.py", 'if not x.get("iscrowd", 0)], dtype=np.int',
     'if not x.get("iscrowd", 0)], dtype=int', "numpy np.int"),
    ("detectron2/evaluation/sem_seg_evaluation.py", "pred = np.array(output, dtype=np.int)",
     "pred = np.array(output, dtype=int)", "numpy np.int"),
    ("detectron2/evaluation/sem_seg_evaluation.py", "gt = np.array(Image.open(f), dtype=np.int)",
     "gt = np.array(Image.open(f), dtype=int)", "numpy np.int"),
    ("detectron2/evaluation/sem_seg_evaluation.py",
     "acc = np.full(self._num_classes, np.nan, dtype=np.float)",
     "acc = np.full(self._num_classes, np.nan, dtype=float)", "numpy np.float"),
    ("detectron2/evaluation/sem_seg_evaluation.py",
     "iou = np.full(self._num_classes, np.nan, dtype=np.float)",
     "iou = np.full(self._num_classes, np.nan, dtype=float)", "numpy np.float"),
    ("detectron2/evaluation/sem_seg_evaluation.py",
     "tp = self._conf_matrix.diagonal()[:-1].astype(np.float)",
     "tp = self._conf_matrix.diagonal()[:-1].astype(float)", "numpy np.float"),
    ("detectron2/evaluation/sem_seg_evaluation.py",
     "pos_gt = np.sum(self._conf_matrix[:-1, :-1], axis=0).astype(np.float)",
     "pos_gt = np.sum(self._conf_matrix[:-1, :-1], axis=0).astype(float)", "numpy np.float"),
    ("detectron2/evaluation/sem_seg_evaluation.py",
     "pos_pred = np.sum(self._conf_matrix[:-1, :-1], axis=1).astype(np.float)",
     "pos_pred = np.sum(self._conf_matrix[:-1, :-1], axis=1).astype(float)", "numpy np.float"),
    ("detectron2/evaluation/pascal_voc_evaluation.py",
     'difficult = np.array([x["difficult"] for x in R]).astype(np.bool)\n',
     'difficult = np.array([x["difficult"] for x in R]).astype(bool)\n', "numpy np.bool"),
    ("detectron2/structures/masks.py", "return np.zeros((height, width)).astype(np.bool)",
     "return np.zeros((height, width)).astype(bool)", "numpy np.bool"),
    ("detectron2/structures/masks.py", "return mask_util.decode(rle).astype(np.bool)",
     "return mask_util.decode(rle).astype(bool)", "numpy np.bool"),
    ("detectron2/structures/masks.py", "np.asarray(keep, dtype=np.bool)",
     "np.asarray(keep, dtype=bool)", "numpy np.bool"),
    ("detectron2/utils/visualizer.py", "return (self._seg != empty_ids[0]).numpy().astype(np.bool)",
     "return (self._seg != empty_ids[0]).numpy().astype(bool)", "numpy np.bool"),
    ("detectron2/utils/visualizer.py", "yield (self._seg == sid).numpy().astype(np.bool), sinfo",
     "yield (self._seg == sid).numpy().astype(bool), sinfo", "numpy np.bool"),
    ("detectron2/utils/visualizer.py", "mask = (self._seg == sid).numpy().astype(np.bool)",
     "mask = (self._seg == sid).numpy().astype(bool)", "numpy np.bool"),
    ("detectron2/utils/video_visualizer.py", "is_crowd = np.zeros((len(instances),), dtype=np.bool)",
     "is_crowd = np.zeros((len(instances),), dtype=bool)", "numpy np.bool"),
]

# Replaces the sdist's setup.py: same package list and dependencies, no extension to compile,
# the distribution name users expect, and no `black==21.4b2` pin (a formatter, unused at run time).
SETUP_PY = f'''
from setuptools import find_packages, setup

PROJECTS = {{
    "detectron2.projects.point_rend": "projects/PointRend/point_rend",
    "detectron2.projects.deeplab": "projects/DeepLab/deeplab",
    "detectron2.projects.panoptic_deeplab": "projects/Panoptic-DeepLab/panoptic_deeplab",
}}

setup(
    name="detectron2",
    version="{LOCAL_VERSION}",
    author="FAIR",
    url="https://github.com/facebookresearch/detectron2",
    description="Detectron2 v0.6 (pure-Python build from pb1-detectron2 0.6 with upstream fixes for "
    "numpy>=1.24, Pillow>=10 and a missing _C; installed by infomin)",
    packages=find_packages(exclude=("configs", "tests*")) + list(PROJECTS.keys()),
    package_dir=PROJECTS,
    python_requires=">=3.7",
    install_requires=[
        "Pillow>=7.1", "matplotlib", "pycocotools>=2.0.2", "termcolor>=1.1", "yacs>=0.1.8",
        "tabulate", "cloudpickle", "tqdm>4.29.0", "tensorboard", "fvcore>=0.1.5,<0.1.6",
        "iopath>=0.1.7,<0.1.10", "omegaconf>=2.1", "hydra-core>=1.1",
    ],
)
'''


class InstallError(RuntimeError):
    pass


def installed_detectron2():
    """(version, is_ours) of an importable detectron2, or None."""
    if importlib.util.find_spec("detectron2") is None:
        return None
    from importlib import metadata

    try:
        version = metadata.version("detectron2")
    except metadata.PackageNotFoundError:
        version = "unknown (not installed by pip, e.g. a source checkout on PYTHONPATH)"
    return version, version == LOCAL_VERSION


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def index_url():
    """The index pip is set to use (PIP_INDEX_URL or pip config), else PyPI."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        try:
            out = subprocess.run(
                [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                capture_output=True, text=True, check=False,
            )
            url = out.stdout.strip() if out.returncode == 0 else ""
        except OSError:
            url = ""
    return (url or DEFAULT_INDEX).rstrip("/")


def download_sdist(dest_dir):
    """Fetch the sdist through the index's simple API (PEP 691 JSON); return its path."""
    page = f"{index_url()}/{SDIST_NAME}/"
    request = urllib.request.Request(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            listing = json.load(response)
        url = next(f["url"] for f in listing["files"] if f["filename"] == SDIST_FILE)
        url = urllib.parse.urljoin(page, url)
        path = os.path.join(dest_dir, SDIST_FILE)
        with urllib.request.urlopen(url, timeout=120) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out)
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise InstallError(
            f"could not download {SDIST_FILE} from {page} ({exc}). Fetch it by hand "
            f"(pip download --no-deps --no-binary :all: {SDIST_NAME}=={SDIST_VERSION} fails while "
            f"building, but leaves the file in its cache) and pass --sdist FILE."
        ) from exc
    return path


def verify(path):
    actual = sha256_of(path)
    if actual != SDIST_SHA256:
        raise InstallError(
            f"{path} has sha256 {actual}, expected {SDIST_SHA256} for {SDIST_FILE}. "
            "Refusing to unpack it; delete it and download it again."
        )


def unpack(path, dest_dir):
    with tarfile.open(path, "r:gz") as tar:
        tar.extractall(dest_dir, filter="data")
    root = os.path.join(dest_dir, f"{SDIST_NAME}-{SDIST_VERSION}")
    if not os.path.isdir(os.path.join(root, "detectron2")):
        raise InstallError(f"{path} does not hold {SDIST_NAME}-{SDIST_VERSION}/detectron2")
    return root


def apply_fixes(root):
    for rel, old, new, why in FIXES:
        file = os.path.join(root, rel)
        with open(file, encoding="utf-8") as f:
            text = f.read()
        if text.count(old) != 1:
            raise InstallError(f"fix '{why}' does not apply to {rel}: expected text found "
                               f"{text.count(old)} times (is this the pinned source?)")
        with open(file, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new))
    with open(os.path.join(root, "setup.py"), "w", encoding="utf-8") as f:
        f.write(SETUP_PY)
    shutil.rmtree(os.path.join(root, "pb1_detectron2.egg-info"), ignore_errors=True)


def pip_install(root):
    cmd = [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--quiet", root]
    if subprocess.run(cmd, check=False).returncode != 0:
        raise InstallError(f"'{' '.join(cmd)}' failed (see pip's output above)")


def pip_wheel(root, wheel_dir):
    """Build the patched tree into ``wheel_dir``; return the wheel's path."""
    os.makedirs(wheel_dir, exist_ok=True)
    before = set(os.listdir(wheel_dir))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
           "--wheel-dir", wheel_dir, root]
    if subprocess.run(cmd, check=False).returncode != 0:
        raise InstallError(f"'{' '.join(cmd)}' failed (see pip's output above)")
    built = [f for f in os.listdir(wheel_dir) if f.startswith("detectron2-") and f.endswith(".whl")]
    new = [f for f in built if f not in before] or built
    if len(new) != 1:
        raise InstallError(f"expected one detectron2 wheel in {wheel_dir}, found {sorted(new)}")
    return os.path.join(wheel_dir, new[0])


def build_patched_tree(tmp, sdist=None):
    """Download (unless ``sdist`` is given), verify, unpack and patch; return the tree's root."""
    sdist = sdist or download_sdist(tmp)
    verify(sdist)
    root = unpack(sdist, tmp)
    apply_fixes(root)
    return root


def build_wheel(wheel_dir, sdist=None):
    """The patched Detectron2 as a pure-Python wheel in ``wheel_dir``; returns its path."""
    with tempfile.TemporaryDirectory(prefix="infomin-d2-") as tmp:
        return pip_wheel(build_patched_tree(tmp, sdist), os.path.abspath(wheel_dir))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sdist", help=f"a local {SDIST_FILE} to use instead of downloading it")
    parser.add_argument("--force", action="store_true",
                        help="rebuild and reinstall even if detectron2 already imports")
    parser.add_argument("--wheel-dir", metavar="DIR",
                        help="build the patched source into a wheel in DIR instead of installing it")
    args = parser.parse_args(argv)

    if args.wheel_dir:
        try:
            path = build_wheel(args.wheel_dir, args.sdist)
        except InstallError as exc:
            print(f"install_detectron2: error: {exc}", file=sys.stderr)
            return 1
        print(f"built {path} (pure Python, from {SDIST_FILE}, sha256 verified)")
        return 0

    found = installed_detectron2()
    if found and not args.force:
        version, ours = found
        origin = "infomin's pure-Python build" if ours else "kept as is"
        print(f"detectron2 {version} is already importable ({origin}); nothing to do.")
        return 0
    if found and not found[1] and args.force:
        print(f"note: replacing detectron2 {found[0]}")

    try:
        with tempfile.TemporaryDirectory(prefix="infomin-d2-") as tmp:
            pip_install(build_patched_tree(tmp, args.sdist))
    except InstallError as exc:
        print(f"install_detectron2: error: {exc}", file=sys.stderr)
        return 1
    print(f"installed detectron2 {LOCAL_VERSION} (pure Python, from {SDIST_FILE}, sha256 verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
