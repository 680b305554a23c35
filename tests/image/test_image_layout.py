"""The production image, without Docker: what deploy/Dockerfile's stages copy is laid out in a temporary
directory, the model is built there by the build stage's own command, the final stage's files are installed
outside this checkout, and every service starts from that install, read only, as the image's user would
(no home, no dev settings) against the session's real Kafka broker and FerretDB.

The model is built here (about 8 s) rather than copied from `make model`: only a build from the build
stage's own files shows that the stage carries everything training reads (corpus, red-team suites, code).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.domain.classification.artefact import read_manifest
from tests.image.dockerfile import DockerIgnore, Stage, copy_step, parse_dockerfile
from tools import infra

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
SERVICES = ("intake", "classification", "routing", "followup", "desk_api")
IMPORT_CHECK = """
import json, sys
import services, shared
import services.intake.main, services.classification.main, services.routing.main, services.followup.main
import services.desk_api.main
print(json.dumps({"services": services.__file__, "shared": shared.__file__,
                  "loaded": sorted(m for m in ("sklearn", "tools", "threadpoolctl") if m in sys.modules)}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_laid_out(text: str, stage: Stage, root: Path) -> str:
    """A path of the stage's file system (under its WORKDIR) as a path in its laid-out directory."""
    return str(root) + text[len(stage.workdir):] if text.startswith(stage.workdir) else text


def _lay_out(stage: Stage, root: Path, files: list[str], stages: dict[str, tuple[Path, str]]) -> None:
    root.mkdir(parents=True)
    for instruction, args in stage.steps:
        if instruction == "COPY":
            copy_step(args, REPO_ROOT, files, stages, root)
    stages[stage.name] = (root, stage.workdir)


def _clean_env(**extra: str) -> dict[str, str]:
    """Nothing inherited from this session but PATH: no dev settings, no home."""
    return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": "/nonexistent", **extra}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Stage]]:
    """(the final stage's /app, the installed site, the final stage) laid out from the Dockerfile."""
    tmp = tmp_path_factory.mktemp("image")
    stages = parse_dockerfile(DOCKERFILE)
    assert len(stages) >= 2, "the Dockerfile builds the model in a stage of its own"
    files = DockerIgnore(DOCKERFILE.with_name(DOCKERFILE.name + ".dockerignore")).context(REPO_ROOT)
    laid: dict[str, tuple[Path, str]] = {}
    for stage in stages[:-1]:
        root = tmp / f"stage-{stage.name}"
        _lay_out(stage, root, files, laid)
        for instruction, args in stage.steps:
            if instruction != "RUN" or args.startswith("pip install"):
                continue  # this interpreter's environment stands for the stage's installed dependencies
            words = shlex.split(args)
            assert words[0] == "python", f"the test runs the build stage's python commands only, not {args!r}"
            command = [sys.executable, *(_as_laid_out(w, stage, root) for w in words[1:])]
            # the session's download cache stands for the stage's: the npm tarball is fetched once per machine
            done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600,
                                  env=_clean_env(PYTHONDONTWRITEBYTECODE="1",
                                                 TRIAGE_CACHE_DIR=str(infra.default_cache_dir())))
            assert done.returncode == 0, done.stdout + done.stderr
            if words[1:3] == ["-m", "tools.infra.assets"]:
                assert done.stdout.splitlines()[-1] == _as_laid_out(words[-1], stage, root), done.stdout
            else:
                assert f"in {root}/" in done.stdout, f"trained from the checkout, not the stage:\n{done.stdout}"
    final = stages[-1]
    app = tmp / "app"
    _lay_out(final, app, files, laid)
    site = tmp / "site"
    for instruction, args in final.steps:
        if instruction == "RUN" and args.startswith("pip install"):
            assert shlex.split(args)[2:] == ["."], args
            # as the image does it (an isolated build); --no-deps: this interpreter has the dependencies
            done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                                   "--target", str(site), str(app)],
                                  capture_output=True, text=True, timeout=600, cwd=tmp)
            assert done.returncode == 0, done.stdout + done.stderr
    yield app, site, final


