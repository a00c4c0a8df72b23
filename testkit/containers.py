"""What the container tests drive: the engine of ../shared/containers, a desktop user, fresh copies, stacks.

Everything runs the way a developer's machine does: a real dockerd with Compose v2, Buildx and the Dev
Containers CLI, commands run as an ordinary user (UID 1000) who owns a fresh copy of the repository with
no ``.env``, and the stack reached only on its published loopback port. Nothing here is mocked.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from localflow import rest
from localflow.config.envfile import parse
from localflow.polling import WaitTimeout, wait_until
from localflow.secrets import rules, store
from testkit.environment import REPO

# Its env.sh exports LOCALFLOW_ENGINE_DIR (the engine's state): CI's shell, and so every test, carries it.
SHARED_CONTAINERS = Path(os.environ.get("LOCALFLOW_SHARED_CONTAINERS", REPO.parent / "shared" / "containers"))
DESKTOP_UID = 1000  # the first user of a Linux desktop, who owns the clone
DEFAULT_PORT = 8080
# Services that run once and exit 0; every other service of the compose file must become healthy.
ONE_SHOT = ("airflow-init",)
# Stacks that are up right now: the failure hook prints their state and logs.
ACTIVE_STACKS: list[Stack] = []


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Engine:
    """The container engine of ../shared/containers and the client environment its env.sh sets."""

    env: dict[str, str]
    started_here: bool = False

    @classmethod
    def start(cls) -> Engine:
        """Source env.sh; start the engine unless it runs; build the stand-in images (idempotent)."""
        env_sh = SHARED_CONTAINERS / "env.sh"
        assert env_sh.is_file(), f"{env_sh} is missing: the container tests need ../shared/containers"
        dump = subprocess.run(
            ["bash", "-c", f'source "{env_sh}" && env -0'], capture_output=True, check=True, timeout=30
        ).stdout.decode()
        env = dict(line.split("=", 1) for line in dump.split("\0") if "=" in line)
        engine = cls(env)
        if engine.docker("info", check=False).returncode != 0:
            engine.started_here = True
            engine.script("engine-up", timeout=600)
        engine.script("standin-images", timeout=900)
        return engine

    def stop(self) -> None:
        """Stop the engine, only if this session started it."""
        if self.started_here:
            self.script("engine-down", timeout=120)

    def script(self, name: str, timeout: float) -> None:
        """Run one of ../shared/containers' scripts; fail with its output."""
        result = subprocess.run(
            [str(SHARED_CONTAINERS / name)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"{name} failed:\n{_tail(result.stdout + result.stderr)}"

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """``docker ARGS`` as root (inspection and clean-up only; the user drives the stacks)."""
        result = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check:
            assert result.returncode == 0, f"docker {' '.join(args)} failed:\n{_tail(result.stderr)}"
        return result

    @property
    def socket_path(self) -> Path:
        """The engine's Unix socket."""
        return Path(self.env["DOCKER_HOST"].removeprefix("unix://"))


@dataclass
class DesktopUser:
    """An ordinary user (UID 1000) who may use the engine, as in the ``docker`` group of a desktop.

    The machines run as root, and the Dev Containers CLI gives the editor user the caller's UID only when
    the caller is not root; running as this user is what makes the test match a Linux desktop.
    """

    uid: int
    gid: int
    home: Path
    docker_config: Path
    tmpdir: Path
    # The socket's group, given to the user's processes as a supplementary group: what membership of the
    # `docker` group does on a desktop, without changing the shared engine's socket.
    socket_gid: int = 0

    @classmethod
    def create(cls, engine: Engine, base: Path) -> DesktopUser:
        """The user with UID 1000 (made if missing), its own HOME, DOCKER_CONFIG and TMPDIR under ``base``."""
        if os.geteuid() != 0:  # a developer's own machine: they are the desktop user already
            uid, gid = os.getuid(), os.getgid()
        else:
            try:
                entry = pwd.getpwuid(DESKTOP_UID)
            except KeyError:
                subprocess.run(
                    [
                        "useradd",
                        "--uid",
                        str(DESKTOP_UID),
                        "--user-group",
                        "--no-create-home",
                        "localflow-dev",
                    ],
                    check=True,
                    timeout=30,
                )
                entry = pwd.getpwuid(DESKTOP_UID)
            uid, gid = entry.pw_uid, entry.pw_gid
        user = cls(uid, gid, base / "home", base / "docker-config", base / "tmp")
        plugins = user.docker_config / "cli-plugins"
        plugins.mkdir(parents=True)
        user.home.mkdir()
        user.tmpdir.mkdir()
        # Buildx keeps its state in DOCKER_CONFIG, and root's copy is not readable: the user gets its own.
        for plugin in (Path(engine.env["DOCKER_CONFIG"]) / "cli-plugins").iterdir():
            shutil.copy2(plugin, plugins / plugin.name)
        user.socket_gid = engine.socket_path.stat().st_gid
        if os.geteuid() == 0:
            user.give(base)
        return user

    def give(self, path: Path) -> None:
        """Make ``path`` (recursively) the user's, as a clone in their home is."""
        for root, directories, files in os.walk(path):
            os.chown(root, self.uid, self.gid)
            for name in directories + files:
                os.lchown(Path(root) / name, self.uid, self.gid)

    def environment(self, engine: Engine) -> dict[str, str]:
        """The user's shell environment: the engine's client settings, nothing of the test process."""
        return {
            "PATH": engine.env["PATH"],
            "DOCKER_HOST": engine.env["DOCKER_HOST"],
            "DOCKER_CONFIG": str(self.docker_config),
            "HOME": str(self.home),
            "TMPDIR": str(self.tmpdir),
            "LANG": "C.UTF-8",
        }


def fresh_copy(destination: Path) -> Path:
    """The repository's tracked files as a fresh clone has them: no .env, no venv, no state."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True, timeout=30
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not part of the copy
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    assert not (destination / ".env").exists()
    return destination


def api_port() -> int:
    """8080, the default, when it is free on 127.0.0.1; otherwise a free port (the machine is shared)."""
    for port in (DEFAULT_PORT, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise AssertionError("no free port on 127.0.0.1")


@dataclass
class Stack:
    """One compose project on a fresh copy, driven as the desktop user."""

    engine: Engine
    user: DesktopUser
    workspace: Path
    project: str
    port: int
    up_output: str = ""
    created_images: set[str] = field(default_factory=set)
    extra_env: dict[str, str] = field(default_factory=dict)  # more of the user's shell, e.g. a Codespace's

    @property
    def image(self) -> str:
        """The tag this project's Airflow image is built under (removed at teardown)."""
        return f"localflow-airflow:{self.project}"

    # --- running things as the user -------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The user's environment for this project (a port other than 8080 only if 8080 is taken)."""
        env = {
            **self.user.environment(self.engine),
            "COMPOSE_PROJECT_NAME": self.project,
            # Its own image tag: other people's builds on a shared engine cannot swap it under the test.
            "LOCALFLOW_IMAGE": self.image,
        }
        if self.port != DEFAULT_PORT:
            env["AIRFLOW__API__PORT"] = str(self.port)
        return env | self.extra_env

    def run(self, *command: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``command`` as the user in the workspace; fail with its output unless it succeeds."""
        as_user = {}
        if os.geteuid() == 0:
            as_user = {"user": self.user.uid, "group": self.user.gid, "extra_groups": [self.user.socket_gid]}
        try:
            result = subprocess.run(
                command,
                cwd=self.workspace,
                env=self.environment(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                **as_user,
            )
        except subprocess.TimeoutExpired as error:
            output = (error.stdout or b"").decode(errors="replace") + (error.stderr or b"").decode(
                errors="replace"
            )
            raise AssertionError(
                f"`{' '.join(command)}` did not finish in {timeout} s:\n{_tail(output)}"
            ) from None
        if check:
            assert result.returncode == 0, (
                f"`{' '.join(command)}` exited {result.returncode}:\n{_tail(result.stdout + result.stderr)}"
            )
        return result

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """``docker compose ARGS`` in the workspace, as the user types it."""
        return self.run("docker", "compose", *args, timeout=timeout, check=check)

    def devcontainer(self, command: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """``devcontainer COMMAND --workspace-folder WORKSPACE ARGS`` (the CLI VS Code is built on)."""
        try:
            return self.run(
                "devcontainer", command, "--workspace-folder", str(self.workspace), *args, timeout=timeout
            )
        finally:
            self._remember_images()  # also when the command failed after building the derived image

    def exec(
        self, *command: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True
    ):
        """Run ``command`` in the editor container, as its terminal does (``devcontainer exec``)."""
        remote_env = [f"--remote-env={name}={value}" for name, value in (env or {}).items()]
        return self.run(
            "devcontainer",
            "exec",
            "--workspace-folder",
            str(self.workspace),
            *remote_env,
            *command,
            timeout=timeout,
            check=check,
        )

    # --- state ----------------------------------------------------------------------------------------

    def services(self) -> dict[str, dict]:
        """``docker compose ps -a`` by service: State, Health, ExitCode, Publishers."""
        output = self.compose("ps", "--all", "--format", "json", timeout=60).stdout
        rows = [json.loads(line) for line in output.splitlines() if line.strip()]
        rows = [row for item in rows for row in (item if isinstance(item, list) else [item])]
        return {row["Service"]: row for row in rows}

    def service_names(self) -> list[str]:
        """The services of the compose file, as compose resolves it."""
        return self.compose("config", "--services", timeout=60).stdout.split()

    def problems(self) -> list[str]:
        """What keeps the stack from being healthy; empty when it is."""
        services = self.services()
        problems = []
        for name in self.service_names():
            row = services.get(name) or {}
            if name in ONE_SHOT:
                if row.get("State") != "exited" or row.get("ExitCode") != 0:
                    problems.append(f"{name}: {row.get('State')} exit {row.get('ExitCode')}")
            elif row.get("State") != "running" or row.get("Health") != "healthy":
                problems.append(f"{name}: {row.get('State')} {row.get('Health')}")
        return problems

    def wait_healthy(self, timeout: float = 300) -> None:
        """Wait until every long-running service is healthy and airflow-init exited 0."""
        problems: list[str] = []

        def healthy() -> bool:
            problems[:] = self.problems()
            return not problems

        wait_until(healthy, timeout, interval=3, what=lambda: f"{self.project} healthy (still {problems})")

    def containers(self) -> list[dict]:
        """``docker inspect`` of every container of the project (root: inspection only)."""
        ids = self.engine.docker(
            "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={self.project}"
        ).stdout.split()
        return json.loads(self.engine.docker("inspect", *ids).stdout) if ids else []

    def published_ports(self) -> dict[str, list[tuple[str, str, str]]]:
        """Per service, every (container port, host address, host port) the engine publishes."""
        published: dict[str, list[tuple[str, str, str]]] = {}
        for container in self.containers():
            service = container["Config"]["Labels"]["com.docker.compose.service"]
            for port, bindings in (container["HostConfig"]["PortBindings"] or {}).items():
                for binding in bindings or []:
                    published.setdefault(service, []).append((port, binding["HostIp"], binding["HostPort"]))
        return published

    def _remember_images(self) -> None:
        # The Dev Containers CLI derives a per-workspace image (vsc-...-uid); it is removed at teardown.
        for container in self.containers():
            if container["Config"]["Image"].startswith("vsc-"):
                self.created_images.add(container["Config"]["Image"])

    def env_file(self) -> bytes:
        """The workspace's .env, byte for byte."""
        return (self.workspace / ".env").read_bytes()

    def secret_values(self) -> dict[str, str]:
        """The generated secrets in .env, validated by the secrets hook's own rules."""
        values = store.load(self.workspace)
        return {secret.name: values[secret.name] for secret in rules.SECRETS}

    def diagnostics(self, lines: int = 40) -> str:
        """Each service's state, its last healthcheck output and its last log lines."""
        parts = [self.compose("ps", "--all", timeout=60, check=False).stdout]
        for container in self.containers():
            checks = (container["State"].get("Health") or {}).get("Log") or [{}]
            parts.append(f"{container['Name']}: last healthcheck: {checks[-1].get('Output', '-')!r}")
        for name in self.compose("config", "--services", timeout=60, check=False).stdout.split():
            logs = self.compose("logs", "--no-color", "--tail", str(lines), name, timeout=60, check=False)
            parts.append(f"--- {name} (last {lines} lines) ---\n{logs.stdout}{logs.stderr}")
        return "\n".join(parts)

    def down(self) -> None:
        """``docker compose down -v``: containers, network and the database volume; then derived images."""
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=180, check=False)
        for image in (*self.created_images, self.image):
            self.engine.docker("image", "rm", "--force", image, check=False)

    # --- the REST API on the published port -----------------------------------------------------------

    @cached_property
    def api(self) -> rest.AirflowClient:
        """The stack's one REST client: ``http://127.0.0.1:PORT`` as admin, with the password in .env."""
        return rest.AirflowClient(f"http://127.0.0.1:{self.port}", password=self.admin_password, timeout=60)

    def admin_password(self) -> str:
        """The admin password airflow-init generated into .env (read again at each login)."""
        return parse(self.env_file().decode(), ".env")[rules.ADMIN_PASSWORD]

    def request(self, method: str, path: str, payload: dict | None = None) -> tuple[int, dict]:
        """One authenticated call to ``http://127.0.0.1:PORT``; returns (status, parsed JSON body)."""
        return self.api.request(method, path, payload)

    def token(self) -> str:
        """Log in as admin with the password in .env, now (a fresh token, which later calls use)."""
        return self.api.login()

    def wait_for_dags(self, dag_ids: tuple[str, ...], timeout: float = 180) -> None:
        """Wait until the dag-processor has serialized every one of ``dag_ids``."""
        self.api.wait_for_dags(dag_ids, timeout)

    def run_dag(self, dag_id: str) -> dict:
        """Unpause ``dag_id``, trigger a run through the REST API and wait until it finished; return it."""
        return self.wait_for_run(dag_id, self.api.trigger(dag_id))

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240) -> dict:
        """Poll a DAG run until it finishes; return it. A timeout says what the run looks like then."""
        try:
            return self.api.wait_for_run(dag_id, run_id, timeout, interval=2)
        except WaitTimeout as error:
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            raise WaitTimeout(f"{error}; the run now: {status} {body}") from None


def make_base() -> Path:
    """A private directory for one session's copies and the user's files, traversable by the user."""
    base = Path(tempfile.mkdtemp(prefix="localflow-containers-"))
    base.chmod(0o755)
    return base


@contextmanager
def stack_on_fresh_copy(
    engine: Engine, user: DesktopUser, base: Path, name: str, **extra_env: str
) -> Iterator[Stack]:
    """A fresh copy owned by the user and its compose project; ``down -v`` whatever happens.

    ``extra_env``: more variables of the user's shell (e.g. a Codespace's)."""
    copy = base / name / "localflow"
    copy.mkdir(parents=True)
    fresh_copy(copy)
    user.give(base / name)
    stack = Stack(engine, user, copy, f"localflow-ct-{name}", api_port(), extra_env=extra_env)
    stack.down()  # what an interrupted earlier run may have left under the same project name
    ACTIVE_STACKS.append(stack)
    try:
        yield stack
    except BaseException:
        # Bringing the stack up failed (the tests' own failures are reported by the conftest hook).
        print(f"stack {stack.project}: services and logs\n{stack.diagnostics()}")
        raise
    finally:
        ACTIVE_STACKS.remove(stack)
        stack.down()
