# Everything runs inside ./.venv, created and filled by `make setup` (idempotent: a no-op when
# requirements.txt, setup.py and the Detectron2 installer have not changed since the last run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.infomin-installed
DEVICE ?=
DEMO_ARGS ?=
# `make wheelhouse` (on a machine that reaches PyPI) collects, for Python $(PYVER) on x86-64 Linux,
# every wheel an offline GPU node lacks; `make gpu-check` (on that node) installs them into a
# throwaway venv over $(GPU_PYTHON)'s torch and runs the GPU checks (benchmarks/gpu_check.sh).
PYVER ?= 3.12
WHEELHOUSE := .wheelhouse
GPU_PYTHON ?= python3
GPU_CHECK_OUT ?= output/gpu_check
GPU_STUDY_OUT ?= output/gpu

.PHONY: setup test test-fast demo bench bench-coco-eval wheelhouse gpu-check gpu-study clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt setup.py tools/install_detectron2.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) tools/install_detectron2.py
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The test command README.md gives and .ci/run calls. One torch thread per process: the suite
# starts several processes on a 2-core machine, and oversubscribed threads make it much slower.
test: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q tests

demo: setup
	$(PY) tools/demo.py $(DEMO_ARGS)

bench: setup
	$(PY) benchmarks/bench_views.py

# COCO AP time, pycocotools vs faster-coco-eval (BENCH_ARGS="--images 1000", "--segm", ...)
bench-coco-eval: setup
	$(PY) benchmarks/bench_coco_eval.py $(BENCH_ARGS)

wheelhouse: setup
	$(PY) tools/build_wheelhouse.py --python-version $(PYVER) --out $(WHEELHOUSE)

# No `setup` prerequisite: the GPU node has no index to set up from.
gpu-check:
	benchmarks/gpu_check.sh --python $(GPU_PYTHON) --wheels $(WHEELHOUSE) --out $(GPU_CHECK_OUT)

# The study with three seeds side by side on the node's GPU (benchmarks/gpu_study.sh).
gpu-study:
	benchmarks/gpu_study.sh --python $(GPU_PYTHON) --wheels $(WHEELHOUSE) --out $(GPU_STUDY_OUT)

clean-venv:
	rm -rf $(VENV)
