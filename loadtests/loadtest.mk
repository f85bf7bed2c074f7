# Load test and release gate (included by the project's Makefile; see loadtests/README.md).
#   make loadtest HOST=http://127.0.0.1:8000            run the gate with loadtests/locust.conf defaults
#   make loadtest                                       against `make run` (HOST and PORT of the Makefile)
#   make loadtest HOST=... LOADTEST_ARGS="-t 5m --shape step"   any Locust or gate option on top
#   make loadtest HOST=https://staging.example.com ENV=staging  behind a balancer: the gate reads every serving
#                                                        host's /metrics, listed by the inventory of ENV
# Reports (HTML, CSV, gate.json) go to $(LOADTEST_REPORTS), the folder pipelines archive.
# Locust runs from its own venv made from loadtests/requirements.txt, or from LOCUST=<command> if you give one.
# The gate's exit code (3: latency, errors, throughput; 4: delivery) is printed last; make itself exits 2 on any
# failure of a recipe, whatever the code (GNU make has no other failure status).

LOADTEST_REPORTS ?= reports/loadtest
LOADTEST_VENV ?= loadtests/.venv
LOADTEST_PYTHON ?= python3
LOCUST ?= $(LOADTEST_VENV)/bin/locust
LOADTEST_ARGS ?=
# HOST may be a URL, or a host name that PORT completes (the Makefile's own HOST/PORT serve `make run`)
LOADTEST_URL = $(if $(filter http://% https://%,$(HOST)),$(HOST),$(if $(HOST),http://$(HOST):$(or $(PORT),8000)))
# ENV given on the command line (not the deploy fragment's default): the gate reads the /metrics of every serving host
# of that environment, listed by `make metrics-targets` (ansible/deploy.mk) from its inventory, never a balancer's.
LOADTEST_ENV = $(if $(filter command line,$(origin ENV)),$(ENV))
# the list goes with the reports, so a run's archive says which instances the gate read
loadtest: METRICS_TARGETS_FILE = $(LOADTEST_REPORTS)/metrics-targets.txt

.PHONY: loadtest loadtest-clean loadtest-needs-inventory

loadtest: $(if $(LOADTEST_ENV),$(if $(DEPLOY_ANSIBLE_DIR),metrics-targets,loadtest-needs-inventory)) $(if $(filter $(LOADTEST_VENV)/%,$(LOCUST)),$(LOCUST)) ## Locust load test + release gate against HOST=<url> [ENV=<env>: read its hosts' metrics]; reports in reports/loadtest/
	@test -n "$(LOADTEST_URL)" || { echo "usage: make loadtest HOST=http://<host>:<port> [ENV=<env>] [LOADTEST_ARGS=...]" >&2; exit 2; }
	@mkdir -p $(LOADTEST_REPORTS)
	@status=0; $(LOCUST) --config loadtests/locust.conf -f loadtests/locustfile.py --headless --host $(LOADTEST_URL) \
		--html $(LOADTEST_REPORTS)/report.html --csv $(LOADTEST_REPORTS)/loadtest \
		$(if $(LOADTEST_ENV),--metrics-url "$$(cat $(METRICS_TARGETS_FILE))") \
		--gate-report $(LOADTEST_REPORTS)/gate.json $(LOADTEST_ARGS) || status=$$?; \
	[ "$$status" -eq 0 ] || echo "make loadtest: the gate exited $$status (3: latency, errors or throughput; 4: delivery; see $(LOADTEST_REPORTS)/gate.json)" >&2; \
	exit $$status

loadtest-needs-inventory:
	$(error make loadtest ENV=$(ENV) reads the metrics targets from ansible/inventories/$(ENV)/, but ansible/deploy.mk is not included here: give the instances with LOADTEST_ARGS="--metrics-url URL1,URL2" instead)

$(LOADTEST_VENV)/bin/locust: loadtests/requirements.txt
	$(LOADTEST_PYTHON) -m venv $(LOADTEST_VENV)
	$(LOADTEST_VENV)/bin/pip install --quiet -r loadtests/requirements.txt
	@touch $@

loadtest-clean: ## Remove the load-test reports and venv
	rm -rf $(LOADTEST_REPORTS) $(LOADTEST_VENV)
