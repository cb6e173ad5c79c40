"""A throwaway PostgreSQL server for the tests: Debian's postgresql-15 binaries, run as the `postgres` user (the
server refuses root), listening on the given addresses on a free port, its data in a temp folder removed after."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"


def skip_reason() -> str | None:
    """Why a server cannot be started here, or None."""
    if not (BIN / "initdb").is_file():
        return f"no PostgreSQL server binaries in {BIN} (Debian's postgresql-15)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            return f"running as root and no {USER} user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and no runuser to start the server as postgres"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "no PostgreSQL driver (psycopg): pip install -e '.[test]'"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", USER, "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def postgres_server(addresses: tuple[str, ...] = ("127.0.0.1",), trusted: str | None = None) -> Iterator[int]:
    """Start a server listening on `addresses` (and `trusted`, a CIDR allowed to connect) and yield its port."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="pseudo-kd-pg-"))
    folder.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, USER, USER)
    data, port = folder / "data", free_port()
    run = {"check": True, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    try:
        subprocess.run(
            _as_server_user([str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
            **run,
        )
        if trusted:
            with open(data / "pg_hba.conf", "a", encoding="utf-8") as hba:
                hba.write(f"host all all {trusted} trust\n")
        options = f"-h {','.join(addresses)} -p {port} -k {folder} -F"
        start = [str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start"]
        subprocess.run(_as_server_user(start), **run)
        try:
            yield port
        finally:
            stop = [str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(_as_server_user(stop), check=False, capture_output=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def create_database(port: int, name: str, host: str = "127.0.0.1") -> str:
    """A new empty database on the server; returns its URL in the documented form."""
    import psycopg

    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@{host}:{port}/{name}"
