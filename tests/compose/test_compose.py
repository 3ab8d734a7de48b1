"""Static checks of docker-compose.yml, the Dockerfiles and docs/setup.md (no Docker engine here).

What runs for real: the Compose Specification schema through jsonschema, the secrets check
script, and the Postgres init script against a throwaway PostgreSQL 15 server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from bankmarketing.serving.build_context import DOCKERFILE as PREDICTOR_DOCKERFILE_TEMPLATE
from bankmarketing.serving.build_context import PORT as PREDICTOR_PORT

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COMPOSE_FILE = REPO / "docker-compose.yml"
PROCFILE = REPO / "Procfile"
ENV_EXAMPLE = REPO / ".env.example"
SETUP_DOC = REPO / "docs" / "setup.md"
CHECK_SECRETS = REPO / "docker" / "check-secrets.sh"
INIT_SCRIPT = REPO / "docker" / "postgres" / "init-databases.sh"

#: The services of the Procfile (the local stack); compose runs each with the same command.
STACK = ("mlflow", "mage", "predictor", "alerts", "streamlit")
#: Environment keys whose value is a credential.
SECRET_KEY = re.compile(r"(PASSWORD|TOKEN|SECRET|SECRET_KEY|API_KEY)$")
#: Compose interpolation: $$ (a literal $), ${VAR}, ${VAR:-default}, ${VAR?err}, ..., $VAR.
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
ROOT_USERS = {"root", "0"}
#: Official images run with an explicit compose `user:`; what that user is in the image.
OFFICIAL_IMAGE_USERS = {
    "postgres:15-alpine": {"postgres", "65534:65534"},  # postgres = uid 70; 65534 = nobody
    "grafana/grafana-oss:12.2.0": {"472:0"},  # the image's own user `grafana`
}


# --- helpers ---------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def strings(node):
    """Every string in a YAML tree (keys and values)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def variables_used(node) -> set[str]:
    names = set()
    for text in strings(node):
        for match in INTERPOLATION.finditer(text):
            name = match["braced"] or match["bare"]
            if name:
                names.add(name)
    return names