def test_the_final_stage_holds_the_services_the_built_model_and_the_browser_libraries_only(
    image: tuple[Path, Path, Stage], model_dir: Path
) -> None:
    app, site, final = image
    assert sorted(p.name for p in app.iterdir() if not p.name.endswith(".egg-info") and p.name != "build") == [
        "assets", "model", "pyproject.toml", "services", "shared"]
    assert (site / "services").is_dir() and (site / "shared" / "domain" / "rules.yaml").is_file()
    assert not (site / "tools").exists() and not (site / "data").exists()
    assert not list(site.rglob("*.jsonl")), "no corpus in the installed site"
    assert final.env.get("HOME") == "/nonexistent" and final.env.get("MODEL_DIR")
    # the desk API serves htmx from the image (no CDN in a district's network)
    assert final.env.get("DESK_ASSETS_DIR") == f"{final.workdir}/assets"
    assert sorted(p.name for p in (app / "assets").iterdir()) == ["LICENSE-htmx", "htmx.min.js"]
    assert (app / "assets" / "htmx.min.js").read_bytes().startswith(b"var htmx=")
    # the image's model is the one the unit tests check: the same inputs, the same key
    assert read_manifest(app / "model").key == read_manifest(model_dir).key


def _import_check(cwd: Path, site: Path, model: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", IMPORT_CHECK], cwd=cwd, capture_output=True, text=True,
                          env=_clean_env(PYTHONPATH=str(site), MODEL_DIR=str(model),
                                         COMPLAINANT_KEY_SECRET=secrets.token_urlsafe(48),
                                         ENCRYPTION_MASTER_KEY=base64.b64encode(secrets.token_bytes(96)).decode()),
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_services_import_from_the_layout_and_never_load_training_code(image: tuple[Path, Path, Stage]) -> None:
    app, site, final = image
    model = Path(_as_laid_out(final.env["MODEL_DIR"], final, app))
    # as the services run: in the image's WORKDIR
    in_app = _import_check(app, site, model)
    assert str(in_app["services"]).startswith(str(app.parent)), in_app
    assert in_app["loaded"] == [], "a service imported training code"
    # and from the install alone
    installed = _import_check(app.parent, site, model)
    assert str(installed["services"]).startswith(str(site)) and str(installed["shared"]).startswith(str(site))


def _start(name: str, port: int, app: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    runner = ["uvicorn"] if name == "desk_api" else ["faststream", "run"]
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", *runner, f"services.{name}.main:app", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def test_every_service_starts_from_the_image_layout(
    image: tuple[Path, Path, Stage], endpoints: infra.Endpoints, tmp_path: Path
) -> None:
    app, site, final = image
    run = secrets.token_hex(4)
    env = _clean_env(
        PYTHONPATH=str(site),
        **{k: _as_laid_out(v, final, app) for k, v in final.env.items() if k not in ("HOME", "PATH")},
        KAFKA_BOOTSTRAP_SERVERS=endpoints.kafka_bootstrap, MONGODB_URI=endpoints.mongodb_uri,
        MONGODB_DATABASE=f"triage_image_{run}", CONSUMER_GROUP_PREFIX=f"image-{run}",
        COMPLAINANT_KEY_SECRET=secrets.token_urlsafe(48),
        ENCRYPTION_MASTER_KEY=base64.b64encode(secrets.token_bytes(96)).decode(),
        DESK_TOKENS=json.dumps({secrets.token_urlsafe(24): "police"}),
    )
    assert env["MODEL_DIR"] == str(app / "model") and env["HOME"] == "/nonexistent"
    ports = {name: _free_port() for name in SERVICES}
    processes = {name: _start(name, port, app, env, tmp_path / f"{name}.log") for name, port in ports.items()}
    try:
        pending = set(SERVICES)
        deadline = time.monotonic() + 180
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                exited = processes[name].poll() is not None
                assert not exited, f"{name} exited:\n{(tmp_path / f'{name}.log').read_text(errors='replace')[-3000:]}"
                if _healthy(ports[name]):
                    pending.discard(name)
            time.sleep(0.5)
        assert not pending, {n: (tmp_path / f"{n}.log").read_text(errors="replace")[-2000:] for n in pending}
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_without_its_model_the_classification_service_stops_with_what_to_run(
    image: tuple[Path, Path, Stage], tmp_path: Path
) -> None:
    app, site, _ = image
    missing = tmp_path / "no-model"
    done = subprocess.run([sys.executable, "-m", "faststream", "run", "services.classification.main:app",
                           "--port", str(_free_port())], cwd=app, capture_output=True, text=True, timeout=120,
                          env=_clean_env(PYTHONPATH=str(site), MODEL_DIR=str(missing),
                                         COMPLAINANT_KEY_SECRET=secrets.token_urlsafe(48)))
    assert done.returncode != 0
    assert f"no model at {missing}: run `make model`" in done.stderr
