# Deployment targets, included by the project's Makefile (`include $(wildcard ansible/*.mk ...)`).
#   make deploy ENV=staging                rolling, health-gated deploy of deploy/environments/staging.yml
#   make rollback ENV=staging [RELEASE=v]  back to the previous release, or to release v
#   make verify ENV=staging                smoke checks: every host ready on the version git names
#   make drift ENV=staging                 --check --diff; exits non-zero when a host differs from git
#   make promote ENV=production VERSION=v  writes v into deploy/environments/production.yml (commit it)
#   make metrics-targets ENV=staging       the /metrics URL of every serving host, for the load gate
# ANSIBLE_ARGS passes more options to ansible-playbook (e.g. --ask-vault-pass, --limit).
# ENV must name an inventory (inventories/<env>/hosts.yml): anything else stops before Ansible runs, with the list.

# This file's folder, so the targets work whatever the including Makefile's directory layout.
DEPLOY_ANSIBLE_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
ENV ?= staging
# ansible-playbook from PATH when there is one, else from ansible/.venv, made on first use from requirements.txt
# (a fresh CI runner or agent has no Ansible)
DEPLOY_ANSIBLE_VENV ?= $(DEPLOY_ANSIBLE_DIR)/.venv
ANSIBLE_PLAYBOOK ?= $(if $(shell command -v ansible-playbook),ansible-playbook,$(DEPLOY_ANSIBLE_VENV)/bin/ansible-playbook)
ANSIBLE_ARGS ?=
DEPLOY_INVENTORY = $(DEPLOY_ANSIBLE_DIR)/inventories/$(ENV)/hosts.yml
DEPLOY_PLAYBOOK_RUN = ANSIBLE_CONFIG=$(DEPLOY_ANSIBLE_DIR)/ansible.cfg $(ANSIBLE_PLAYBOOK) -i $(DEPLOY_INVENTORY)
# The environments there are: one folder with a hosts.yml each under inventories/.
DEPLOY_ENVIRONMENTS := $(sort $(patsubst $(DEPLOY_ANSIBLE_DIR)/inventories/%/hosts.yml,%,$(wildcard $(DEPLOY_ANSIBLE_DIR)/inventories/*/hosts.yml)))
DEPLOY_COMMA := ,
DEPLOY_ENVIRONMENTS_LIST = $(subst $() ,$(DEPLOY_COMMA) ,$(DEPLOY_ENVIRONMENTS))
# Where metrics-targets writes its list (make loadtest ENV=... reads it from there).
METRICS_TARGETS_FILE ?= reports/metrics-targets-$(ENV).txt

.PHONY: deploy rollback verify drift promote metrics-targets deploy-environment

# Every target that runs a playbook needs it first: a typo in ENV must not match no host and "succeed". Expanded by
# make itself (no shell), so any ENV value is safe to show.
deploy-environment:
	$(if $(and $(filter 1,$(words $(ENV))),$(filter $(ENV),$(DEPLOY_ENVIRONMENTS))),,$(error ENV=$(ENV) has no inventory ($(DEPLOY_INVENTORY)); valid environments: $(or $(DEPLOY_ENVIRONMENTS_LIST),none)))

# Order-only on the check: a fresh runner does not build the venv for an environment that does not exist.
$(DEPLOY_ANSIBLE_VENV)/bin/ansible-playbook: $(DEPLOY_ANSIBLE_DIR)/requirements.txt | deploy-environment
	python3 -m venv $(DEPLOY_ANSIBLE_VENV)
	$(DEPLOY_ANSIBLE_VENV)/bin/python -m pip install --quiet -r $(DEPLOY_ANSIBLE_DIR)/requirements.txt

deploy: deploy-environment $(filter $(DEPLOY_ANSIBLE_VENV)/%,$(ANSIBLE_PLAYBOOK)) ## Roll out the version git names for ENV, one host at a time
	$(DEPLOY_PLAYBOOK_RUN) $(DEPLOY_ANSIBLE_DIR)/deploy.yml $(ANSIBLE_ARGS)

rollback: deploy-environment $(filter $(DEPLOY_ANSIBLE_VENV)/%,$(ANSIBLE_PLAYBOOK)) ## Switch ENV back to the previous release (or RELEASE=<version>)
	$(DEPLOY_PLAYBOOK_RUN) $(DEPLOY_ANSIBLE_DIR)/rollback.yml $(if $(RELEASE),-e service_rollback_release=$(RELEASE)) $(ANSIBLE_ARGS)

verify: deploy-environment $(filter $(DEPLOY_ANSIBLE_VENV)/%,$(ANSIBLE_PLAYBOOK)) ## Smoke-check ENV: every host ready on the version git names
	$(DEPLOY_PLAYBOOK_RUN) $(DEPLOY_ANSIBLE_DIR)/verify.yml $(ANSIBLE_ARGS)

drift: deploy-environment $(filter $(DEPLOY_ANSIBLE_VENV)/%,$(ANSIBLE_PLAYBOOK)) ## Fail when a host of ENV differs from git (ansible --check --diff)
	ANSIBLE_CONFIG=$(DEPLOY_ANSIBLE_DIR)/ansible.cfg ANSIBLE_PLAYBOOK="$(ANSIBLE_PLAYBOOK)" \
		sh $(DEPLOY_ANSIBLE_DIR)/bin/check-drift.sh $(DEPLOY_INVENTORY) $(DEPLOY_ANSIBLE_DIR)/deploy.yml $(ANSIBLE_ARGS)

metrics-targets: deploy-environment $(filter $(DEPLOY_ANSIBLE_VENV)/%,$(ANSIBLE_PLAYBOOK)) ## Write the /metrics URL of every serving host of ENV to METRICS_TARGETS_FILE
	@mkdir -p $(dir $(METRICS_TARGETS_FILE))
	$(DEPLOY_PLAYBOOK_RUN) $(DEPLOY_ANSIBLE_DIR)/metrics-targets.yml -e metrics_targets_file=$(abspath $(METRICS_TARGETS_FILE)) $(ANSIBLE_ARGS)

promote: ## Set the version git wants in ENV: make promote ENV=<env> VERSION=<version>
	sh $(DEPLOY_ANSIBLE_DIR)/bin/promote.sh "$(DEPLOY_ANSIBLE_DIR)/../deploy/environments/$(ENV).yml" "$(VERSION)"
