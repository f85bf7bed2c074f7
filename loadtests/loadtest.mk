# Load test and release gate (included by the project's Makefile; see loadtests/README.md).
#   make loadtest HOST=http://127.0.0.1:8000            run the gate with loadtests/locust.conf defaults
#   make loadtest                                       against `make run` (HOST and PORT of the Makefile)
#   make loadtest HOST=... LOADTEST_ARGS="-t 5m --shape step"   any Locust or gate option on top
# Reports (HTML, CSV, gate.json) go to $(LOADTEST_REPORTS), the folder pipelines archive.
# Locust runs from its own venv made from loadtests/requirements.txt, or from LOCUST=<command> if you give one.

LOADTEST_REPORTS ?= reports/loadtest
LOADTEST_VENV ?= loadtests/.venv
LOADTEST_PYTHON ?= python3
LOCUST ?= $(LOADTEST_VENV)/bin/locust
LOADTEST_ARGS ?=
# HOST may be a URL, or a host name that PORT completes (the Makefile's own HOST/PORT serve `make run`)
LOADTEST_URL = $(if $(filter http://% https://%,$(HOST)),$(HOST),$(if $(HOST),http://$(HOST):$(or $(PORT),8000)))

.PHONY: loadtest loadtest-clean

loadtest: $(if $(filter $(LOADTEST_VENV)/%,$(LOCUST)),$(LOCUST)) ## Locust load test + release gate against HOST=<url>; reports in reports/loadtest/
	@test -n "$(LOADTEST_URL)" || { echo "usage: make loadtest HOST=http://<host>:<port> [LOADTEST_ARGS=...]" >&2; exit 2; }
	@mkdir -p $(LOADTEST_REPORTS)
	$(LOCUST) --config loadtests/locust.conf -f loadtests/locustfile.py --headless --host $(LOADTEST_URL) \
		--html $(LOADTEST_REPORTS)/report.html --csv $(LOADTEST_REPORTS)/loadtest \
		--gate-report $(LOADTEST_REPORTS)/gate.json $(LOADTEST_ARGS)

$(LOADTEST_VENV)/bin/locust: loadtests/requirements.txt
	$(LOADTEST_PYTHON) -m venv $(LOADTEST_VENV)
	$(LOADTEST_VENV)/bin/pip install --quiet -r loadtests/requirements.txt
	@touch $@

loadtest-clean: ## Remove the load-test reports and venv
	rm -rf $(LOADTEST_REPORTS) $(LOADTEST_VENV)
