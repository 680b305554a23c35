"""FerretDB v1.24.2 (the MongoDB wire protocol over SQLite), built from the Go module in deploy/ferretdb."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tools import paths
from tools.infra.component import DEFAULT_MONGO_PORT, LocalComponent
from tools.infra.host import HOST, digest, flock, run_streaming, which

FERRETDB_MODULE = paths.DEPLOY_DIR / "ferretdb"


class LocalFerretDB(LocalComponent):
    """FerretDB over SQLite, built from deploy/ferretdb (its Go files, go.mod, go.sum)."""

    name = "ferretdb"
    server = "ferretdb"
    port_env = "TRIAGE_MONGO_PORT"
    external_env = "MONGODB_URI"
    default_port = DEFAULT_MONGO_PORT

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "ferretdb-data"

    @property
    def endpoint(self) -> str:
        return f"mongodb://{HOST}:{self.port}/"

    @property
    def binary(self) -> Path:
        sources = [*sorted(FERRETDB_MODULE.glob("*.go")), FERRETDB_MODULE / "go.mod", FERRETDB_MODULE / "go.sum"]
        return self.cache_dir / f"ferretdb-{digest(*sources)}" / "ferretdb"

    def _marker(self) -> str:
        return str(self.state_dir / "ferretdb-data")

    def provision(self) -> None:
        if self._provisioned:
            return
        binary = self.binary
        if binary.is_file():
            self.progress(f"ferretdb: binary cached at {binary}")
        else:
            go = which(
                "go",
                "the Go toolchain builds FerretDB from deploy/ferretdb (https://go.dev/dl/), "
                "or set MONGODB_URI to use an existing MongoDB",
            )
            with flock(self.cache_dir / "ferretdb.lock"):
                if not binary.is_file():
                    self._build(go, binary)
        self._provisioned = True

    def _build(self, go: str, binary: Path) -> None:
        started = time.monotonic()
        binary.parent.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_name(f"ferretdb.tmp-{os.getpid()}")
        self.progress(
            "ferretdb: building from deploy/ferretdb (once per source change; a cold Go cache "
            "takes a few minutes, mostly the pure-Go SQLite)"
        )
        # -mod=readonly: the committed go.sum must be complete; the build never edits it.
        run_streaming(
            [go, "build", "-mod=readonly", "-v", "-ldflags=-s -w", "-o", str(tmp), "."],
            cwd=FERRETDB_MODULE,
            progress=self.progress,
            prefix="ferretdb/go",
            log_path=self.log_dir / "provision-ferretdb.log",
        )
        tmp.replace(binary)
        self.progress(f"ferretdb: built {binary} in {time.monotonic() - started:.1f}s")

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        return [str(self.binary), "-listen", f"{HOST}:{self.port}", "-data", str(self.data_dir)]
