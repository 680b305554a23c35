"""The local host's processes, ports and files, as the infrastructure's components use them."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import socket
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

HOST = "127.0.0.1"
Progress = Callable[[str], None]


class InfraError(RuntimeError):
    """A component could not be provisioned, started, stopped or reached."""


# Popen objects of children started by this interpreter: polling them reaps zombies and keeps
# Popen.__del__ from warning about a still running process.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def pid_alive(pid: int) -> bool:
    child = CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(pid, 0); its /proc state tells it apart.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def command_line(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # Empty while the Java launcher re-execs itself: unknown, not foreign.
    return raw.replace(b"\0", b" ").decode(errors="replace") or None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the servers use, so a port in TIME_WAIT after a restart counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(exclude: Sequence[int] = ()) -> int:
    """An unused TCP port on 127.0.0.1 (for tests and the controller listener)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in exclude:
            return port


@contextlib.contextmanager
def flock(path: Path) -> Iterator[None]:
    """Exclusive lock across processes (two `up`s, or pytest and a shell, at the same time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def digest(*files: Path) -> str:
    sha = hashlib.sha256()
    for file in files:
        sha.update(file.name.encode())
        sha.update(file.read_bytes())
    return sha.hexdigest()[:12]


def serialized(progress: Progress) -> Progress:
    lock = threading.Lock()

    def say(message: str) -> None:
        with lock:
            progress(message)

    return say


def read_tail(path: Path, lines: int = 40, offset: int = 0) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return "(no log)"
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def run_streaming(cmd: list[str], *, cwd: Path, progress: Progress, prefix: str, log_path: Path) -> None:
    """Run a build step, passing each output line to progress and to a log file."""
    progress(f"{prefix}$ {shlex.join(cmd)}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=40)
    with (
        log_path.open("a") as log,
        subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            tail.append(line)
            log.write(line + "\n")
            progress(f"{prefix}  {line}")
        code = proc.wait()
    if code != 0:
        out = "\n".join(tail)
        raise InfraError(f"`{shlex.join(cmd)}` failed with exit code {code}; last output:\n{out}\n(log: {log_path})")


def which(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise InfraError(f"`{tool}` not found on PATH: {hint}")
    return found
