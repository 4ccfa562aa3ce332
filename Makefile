# segkit: `make demo` and `make test` work on a fresh clone; both run `setup` first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Pinned: pip takes these from the local wheel cache where there is one; a bare `torch`
# would make pip download several GB of CUDA wheels.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup test test-all demo sample-data bench bench-quick bench-long bench-quality gpu-check clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

sample-data: setup
	$(PY) -m segkit.data.sample data/sample

# The whole product in one go: sample data, training (CPU, a few minutes; a re-run resumes or
# just re-evaluates), evaluation, inference on one image, and where everything went.
DEMO_CONFIG := configs/sample/deeplabv3plus_r18.yaml
DEMO_WORK := work_dirs/sample_deeplabv3plus_r18
DEMO_IMAGE := data/sample/images/val/val_0000.png
DEMO_OUT := outputs/demo

demo: sample-data
	@mkdir -p $(DEMO_OUT) && date +%s > $(DEMO_OUT)/.train_start
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_WORK) --resume auto
	@echo $$(( $$(date +%s) - $$(cat $(DEMO_OUT)/.train_start) )) > $(DEMO_OUT)/.train_seconds
	$(PY) tools/eval.py $(DEMO_WORK)/best.pth
	$(PY) tools/infer.py $(DEMO_IMAGE) --checkpoint $(DEMO_WORK)/best.pth --out $(DEMO_OUT)
	@$(PY) -c 'import json, pathlib; \
	miou = 100 * json.loads(pathlib.Path("$(DEMO_WORK)/eval_val.json").read_text())["mIoU"]; \
	stem = pathlib.Path("$(DEMO_IMAGE)").stem; \
	print(f"\nmake demo: val mIoU {miou:.2f} (tools/eval.py on best.pth); training took " + pathlib.Path("$(DEMO_OUT)/.train_seconds").read_text().strip() + " s this time"); \
	print(f"  checkpoint  $(DEMO_WORK)/best.pth   (curves: $(DEMO_WORK)/curves.png)"); \
	print(f"  mask        $(DEMO_OUT)/{stem}_mask.png"); \
	print(f"  overlay     $(DEMO_OUT)/{stem}_overlay.png")'

# Speed, side by side with torchvision / smp / torchmetrics, rewriting the tables and plots in
# docs/BENCHMARKS.md (30 minutes on 2 cores on 2026-11-30 with the CamVid step-options table, now in
# bench-long: about 27 without it; `make bench` prints how long it took). The training
# table includes segkit's fast path under torch.compile; a last step runs the GPU check (on a machine
# without CUDA its --dry-run, which dates the GPU section's "not run"). CamVid: $$SEGKIT_CAMVID,
# data/camvid or ../shared/data/camvid.
BENCHES := data_pipeline metrics inference model_inference limits scaling startup studio
STEP_CONFIGS := configs/sample/deeplabv3plus_r18.yaml
HAS_CUDA = $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"

bench: setup
	@start=$$(date +%s); \
	for b in $(BENCHES); do echo "== bench/$$b.py"; $(PY) bench/$$b.py || exit 1; done; \
	echo "== bench/train_throughput.py --compile"; $(PY) bench/train_throughput.py --compile || exit 1; \
	for c in $(STEP_CONFIGS); do echo "== bench/train_step_options.py $$c"; $(PY) bench/train_step_options.py $$c || exit 1; done; \
	if $(HAS_CUDA); then $(PY) bench/gpu_check.py; else $(PY) bench/gpu_check.py --dry-run; fi || exit 1; \
	echo "make bench: $$(( ($$(date +%s) - start) / 60 )) minutes; tables and plots: docs/BENCHMARKS.md, docs/img/"

# Every bench script above in its --quick mode (seconds to a minute each): checks that they run,
# writes nothing to docs/BENCHMARKS.md.
bench-quick: setup
	@for b in $(BENCHES) train_throughput train_step_options int8; do echo "== bench/$$b.py --quick"; \
		SEGKIT_BENCH_NO_WRITE=1 $(PY) bench/$$b.py --quick || exit 1; done

# What does not fit in `make bench`'s 30 minutes (about 45 minutes on 2 cores): the training table on an
# emulated CPU without AVX-512 (fp32 fast path, compile rows), the CamVid config's step options, CamVid from scratch (about 30 minutes),
# then eager vs ONNX Runtime fp32 vs INT8 on its checkpoint, with val mIoU (bench/int8.py).
bench-long: setup
	$(PY) bench/train_throughput.py --avx2-only --compile
	$(PY) bench/train_step_options.py configs/camvid/deeplabv3plus_r18_cpu.yaml
	$(PY) bench/camvid_train.py
	$(PY) bench/int8.py

# On a CUDA machine (about 8 minutes): CUDA tests, AMP trainings, timing vs torchvision/smp; writes the
# GPU section of docs/BENCHMARKS.md. `python bench/gpu_check.py --dry-run` checks it on a CPU.
gpu-check: setup
	$(PY) bench/gpu_check.py

# Quality at equal wall-clock budget from scratch on CamVid: segkit's recipe vs a plain loop (about 65 minutes).
bench-quality: setup
	$(PY) bench/quality.py

clean:
	rm -rf $(VENV) work_dirs data/sample .pytest_cache
