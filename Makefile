# Bank-marketing MLOps platform. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
APP := $(VENV)/app/bin
MAGE := $(VENV)/mage/bin
export MAGE_DATA_DIR ?= $(CURDIR)/.mage_data
export MLFLOW_PORT ?= 5000
export MLFLOW_TRACKING_URI ?= http://127.0.0.1:$(MLFLOW_PORT)
# libgomp's busy-waiting threads crawl when both cores are shared (HistGradientBoosting,
# XGBoost): yield instead of spinning.
export OMP_WAIT_POLICY ?= PASSIVE
RUN_DIR := .run
# Settings from .env (see .env.example); `make VAR=value` overrides them.
ifneq (,$(wildcard .env))
include .env
export
endif
# While `make up` runs: how to reach its services (URLs, the receiver's token).
STACK_RUN_DIR ?= $(RUN_DIR)
ifneq (,$(wildcard $(STACK_RUN_DIR)/stack.env))
include $(STACK_RUN_DIR)/stack.env
export
endif

# CI/CD targets used by .github/workflows (images, drift check, release).
-include .ci/targets.mk

.PHONY: help setup up down mlflow mlflow-stop migrate prepare train deploy test-model fairness rollback approve challenger monitor outcomes retrain serve receiver ui build-predictor demo mage-ui test test-fast screenshots figures lint bench season clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# pip's output goes to .run/setup-<env>.log; a failure prints its end and stops.
INSTALL_LOG = $(RUN_DIR)/setup-$(1).log
define install
	@mkdir -p $(RUN_DIR); start=$$(date +%s); echo "setting up the $(1) environment (.venv/$(1); log $(INSTALL_LOG))"; \
	{ $(PYTHON) -m venv $(VENV)/$(1) && \
	  $(VENV)/$(1)/bin/pip install --upgrade pip && \
	  $(VENV)/$(1)/bin/pip install -r $(2) && \
	  $(VENV)/$(1)/bin/pip install --no-deps -e . && \
	  $(3) \
	  $(VENV)/$(1)/bin/pip check; } > $(INSTALL_LOG) 2>&1 \
	|| { echo "FAILED setting up .venv/$(1); the end of $(INSTALL_LOG):" >&2; tail -n 25 $(INSTALL_LOG) >&2; exit 1; }; \
	echo "the $(1) environment is ready ($$(( $$(date +%s) - start )) s)"
	@touch $(VENV)/$(1)/.installed
endef

$(VENV)/app/.installed: requirements.txt constraints.txt pyproject.toml
	$(call install,app,requirements.txt,$(APP)/python -m ipykernel install --sys-prefix --name python3 &&)

$(VENV)/mage/.installed: requirements-mage.txt constraints.txt pyproject.toml
	$(call install,mage,requirements-mage.txt,)

setup: $(VENV)/app/.installed $(VENV)/mage/.installed ## create both Python environments (app and Mage)

up: setup ## start the local stack (MLflow, Mage, predictor, alert receiver, Streamlit) with honcho; wait until healthy
	@$(APP)/python -m bankmarketing.services up

down: ## stop the local stack started by `make up` (no process is left behind)
	@$(APP)/python -m bankmarketing.services down

migrate: setup ## upgrade the platform database (DATABASE_URL, else SQLite in data/) to the newest schema
	@$(APP)/bankmarketing migrate

mlflow: setup ## start the MLflow tracking server in the background (if not already up)
	@$(APP)/python -m bankmarketing.services start mlflow

mlflow-stop: ## stop the background MLflow server started by `make mlflow`
	@$(APP)/python -m bankmarketing.services stop mlflow

prepare: setup migrate ## run the Mage `prepare` pipeline (VARS='{"seed": 1}' to override variables)
	$(MAGE)/mage run mlops prepare $(if $(VARS),--runtime-vars '$(VARS)')

train: setup mlflow ## run the Mage `train` pipeline (VARS='{"trials": 5}' to override variables)
	$(MAGE)/mage run mlops train $(if $(VARS),--runtime-vars '$(VARS)')

deploy: setup migrate mlflow ## run the Mage `deploy` pipeline: stage, gate, promote (VARS='{"margin": 0.01}')
	$(MAGE)/mage run mlops deploy $(if $(VARS),--runtime-vars '$(VARS)')

test-model: setup migrate mlflow ## run the Mage `test` pipeline: production model on the test split (VARS='{"split": "jun"}')
	$(MAGE)/mage run mlops test $(if $(VARS),--runtime-vars '$(VARS)')

fairness: setup migrate mlflow ## fairness gaps of the production version on the test split and Jun–Nov, chart in images/
	$(APP)/bankmarketing fairness --chart images/fairness-gaps.png