def interpolate(node, env: dict[str, str]):
    """Compose's interpolation of the whole file with the given variables (as `.env` would)."""

    def one(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        value = env.get(name)
        op, arg = match["op"], match["arg"] or ""
        if op in (":-", "-"):
            return value if (value if op == ":-" else value is not None) else arg
        if op in (":?", "?"):
            if value is None or (op == ":?" and not value):
                raise ValueError(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return arg if (value if op == ":+" else value is not None) else ""
        return value or ""

    if isinstance(node, dict):
        return {interpolate(k, env): interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, str):
        return INTERPOLATION.sub(one, node)
    return node


def resolved_services() -> dict[str, dict]:
    return interpolate(compose(), env_example())["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def dockerfile(text: str) -> list[tuple[str, str]]:
    """Instructions of a Dockerfile as (INSTRUCTION, arguments), continuations joined."""
    instructions, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def last(instructions: list[tuple[str, str]], keyword: str) -> str | None:
    found = [args for name, args in instructions if name == keyword]
    return found[-1] if found else None


def exec_form(args: str | None) -> list[str] | None:
    if args is None:
        return None
    parsed = json.loads(args)
    assert isinstance(parsed, list), f"{args} is not in exec form"
    return parsed


def predictor_dockerfile() -> str:
    return PREDICTOR_DOCKERFILE_TEMPLATE.format(name="bank-term-deposit", version="1", port=PREDICTOR_PORT)


#: The image each built service uses, by Dockerfile.
DOCKERFILES = {
    "docker/app.Dockerfile": lambda: (REPO / "docker/app.Dockerfile").read_text(),
    "docker/mage.Dockerfile": lambda: (REPO / "docker/mage.Dockerfile").read_text(),
    "build/predictor/Dockerfile": predictor_dockerfile,
}


def service_dockerfile(service: dict) -> str | None:
    build = service.get("build")
    if build is None:
        return None
    context = build["context"].removeprefix("./").rstrip("/")
    name = build.get("dockerfile", "Dockerfile")
    return name if context == "." else f"{context}/{name}"


def procfile() -> dict[str, str]:
    entries = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def procfile_command(entry: str, env: dict[str, str]) -> list[str]:
    """The Procfile entry without its environment's bin folder, its $VARS from `env`."""
    words = [re.sub(r"^\$(APP_BIN|MAGE_BIN)/", "", word) for word in shlex.split(entry)]
    resolved = []
    for word in words:
        for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", word):
            assert name in env, f"Procfile's ${name} is not in the compose service's environment"
        resolved.append(re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env[m[1]], word))
    return resolved


def setup_images_table() -> dict[str, dict[str, str]]:
    """docs/setup.md's image table (section "Compose"), keyed by image."""
    text = SETUP_DOC.read_text()
    compose_section = text.split("\n## Compose", 1)[1]
    rows = [line for line in compose_section.splitlines() if line.startswith("|")]
    header_index = next(i for i, row in enumerate(rows) if row.startswith("| image | Dockerfile |"))
    header = [cell.strip() for cell in rows[header_index].strip("|").split("|")]
    table = {}
    for row in rows[header_index + 2 :]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) != len(header):
            break
        record = {key: cell.strip("`") for key, cell in zip(header, cells, strict=True)}
        table[record["image"]] = record
    return table


def one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


# --- the file and its schema -------------------------------------------------------------


def test_compose_file_validates_against_the_compose_specification_schema():
    schema = json.loads((HERE / "compose-spec.json").read_text())
    assert schema["title"] == "Compose Specification"
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    for document in (compose(), interpolate(compose(), env_example())):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_validator_rejects_what_compose_rejects():
    """The vendored schema is not vacuous: typos and wrong types fail."""
    schema = json.loads((HERE / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = compose()
    broken["services"]["mlflow"]["helthcheck"] = broken["services"]["mlflow"].pop("healthcheck")
    assert not validator.is_valid(broken)
    broken = compose()
    broken["services"]["mlflow"]["depends_on"]["postgres"]["condition"] = "service_ready"
    assert not validator.is_valid(broken)


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="no docker compose plugin on this machine (the schema test above still runs)",
)
def test_docker_compose_config_accepts_the_file(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text(ENV_EXAMPLE.read_text())
    result = subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_the_platform_services_are_all_there():
    assert set(services()) == {
        "check-secrets",
        "postgres",
        "mlflow",
        "migrate",
        "mage",
        "grafana",
        "predictor",
        "alerts",
        "streamlit",
    }


# --- health, restart, order --------------------------------------------------------------


def test_every_long_running_service_has_a_health_check_and_a_restart_policy():
    for name, service in services().items():
        if one_shot(service):
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no health check"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        assert {"interval", "timeout", "retries"} <= set(check), name
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), name


def test_one_shot_jobs_are_explicit_and_waited_for_by_exit_code():
    jobs = {name for name, service in services().items() if one_shot(service)}
    assert jobs == {"check-secrets", "migrate"}
    for job in jobs:
        assert services()[job]["healthcheck"] == {"disable": True}, "a job has no health to probe"
    for name, service in services().items():
        for target, dependency in (service.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if target in jobs else "service_healthy"
            assert dependency["condition"] == expected, f"{name} -> {target}"


def test_every_service_waits_for_the_secrets_check():
    for name, service in services().items():
        if name != "check-secrets":
            assert service["depends_on"]["check-secrets"] == {"condition": "service_completed_successfully"}


def test_dependencies_follow_what_each_service_talks_to():
    deps = {name: set(service.get("depends_on") or {}) for name, service in services().items()}
    assert {"postgres"} <= deps["mlflow"]
    assert {"postgres", "mlflow"} <= deps["mage"]
    assert {"postgres", "mlflow"} <= deps["predictor"]
    assert {"postgres"} <= deps["alerts"]
    assert {"postgres", "alerts"} <= deps["grafana"]
    assert {"predictor"} <= deps["streamlit"]


def test_every_service_of_the_platform_tables_starts_after_they_are_migrated():
    """`bankmarketing migrate` on the platform database; nothing else migrates it."""
    job = services()["migrate"]
    assert job["command"] == ["bankmarketing", "migrate"]
    platform = job["environment"]["DATABASE_URL"]
    assert platform.endswith("@postgres:5432/monitoring")
    users = {
        name for name, s in services().items() if (s.get("environment") or {}).get("DATABASE_URL") == platform
    }
    assert users >= {"predictor", "alerts", "migrate"}
    for name in users - {"migrate"} | {"mage"}:
        assert services()[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, (
            name
        )


# --- users -------------------------------------------------------------------------------


def non_root(user: str | None) -> bool:
    return bool(user) and user.split(":")[0] not in ROOT_USERS


def test_every_service_runs_as_a_non_root_user():
    for name, service in services().items():
        path = service_dockerfile(service)
        if "user" in service:
            assert non_root(str(service["user"])), f"{name}: user {service['user']}"
        if path is None:
            assert "user" in service, f"{name}: an official image must name its user in compose"
            assert str(service["user"]) in OFFICIAL_IMAGE_USERS[service["image"]], name
        else:
            user = last(dockerfile(DOCKERFILES[path]()), "USER")
            assert non_root(user) or non_root(service.get("user")), f"{name}: {path} runs as {user}"


def test_the_generated_predictor_context_when_present_runs_as_its_template_says():
    generated = REPO / "build" / "predictor" / "Dockerfile"
    if not generated.is_file():
        pytest.skip("no build/predictor here (written by `make deploy` / `make build-predictor`)")
    ours, theirs = dockerfile(generated.read_text()), dockerfile(predictor_dockerfile())
    for keyword in ("FROM", "USER", "ENTRYPOINT", "CMD", "HEALTHCHECK"):
        assert last(ours, keyword) == last(theirs, keyword), keyword


# --- secrets and variables ---------------------------------------------------------------


def test_no_literal_secret_every_credential_is_a_variable_reference():
    for name, service in services().items():
        for key, value in environment(service).items():
            if SECRET_KEY.search(key):
                assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*\}", value), f"{name}.{key} = {value!r}"
    for text in strings(compose()):
        for user, password in re.findall(r"://([^/@:\s]+):([^/@\s]+)@", text):
            assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*\}", user), text
            assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*\}", password), text


def test_every_secret_the_stack_uses_goes_through_the_secrets_check():
    job = services()["check-secrets"]
    checked = {spec.rstrip("?") for spec in job["command"]}
    used = set()
    for service in services().values():
        for key, value in environment(service).items():
            if SECRET_KEY.search(key):
                used |= variables_used(value)
        for text in strings(service):
            for _, password in re.findall(r"://([^/@:\s]+):([^/@\s]+)@", text):
                used |= variables_used(password)
    assert used == checked, f"unchecked: {used - checked}, not used: {checked - used}"
    assert set(environment(job)) >= checked, "the job must see each variable it checks"
    for spec in job["command"]:
        name = spec.rstrip("?")
        assert environment(job)[name] == "${" + name + "}"


def test_every_variable_used_is_documented_in_env_example():
    documented = env_example()
    missing = sorted(variables_used(compose()) - set(documented))
    assert not missing, f"not in .env.example: {missing}"


def test_env_example_defines_each_variable_once():
    keys = [
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and "=" in line
    ]
    assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})


