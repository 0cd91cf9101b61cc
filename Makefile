# The two set-up commands: `make run` (the whole system) and `make test` (all tests).
VENV := .venv
PY := $(VENV)/bin/python
export EVENTLET_TESTS := 1

.PHONY: run test test-slow demo bench faults triage-bench deadline-bench revisit-bench report-bench

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --no-compile --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

run: $(VENV)/.installed
	deploy/ensure-rabbitmq.sh
	$(PY) -m deploy.local

test: $(VENV)/.installed
	deploy/ensure-rabbitmq.sh
	$(PY) -m pytest

# The tests `make test` leaves out for time (marked slow): the fault run at CI size.
test-slow: $(VENV)/.installed
	deploy/ensure-rabbitmq.sh
	$(PY) -m pytest -m slow

demo: $(VENV)/.installed
	$(PY) -m deploy.demo

# Throughput, cost per case, sustained latency (bench/throughput.py);
# BENCH_ARGS="--soak 100000" adds the memory soak.
bench: $(VENV)/.installed
	deploy/ensure-rabbitmq.sh
	$(PY) -m bench.throughput $(BENCH_ARGS)

# The fault run (bench/faults.py): kills every service and restarts RabbitMQ while
# feedback flows, then prints what was lost or doubled. FAULTS_ARGS="--n 10000" for the full run.
faults: $(VENV)/.installed
	deploy/ensure-rabbitmq.sh
	$(PY) -m bench.faults $(FAULTS_ARGS)

# The triage model's held-out figures, load time and latency (bench/triage.py); --retrain via TRIAGE_ARGS.
triage-bench: $(VENV)/.installed
	$(PY) -m bench.triage $(TRIAGE_ARGS)

# Breach-detection lag, duplicates and idle CPU of three routing replicas over 100,000
# open cases (bench/deadlines.py); DEADLINE_ARGS="--cases 10000 --breaches 200" for a quick run.
deadline-bench: $(VENV)/.installed
	deploy/ensure-rabbitmq.sh
	$(PY) -m bench.deadlines $(DEADLINE_ARGS)

# Planning a year of revisits for 1,000,000 customers, and the due-work scan at 10k, 100k and
# 1M scheduled items (bench/revisits.py); REVISIT_ARGS="--sizes 10000,100000" for a quick run.
revisit-bench: $(VENV)/.installed
	$(PY) -m bench.revisits $(REVISIT_ARGS)

# Report latency over reporting's pre-aggregated facts, 500 stores over a year at 10k, 100k and
# 1M cases, and read-model updates/s (bench/reports.py); REPORT_ARGS="--sizes 10000 100000" for a quick run.
report-bench: $(VENV)/.installed
	$(PY) -m bench.reports $(REPORT_ARGS)