rollback: setup migrate mlflow ## move the `production` alias back to `previous` (audited)
	$(APP)/bankmarketing rollback

.PHONY: backup restore
backup: setup ## back up the platform database, MLflow's store and artifacts, the prediction log (into BACKUP_DIR, default backups/)
	$(APP)/bankmarketing backup

restore: setup ## restore a backup, the stack stopped (make down): make restore BACKUP=backups/bankmarketing-... [FORCE=1]
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=backups/bankmarketing-<time> [FORCE=1]" >&2; exit 2; }
	$(APP)/bankmarketing restore "$(BACKUP)" $(if $(FORCE),--force)

approve: setup migrate mlflow ## with DEPLOY_REQUIRE_APPROVAL=true: promote the waiting version, VERSION=N (audited)
	$(APP)/bankmarketing approve --version $(VERSION)

challenger: setup migrate mlflow ## the challenger and its comparisons with production (ACTION=promote|withdraw; chart in images/)
	$(APP)/bankmarketing challenger $(if $(ACTION),--action $(ACTION),--chart images/challenger-vs-production.png)

monitor: setup migrate mlflow ## run the Mage `monitor` pipeline: Evidently metrics per period into the database (VARS='{"source": "log"}')
	$(MAGE)/mage run mlops monitor $(if $(VARS),--runtime-vars '$(VARS)')

outcomes: setup migrate ## load call outcomes of past predictions: make outcomes FILE=outcomes.csv (request_id, subscribed)
	$(APP)/bankmarketing outcomes --path "$(FILE)"

retrain: setup migrate mlflow ## run the Mage `retrain` pipeline by hand: newest window, train, gate (VARS='{"period": "aug"}')
	$(MAGE)/mage run mlops retrain $(if $(VARS),--runtime-vars '$(VARS)')

serve: setup migrate ## run the predictor (gunicorn) on http://127.0.0.1:9696, following the `production` alias
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/$(RUN_DIR)/prometheus PREDICTOR_HOST=127.0.0.1 \
	$(APP)/gunicorn -c python:bankmarketing.serving.gunicorn_conf 'bankmarketing.serving.app:create_app()'

receiver: setup migrate ## run the alert receiver (gunicorn) on http://127.0.0.1:6790: Grafana's webhook -> Mage retrain
	$(APP)/gunicorn -c python:bankmarketing.alerts.gunicorn_conf 'bankmarketing.alerts.app:create_app()'

ui: setup ## run the Streamlit tester on http://127.0.0.1:8501 (calls the predictor at PREDICTOR_URL)
	$(APP)/streamlit run src/bankmarketing/ui/app.py --server.address 127.0.0.1 --server.headless true

build-predictor: setup mlflow ## write (and build, if Docker runs) the predictor image context in build/predictor
	$(APP)/bankmarketing build-predictor

demo: setup up ## the local stack, then Mage prepare, train, deploy, test and monitor: a line per stage, the rest in .run/demo.log
	@$(APP)/python -m bankmarketing.demo --mage $(MAGE)/mage --log $(RUN_DIR)/demo.log $(if $(VARS),--train-vars '$(VARS)')
	@$(APP)/python -m bankmarketing.services up

mage-ui: setup migrate ## start the Mage UI and scheduler on http://127.0.0.1:6789
	$(MAGE)/mage start mlops

test: setup ## the whole test suite (unit, data, model behaviour, integration with Mage/MLflow/Postgres, notebook)
	$(APP)/python -m pytest

test-fast: setup ## tests that start no service
	$(APP)/python -m pytest -m "not integration"

screenshots: setup ## README's screenshots (images/): the stack in Chromium, its model trained with train's default search
	SCREENSHOT_DIR=$(CURDIR)/images $(APP)/python -m pytest tests/test_services.py -k "mage_ui or mlflow_ui or streamlit" -p no:cacheprovider

figures: setup ## after `make demo`: rewrite README's rows it measures (candidates, drift per period) from the registry and database
	$(APP)/python bench/figures.py

lint: setup ## ruff
	$(APP)/ruff check src tests bench mlops

bench: setup ## quality benchmark: every kind and the ensemble, 5-fold CV on all rows, against the anchor
	$(APP)/python bench/quality.py
	$(APP)/python bench/quality.py --candidate soft_voting

season: setup ## season backtest: stale Dec–May model vs the one retrained after each drift alert, chart in images/
	$(APP)/python bench/season.py --chart images/season-backtest.png

clean: mlflow-stop ## remove environments, data outputs, MLflow and Mage state
	rm -rf $(VENV) data/prepared data/quarantine mlruns .mage_data $(RUN_DIR)