def test_env_example_has_only_safe_placeholders_for_the_secrets():
    documented = env_example()
    for spec in services()["check-secrets"]["command"]:
        value = documented[spec.rstrip("?")]
        assert value in ("", "CHANGE_ME"), f"{spec} = {value!r} in .env.example"


# --- the secrets check script ------------------------------------------------------------


def run_check(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ["PATH"]} | env
    return subprocess.run(["sh", str(CHECK_SECRETS), *args], env=clean, capture_output=True, text=True)


def test_the_secrets_check_refuses_env_example_and_names_each_variable():
    job = resolved_services()["check-secrets"]
    args, env = job["command"], environment(job)
    result = run_check(args, env)
    assert result.returncode == 1
    refused = {spec.rstrip("?") for spec in args if not spec.endswith("?")}
    for name in refused:
        assert re.search(rf"^check-secrets: {name} ", result.stderr, re.M), name
    for spec in args:
        if spec.endswith("?"):  # empty optional secrets are fine
            assert spec.rstrip("?") + " " not in result.stderr
    assert "CHANGE_ME" not in result.stderr.replace("CHANGE_ME or", ""), "never print a value"


def test_the_secrets_check_accepts_real_secrets_and_refuses_each_kind_of_placeholder():
    job = resolved_services()["check-secrets"]
    args = job["command"]
    strong = {spec.rstrip("?"): f"{spec.rstrip('?').lower()}-0123456789abcdef" for spec in args}
    ok = run_check(args, strong)
    assert ok.returncode == 0, ok.stderr
    assert run_check(args, {k: v for k, v in strong.items() if k != "PREDICTOR_ADMIN_TOKEN"}).returncode == 0
    for bad in ("CHANGE_ME", "change_me-but-long-enough", "", "admin", "short-secret"):
        result = run_check(args, strong | {"POSTGRES_PASSWORD": bad})
        assert result.returncode == 1, bad
        assert "POSTGRES_PASSWORD" in result.stderr
        assert bad == "" or bad not in result.stderr.split("POSTGRES_PASSWORD", 1)[1].split("\n")[0]
    result = run_check(args, strong | {"PREDICTOR_ADMIN_TOKEN": "CHANGE_ME"})
    assert result.returncode == 1 and "PREDICTOR_ADMIN_TOKEN" in result.stderr


