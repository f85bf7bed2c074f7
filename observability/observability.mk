# Alert-rule checks, included by the project's Makefile (see the README's "Dashboards and alerts").
#   make check-alerts                      promtool: the rules and the example config parse, the rules' unit tests pass
#   make check-alerts PROMTOOL=/opt/prometheus/promtool
# promtool ships with Prometheus (Debian/Ubuntu: apt-get install prometheus; or the release archive).

OBSERVABILITY_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
PROMTOOL ?= promtool

.PHONY: check-alerts

check-alerts: ## promtool: alert rules and prometheus.yml parse, the alerts' unit tests pass
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { echo "check-alerts needs promtool (it ships with Prometheus): PROMTOOL=<path>" >&2; exit 2; }
	$(PROMTOOL) check rules $(OBSERVABILITY_DIR)/alerts.yml
	$(PROMTOOL) check config $(OBSERVABILITY_DIR)/prometheus.yml
	$(PROMTOOL) test rules $(OBSERVABILITY_DIR)/alerts.test.yml
