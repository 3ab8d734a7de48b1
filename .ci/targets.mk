# CI/CD targets, included by the Makefile. The workflows in .github/workflows call these
# (and the Makefile's own targets), so CI runs the same commands as a developer here.

DOCKER ?= docker
IMAGE_PREFIX ?= bankmarketing
IMAGE_TAG ?= latest
PREDICTOR_CONTEXT ?= build/predictor
RELEASE_DIR ?= build/release
SMOKE_TIMEOUT ?= 300

.PHONY: fetch-data api-docs api-docs-check images image-app image-mage image-predictor smoke-app smoke-mage smoke-predictor drift-check model-card dist

fetch-data: setup ## make sure the UCI data is here (BANK_DATA_PATH, cache or checked download); print its path
	@$(APP)/python .ci/fetch_data.py

api-docs: setup ## write docs/api.md from the predictor's OpenAPI document
	$(APP)/python -m bankmarketing.serving.api_docs --output docs/api.md

api-docs-check: setup ## fail if docs/api.md differs from what `make api-docs` writes
	$(APP)/python -m bankmarketing.serving.api_docs --output docs/api.md --check

images: image-app image-mage ## build the app and Mage images (the predictor's: make image-predictor)

image-app: ## build docker/app.Dockerfile as $(IMAGE_PREFIX)-app:$(IMAGE_TAG)
	$(DOCKER) build -f docker/app.Dockerfile -t $(IMAGE_PREFIX)-app:$(IMAGE_TAG) .

image-mage: ## build docker/mage.Dockerfile as $(IMAGE_PREFIX)-mage:$(IMAGE_TAG)
	$(DOCKER) build -f docker/mage.Dockerfile -t $(IMAGE_PREFIX)-mage:$(IMAGE_TAG) .

image-predictor: ## build the generated predictor context (make build-predictor / deploy writes it) as $(IMAGE_PREFIX)-predictor:$(IMAGE_TAG)
	@test -f $(PREDICTOR_CONTEXT)/Dockerfile || { echo "no $(PREDICTOR_CONTEXT)/Dockerfile: run make deploy or make build-predictor first" >&2; exit 1; }
	$(DOCKER) build -t $(IMAGE_PREFIX)-predictor:$(IMAGE_TAG) $(PREDICTOR_CONTEXT)

smoke-app: ## start the app image (MLflow server) and wait for its health check
	DOCKER=$(DOCKER) SMOKE_PROBE='curl -fsS http://127.0.0.1:15000/health' \
	bash .ci/smoke_image.sh $(IMAGE_PREFIX)-app:$(IMAGE_TAG) $(SMOKE_TIMEOUT) -p 127.0.0.1:15000:5000

smoke-mage: ## start the Mage image and wait for its health check (/api/status)
	DOCKER=$(DOCKER) bash .ci/smoke_image.sh $(IMAGE_PREFIX)-mage:$(IMAGE_TAG) $(SMOKE_TIMEOUT) \
	  -p 127.0.0.1:16789:6789

smoke-predictor: ## start the predictor image with the registry unreachable (its cached model), wait for /ready, score docs/example-customer.json
	DOCKER=$(DOCKER) SMOKE_PROBE='curl -fsS http://127.0.0.1:19696/predict -H "Content-Type: application/json" -d @docs/example-customer.json' \
	bash .ci/smoke_image.sh $(IMAGE_PREFIX)-predictor:$(IMAGE_TAG) $(SMOKE_TIMEOUT) \
	  -e MLFLOW_TRACKING_URI=http://127.0.0.1:9 -e BANK_DATA_DIR=/tmp/bankmarketing -p 127.0.0.1:19696:9696

drift-check: setup mlflow ## run monitor (the pipeline's blocks, via the CLI), keep its JSON in $(RUN_DIR)/drift-check.json, say if the drift alert fired (VARS as for monitor)
	@mkdir -p $(RUN_DIR)
	$(APP)/python .ci/drift_check.py --bankmarketing $(MAGE)/bankmarketing --output $(RUN_DIR)/drift-check.json $(if $(VARS),--vars '$(VARS)')

model-card: setup ## export the production version's model card to $(RELEASE_DIR)/ (model_card.md, model_version.json)
	$(APP)/python .ci/export_model_card.py --output-dir $(RELEASE_DIR) $(if $(ALIAS),--alias $(ALIAS))

dist: setup ## build the bankmarketing wheel into dist/
	$(APP)/python -m pip wheel --quiet --no-deps -w dist .
	@ls dist/*.whl

.PHONY: secrets-scan

secrets-scan: setup ## scan every version of every file in the git history for secrets (detect-secrets; .ci/secrets-scan.py)
	$(APP)/python .ci/secrets-scan.py --repo .
