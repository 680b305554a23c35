"""The browser libraries the desk pages load (htmx), fetched from the npm registry once and served locally.

District networks reach no CDN, so the desk API serves these files itself (DESK_ASSETS_DIR). The package is
pinned by version and by the registry's `dist.integrity` (sha512): a tarball that differs from the one
reviewed is refused. Only the files named here are taken out of the tarball, into the shared cache
(TRIAGE_CACHE_DIR/npm/<name>-<version>, written once: tmp dir, rename, `.complete` marker), and copied from
there to the served dir under stable names, so the pages never name a version. Nothing here is committed.

Run as `triage assets [--out DIR]`, or `python -m tools.infra.assets --out DIR` in the image's build stage
(which has tools/infra but not the `triage` command).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools import paths
from tools.infra.component import default_cache_dir
from tools.infra.host import InfraError, Progress, flock

REGISTRY = "https://registry.npmjs.org"
Download = Callable[[str], bytes]


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity: "sha512-" + base64 of the tarball's SHA-512
    files: dict[str, str]  # path in the tarball -> file name in the served dir

    def tarball_url(self, registry: str = REGISTRY) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.name}-{self.version}.tgz"


# The newest 2.0.x on the registry when pinned; to move on, take version and dist.integrity from
# https://registry.npmjs.org/htmx.org and read the release notes.
HTMX = NpmPackage(
    name="htmx.org",
    version="2.0.11",
    integrity="sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
    files={"package/dist/htmx.min.js": "htmx.min.js", "package/LICENSE": "LICENSE-htmx"},
)
PACKAGES: tuple[NpmPackage, ...] = (HTMX,)


def default_out_dir() -> Path:
    return paths.ASSETS_DIR


def _urlopen(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "grievance-triage-tools"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        data: bytes = reply.read()
    return data


def check_integrity(data: bytes, integrity: str, what: str) -> None:
    """Refuse data whose SHA-512 is not the pinned one (npm's Subresource Integrity form)."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512" or not expected:
        raise InfraError(f"{what}: pinned integrity {integrity!r} is not of the form sha512-<base64>")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if not hmac.compare_digest(actual, expected):
        raise InfraError(
            f"{what}: integrity mismatch, refused: pinned sha512-{expected}, downloaded sha512-{actual} "
            f"({len(data)} bytes); the registry served another tarball than the one pinned in {__name__}"
        )


def _extract(data: bytes, package: NpmPackage, into: Path) -> None:
    """Write the pinned files only, by name: nothing else of the tarball (no paths of its choosing) lands."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member_name in package.files:
            try:
                member = archive.getmember(member_name)
            except KeyError:
                raise InfraError(f"{package.name} {package.version}: the tarball has no {member_name}") from None
            source = archive.extractfile(member) if member.isfile() else None
            if source is None:
                raise InfraError(f"{package.name} {package.version}: {member_name} is not a regular file")
            target = into / member_name.removeprefix("package/")
            target.parent.mkdir(parents=True, exist_ok=True)
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out)


def cached(
    package: NpmPackage,
    cache_dir: Path | None = None,
    *,
    registry: str = REGISTRY,
    download: Download = _urlopen,
    progress: Progress = print,
) -> Path:
    """The package's pinned files in the cache, downloaded, verified and extracted on first use."""
    cache = (cache_dir or default_cache_dir()) / "npm"
    home = cache / f"{package.name}-{package.version}"
    complete = home / ".complete"
    if _marked(complete, package):
        progress(f"assets: {package.name} {package.version} cached in {home}")
        return home
    with flock(cache / f"{package.name}-{package.version}.lock"):
        if not _marked(complete, package):  # another process may have finished while we waited
            _fill(package, home, registry, download, progress)
    return home


def _marked(complete: Path, package: NpmPackage) -> bool:
    try:
        return complete.read_text().strip() == package.integrity
    except OSError:
        return False


def _fill(package: NpmPackage, home: Path, registry: str, download: Download, progress: Progress) -> None:
    started = time.monotonic()
    url = package.tarball_url(registry)
    progress(f"assets: downloading {url} (once; cached in {home.parent})")
    try:
        data = download(url)
    except (urllib.error.URLError, OSError) as exc:
        raise InfraError(
            f"assets: could not download {url}: {exc}; this machine needs to reach the npm registry once, "
            f"or be given a copy of a filled {home} from one that did"
        ) from exc
    check_integrity(data, package.integrity, f"{package.name} {package.version}")
    progress(f"assets: {len(data) // 1024} KiB, {package.integrity[:20]}... verified")
    tmp = home.with_name(f"{home.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _extract(data, package, tmp)
        (tmp / ".complete").write_text(f"{package.integrity}\n")
        shutil.rmtree(home, ignore_errors=True)  # leftovers of a run that died before the marker
        tmp.rename(home)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    progress(f"assets: {package.name} {package.version} ready in {home} in {time.monotonic() - started:.1f}s")


def _place(source: Path, target: Path) -> bool:
    """Copy source to target atomically unless target already holds the same bytes; whether it copied."""
    if target.is_file() and target.read_bytes() == source.read_bytes():
        return False
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return True


def serve(
    out_dir: Path | None = None,
    cache_dir: Path | None = None,
    *,
    packages: Sequence[NpmPackage] = PACKAGES,
    registry: str = REGISTRY,
    download: Download = _urlopen,
    progress: Progress = print,
) -> Path:
    """The served dir (default .triage/assets) holding every package's files under their stable names."""
    out = (out_dir or default_out_dir()).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    copied: list[str] = []
    for package in packages:
        home = cached(package, cache_dir, registry=registry, download=download, progress=progress)
        for member_name, served_name in package.files.items():
            if _place(home / member_name.removeprefix("package/"), out / served_name):
                copied.append(served_name)
    names = ", ".join(n for p in packages for n in p.files.values())
    progress(f"assets: {names} {'copied' if copied else 'up to date'} in {out}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triage assets", description="fetch the desk pages' browser libraries "
                                     "from the npm registry once, and copy them to the served dir")
    parser.add_argument("--out", type=Path, default=None, help=f"the served dir (default {default_out_dir()})")
    args = parser.parse_args(argv)
    try:
        out = serve(args.out)
    except InfraError as exc:
        print(f"triage: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
