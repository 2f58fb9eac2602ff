"""infomin: InfoMin contrastive pretraining and its transfer to Detectron2.

`pretrain/`, `detection/` and `study/` install as `infomin.pretrain`, `infomin.detection` and
`infomin.study`, the way Detectron2 installs its `projects/`; `configs/` installs as
`infomin.configs` with its YAML files, so the tools find them without a checkout.
"""
from setuptools import find_packages, setup

PACKAGE_DIRS = {"infomin.pretrain": "pretrain", "infomin.detection": "detection", "infomin.study": "study",
                "infomin.configs": "configs"}


def packages():
    found = find_packages(include=["infomin", "infomin.*"])
    for name, folder in PACKAGE_DIRS.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_packages(where=folder)]
    return found


setup(
    name="infomin",
    version="0.1.0",
    description="InfoMin contrastive pretraining, view tools and Detectron2 transfer",
    python_requires=">=3.10",
    packages=packages(),
    package_dir=PACKAGE_DIRS,
    package_data={"infomin": ["zoo/*.yaml", "zoo/*.json"], "infomin.configs": ["**/*.yaml", "README.md"]},
    install_requires=[
        "torch==2.14.1",
        "torchvision==0.29.1",
        "fvcore>=0.1.5,<0.1.6",
        "iopath>=0.1.7,<0.1.10",
        "pycocotools>=2.0.2",
        "faster-coco-eval>=1.8.0",
        "yacs>=0.1.8",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "tensorboard",
        "timm>=1.0",
        "scikit-image>=0.22",
        "opencv-python-headless>=4.8",
    ],
    entry_points={
        "console_scripts": [
            # each names the main(argv=None) of a command module in a layer's cli/ package;
            # tools/<name>.py calls the same function
            "infomin-convert-pretrained = infomin.cli.convert_pretrained:main",
            "infomin-train-net = infomin.detection.cli.train_net:main",
            "infomin-pretrain = infomin.pretrain.cli.pretrain:main",
            "infomin-linear-eval = infomin.pretrain.cli.linear_eval:main",
            "infomin-model-zoo = infomin.cli.model_zoo:main",
            "infomin-view-sweep = infomin.pretrain.cli.view_sweep:main",
            "infomin-learn-views = infomin.cli.learn_views:main",
            "infomin-estimate-mi = infomin.cli.estimate_mi:main",
            "infomin-demo = infomin.study.cli.demo:main",
        ],
    },
)