def test_the_secrets_check_service_runs_the_script_with_plain_sh():
    job = services()["check-secrets"]
    assert CHECK_SECRETS.read_text().startswith("#!/bin/sh\n")
    assert job["entrypoint"] == ["/bin/sh", "/opt/check-secrets.sh"]
    assert "./docker/check-secrets.sh:/opt/check-secrets.sh:ro" in job["volumes"]
    assert job["network_mode"] == "none"


# --- commands: Procfile, compose, images -------------------------------------------------


def test_each_compose_command_is_the_procfile_entry_of_the_same_name():
    entries = procfile()
    assert set(entries) == set(STACK)
    resolved = resolved_services()
    for name in STACK:
        service = resolved[name]
        expected = procfile_command(entries[name], environment(service))
        assert service["command"] == expected, name


def test_each_image_default_command_is_its_service_command():
    resolved = resolved_services()
    for name, path in (("mlflow", "docker/app.Dockerfile"), ("mage", "docker/mage.Dockerfile")):
        assert service_dockerfile(resolved[name]) == path
        assert exec_form(last(dockerfile(DOCKERFILES[path]()), "CMD")) == resolved[name]["command"], name
    predictor = dockerfile(predictor_dockerfile())
    assert exec_form(last(predictor, "CMD")) == resolved["predictor"]["command"]
    for name in ("alerts", "streamlit"):
        assert service_dockerfile(resolved[name]) == "docker/app.Dockerfile", name


def test_the_services_listen_where_their_ports_and_health_checks_point():
    resolved = resolved_services()
    internal = {"mlflow": 5000, "mage": 6789, "predictor": 9696, "alerts": 6790, "streamlit": 8501}
    for name, port in internal.items():
        service = resolved[name]
        assert any(str(p).endswith(f":{port}") for p in service["ports"]), name
        assert f"127.0.0.1:{port}/" in " ".join(service["healthcheck"]["test"]), name
        assert f"{port}" in " ".join(service["command"]) or str(port) in environment(service).values(), name
    assert all(p.startswith("127.0.0.1:") for s in resolved.values() for p in s.get("ports", []))
    assert "ports" not in resolved["postgres"]


# --- Dockerfiles against docs/setup.md ---------------------------------------------------


def test_each_dockerfile_matches_the_image_table_in_docs_setup():
    table = setup_images_table()
    by_file = {row["Dockerfile"]: row for row in table.values()}
    assert set(DOCKERFILES) <= set(by_file)
    for path, read in DOCKERFILES.items():
        row, instructions = by_file[path], dockerfile(read())
        froms = [args.split()[0] for name, args in instructions if name == "FROM"]
        assert froms[-1] == row["base image"], path
        for keyword in ("ENTRYPOINT", "CMD"):
            documented = None if row[keyword] in ("—", "-") else json.loads(row[keyword])
            assert exec_form(last(instructions, keyword)) == documented, f"{path} {keyword}"
        user = last(instructions, "USER")
        assert non_root(user) and user.split(":")[0] in row["user"], path
        assert last(instructions, "HEALTHCHECK"), f"{path} has no HEALTHCHECK"


def test_the_image_table_names_the_images_compose_runs():
    table = setup_images_table()
    for name, service in services().items():
        image = service["image"]
        path = service_dockerfile(service)
        if path is None:
            assert image in table and table[image]["Dockerfile"] == "official", name
            assert table[image]["base image"] == image
        else:
            assert table[image.split(":")[0]]["Dockerfile"] == path, name


def test_the_setup_doc_keeps_the_local_stack_placeholder_and_the_compose_section():
    text = SETUP_DOC.read_text()
    assert "\n## Local stack\n" in text and "\n## Compose\n" in text
    for name in services():
        assert f"`{name}`" in text, f"docs/setup.md does not describe {name}"


