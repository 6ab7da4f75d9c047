# keypoint-wm: two commands on a fresh machine (see README.md).
#   make demo   install into .venv, collect a small DMCS dataset, train a small Struct-VRNN
#               on it, write a keypoint-overlay GIF and a tracking report
#   make test   install into .venv and run the test suite
#   make lint   ruff (lint and format check) and mypy on the package
# Both create (or reuse) the virtual environment in $(VENV).

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
KWM := $(VENV)/bin/keypoint-wm
DEMO_DIR ?= data/demo
DEMO_RUN ?= runs/demo
DEMO_STEPS ?= 100
export MUJOCO_GL ?= egl

.PHONY: install demo test lint format clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first, pinned, so that nothing pulls a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(KWM) collect --domains all --episodes 6 --steps 100 --out $(DEMO_DIR)/dmcs
	$(KWM) data check $(DEMO_DIR)/dmcs
	$(KWM) data info $(DEMO_DIR)/dmcs
	$(KWM) train --data $(DEMO_DIR)/dmcs --preset dmcs-cpu --steps $(DEMO_STEPS) \
		--out $(DEMO_RUN) --resume
	$(KWM) evaluate tracking --run $(DEMO_RUN) --data $(DEMO_DIR)/dmcs --samples 10 \
		--json $(DEMO_RUN)/tracking.json
	@echo "keypoint overlay: $(DEMO_RUN)/media/keypoints.gif; predictions: $(DEMO_RUN)/media/prediction.gif"
	@echo "tracking report: $(DEMO_RUN)/tracking.json and $(DEMO_RUN)/tracking.png"
	@echo "TensorBoard: $(VENV)/bin/tensorboard --logdir $(DEMO_RUN)/tensorboard"

test: install
	$(PY) -m pytest -q

# mypy cannot follow pyproject's package-dir (envs/ is keypoint_wm.envs, ...): it checks a view
# of the installed layout made of symbolic links ([tool.mypy] in pyproject.toml).
TYPECHECK := build/typecheck/keypoint_wm

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)
	ln -s $(CURDIR)/keypoint_wm/* $(CURDIR)/envs $(CURDIR)/collect $(CURDIR)/rewards $(TYPECHECK)/
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# The GPU check (`keypoint-wm reproduce gpu-check`, through scripts/gpu_check.sh) runs where no
# registry is reachable: this project's wheel and the pure-Python wheels the check needs beside
# the machine's torch (gymnasium for `bench replay`, pytest for the cuda tests), into .whl/.
GPU_WHEELS := gymnasium==1.4.0 farama-notifications cloudpickle typing_extensions pytest \
	pluggy iniconfig packaging pygments

.PHONY: gpu-wheels
gpu-wheels: install
	rm -rf .whl && mkdir -p .whl/deps
	$(PY) -m pip wheel --quiet --no-deps -w .whl .
	$(PY) -m pip download --quiet --no-deps -d .whl/deps $(GPU_WHEELS)