def test_the_mage_image_is_the_official_one_plus_the_pinned_pipeline_environment():
    text = (REPO / "docker/mage.Dockerfile").read_text()
    instructions = dockerfile(text)
    assert [args for name, args in instructions if name == "FROM"] == ["mageai/mageai:0.9.80"]
    runs = " ".join(args for name, args in instructions if name == "RUN")
    assert "pip install -r requirements-mage.txt" in runs
    assert "-c constraints.txt" in (REPO / "requirements-mage.txt").read_text()
    assert "pip install --no-deps -e ." in runs
    copies = " ".join(args for name, args in instructions if name == "COPY")
    for needed in ("constraints.txt", "requirements.txt", "requirements-mage.txt", "pyproject.toml"):
        assert needed in copies


def test_each_built_context_sends_only_what_its_dockerfile_copies():
    for path in ("docker/app.Dockerfile", "docker/mage.Dockerfile"):
        ignore = (REPO / f"{path}.dockerignore").read_text().splitlines()
        rules = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
        assert rules[0] == "*", f"{path}: allow-list, starting from nothing"
        allowed = {rule[1:] for rule in rules if rule.startswith("!")}
        for name, args in dockerfile((REPO / path).read_text()):
            if name == "COPY" and "--from" not in args:
                sources = [w for w in args.split()[:-1] if not w.startswith("--")]
                for source in sources:
                    assert source.rstrip("/") in allowed, f"{path}: {source} is not sent"
                    assert (REPO / source).exists(), source


# --- Postgres: databases named by the URLs exist -----------------------------------------


def init_script_databases() -> tuple[set[str], set[str]]:
    text = INIT_SCRIPT.read_text()
    created = set(re.search(r'^DATABASES="([^"]+)"', text, re.M)[1].split())
    readable = set(re.search(r'^READABLE="([^"]+)"', text, re.M)[1].split())
    return created, readable


def test_the_init_script_creates_every_database_the_services_name():
    created, readable = init_script_databases()
    assert created == {"mlflow", "mage", "monitoring"}
    resolved = resolved_services()
    named = {}
    for name, service in resolved.items():
        for key, value in environment(service).items():
            match = re.fullmatch(r"postgresql(?:\+psycopg2)?://[^@]+@postgres:5432/([A-Za-z0-9_]+)", value)
            if match:
                named[f"{name}.{key}"] = match[1]
    assert named["mlflow.DATABASE_URL"] == "mlflow"
    assert named["mage.MAGE_DATABASE_CONNECTION_URL"] == "mage"
    for name in ("mage", "predictor", "alerts"):
        assert named[f"{name}.DATABASE_URL"] == "monitoring", name
    assert named["alerts.MAGE_DATABASE_CONNECTION_URL"] == "mage"
    assert set(named.values()) <= created
    grafana = environment(resolved["grafana"])
    assert {grafana["GRAFANA_MONITORING_DB_NAME"], grafana["GRAFANA_MAGE_DB_NAME"]} == readable
    assert environment(resolved["mage"])["POSTGRES_DB"] in created  # mlops/io_config.yaml
    postgres = services()["postgres"]
    assert "./docker/postgres:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    assert environment(postgres)["GRAFANA_READER_USER"] == "${GRAFANA_MONITORING_DB_USER}"
    assert env_example()["GRAFANA_MONITORING_DB_USER"] == "grafana_reader"


@pytest.mark.integration
def test_the_init_script_really_creates_the_databases_and_a_read_only_role():
    from tests.conftest import PG_BIN, Postgres

    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL binaries in {PG_BIN}")
    server = Postgres()
    try:

        def psql(database: str, sql: str, user: str = "postgres") -> subprocess.CompletedProcess:
            return subprocess.run(
                [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(server.port), "-U", user]
                + ["-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                capture_output=True,
                text=True,
            )

        env = {
            "PATH": f"{PG_BIN}:{os.environ['PATH']}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(server.port),
            "POSTGRES_USER": "postgres",
            "GRAFANA_READER_USER": "grafana_reader",
            "GRAFANA_READER_PASSWORD": "reader-password-0123456789",
        }
        result = subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        created, readable = init_script_databases()
        listed = set(psql("postgres", "SELECT datname FROM pg_database").stdout.split())
        assert created <= listed
        # A table created later by the owner (Mage, Alembic) is readable, not writable.
        for database in readable:
            assert psql(database, "CREATE TABLE later (x int); INSERT INTO later VALUES (1)").returncode == 0
            assert psql(database, "SELECT x FROM later", "grafana_reader").stdout.strip() == "1"
            assert psql(database, "INSERT INTO later VALUES (2)", "grafana_reader").returncode != 0
            assert psql(database, "CREATE TABLE mine (x int)", "grafana_reader").returncode != 0
        for database in created - readable:
            denied = psql(database, "SELECT 1", "grafana_reader")
            assert denied.returncode != 0 and "CONNECT" in denied.stderr
    finally:
        server.stop()


# --- Grafana, Mage, receiver, Streamlit settings -----------------------------------------


def test_grafana_mounts_and_variables_match_grafana_readme_and_provisioning():
    readme = (REPO / "grafana" / "README.md").read_text()
    block = re.search(r"## Mounts \(docker-compose\)\s+```yaml\n(.*?)```", readme, re.S)[1]
    documented = yaml.safe_load(block)["grafana"]
    service = services()["grafana"]
    assert service["volumes"] == documented["volumes"]
    assert service["image"].startswith("grafana/grafana-oss:12.")
    provisioning = (REPO / "grafana" / "provisioning").rglob("*.yaml")
    used = {name for p in provisioning for name in re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", p.read_text())}
    used.discard("VAR")  # a comment's example
    env = environment(service)
    assert used <= set(env), f"Grafana's provisioning needs {used - set(env)}"
    assert env["GRAFANA_ALERT_WEBHOOK_URL"] == "http://alerts:6790/alerts"
    assert env["GF_SECURITY_ADMIN_USER"] == "${GRAFANA_ADMIN_USER}"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD}"
    assert env_example()["GRAFANA_ADMIN_USER"] != "admin"


def test_mage_keeps_its_state_in_postgres_with_authentication_on():
    env = environment(services()["mage"])
    assert env["MAGE_DATABASE_CONNECTION_URL"].startswith("postgresql+psycopg2://")
    assert env["REQUIRE_USER_AUTHENTICATION"] in ("1", "true", "True")
    assert env["DEFAULT_OWNER_EMAIL"] == "${DEFAULT_OWNER_EMAIL}"
    assert env["DEFAULT_OWNER_PASSWORD"] == "${DEFAULT_OWNER_PASSWORD}"
    assert env["MAGE_RETRAIN_TRIGGER_TOKEN"] == "${MAGE_RETRAIN_TRIGGER_TOKEN}"
    triggers = (REPO / "mlops" / "pipelines" / "retrain" / "triggers.yaml").read_text()
    assert "os.getenv [MAGE_RETRAIN_TRIGGER_TOKEN]" in triggers


def test_the_receiver_predictor_and_streamlit_find_each_other():
    alerts = environment(services()["alerts"])
    assert alerts["MAGE_API_URL"] == "http://mage:6789"
    assert alerts["ALERT_RECEIVER_PORT"] == "6790"
    assert environment(services()["streamlit"])["PREDICTOR_URL"] == "http://predictor:9696"
    predictor = resolved_services()["predictor"]
    assert environment(predictor)["PREDICTOR_MODEL_ALIAS"] == "production"
    assert environment(predictor)["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert services()["predictor"]["build"] == {"context": "./build/predictor"}


# --- volumes and networks ----------------------------------------------------------------


def test_state_lives_in_named_volumes_and_bind_mounts_are_read_only_config():
    spec = compose()
    declared = set(spec["volumes"])
    used = set()
    for name, service in spec["services"].items():
        for volume in service.get("volumes", []):
            source, target, *mode = volume.split(":")
            if source.startswith("."):
                assert mode == ["ro"], f"{name}: bind mount {volume} must be read-only"
                assert (REPO / source).exists(), volume
            else:
                used.add(source)
    assert used == declared == {"postgres-data", "mlflow-artifacts", "mage-data", "bank-data", "grafana-data"}


def test_backend_and_frontend_networks_are_separate():
    spec = compose()
    assert set(spec["networks"]) == {"backend", "frontend"}
    assert spec["networks"]["backend"]["internal"] is True
    nets = {name: set(s.get("networks", [])) for name, s in spec["services"].items()}
    assert nets["postgres"] == {"backend"}
    assert nets["streamlit"] == {"frontend"}
    for name, service in spec["services"].items():
        if service.get("ports"):
            assert "frontend" in nets[name], f"{name} publishes ports on an internal network"
        talks_to_postgres = "postgres" in (service.get("depends_on") or {})
        if talks_to_postgres:
            assert "backend" in nets[name], name
