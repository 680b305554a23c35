"""tools/infra/assets.py without the network: a fake npm tarball, served from a file:// registry or handed over
by a stand-in download, is verified against its pinned integrity, cached once and copied to the served dir."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from tools.infra.assets import HTMX, NpmPackage, check_integrity, serve
from tools.infra.host import InfraError

SCRIPT = b"var htmx=function(){return {version:'2.0.fake'}}();\n"
LICENSE = b"Zero-Clause BSD\n"


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


FAKE = tarball({"package/dist/htmx.min.js": SCRIPT, "package/LICENSE": LICENSE, "package/README.md": b"readme"})


def fake_package(pinned: str = integrity(FAKE)) -> NpmPackage:
    return NpmPackage("htmx.org", "2.0.99", pinned, dict(HTMX.files))


class Registry:
    """A download that counts its calls and serves the fake tarball at the pinned URL only."""

    def __init__(self, data: bytes = FAKE) -> None:
        self.data = data
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        assert url == "https://registry.npmjs.org/htmx.org/-/htmx.org-2.0.99.tgz"
        return self.data


def test_the_pinned_htmx_is_a_2_0_release_with_a_sha512_integrity() -> None:
    assert HTMX.version.startswith("2.0.")
    assert HTMX.integrity.startswith("sha512-") and len(base64.b64decode(HTMX.integrity[7:])) == 64
    assert HTMX.tarball_url() == f"https://registry.npmjs.org/htmx.org/-/htmx.org-{HTMX.version}.tgz"
    assert set(HTMX.files.values()) == {"htmx.min.js", "LICENSE-htmx"}


def test_the_files_land_in_the_cache_and_the_served_dir_and_the_second_run_downloads_nothing(tmp_path: Path) -> None:
    registry = Registry()
    said: list[str] = []
    out = serve(tmp_path / "served", tmp_path / "cache", packages=[fake_package()], download=registry,
                progress=said.append)
    assert out == tmp_path / "served"
    assert (out / "htmx.min.js").read_bytes() == SCRIPT and (out / "LICENSE-htmx").read_bytes() == LICENSE
    assert sorted(p.name for p in out.iterdir()) == ["LICENSE-htmx", "htmx.min.js"]
    home = tmp_path / "cache" / "npm" / "htmx.org-2.0.99"
    assert (home / "dist" / "htmx.min.js").is_file() and (home / ".complete").read_text().strip() == integrity(FAKE)
    assert not (home / "README.md").exists(), "only the pinned files are taken out of the tarball"
    assert [line for line in said if line.startswith("assets: downloading")] and len(registry.urls) == 1

    said.clear()
    serve(out, tmp_path / "cache", packages=[fake_package()], download=registry, progress=said.append)
    assert len(registry.urls) == 1, "the second run used the cache"
    assert said == [f"assets: htmx.org 2.0.99 cached in {home}",
                    f"assets: htmx.min.js, LICENSE-htmx up to date in {out}"]


def test_a_served_file_that_differs_from_the_cache_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "served"
    out.mkdir()
    (out / "htmx.min.js").write_bytes(b"stale")
    serve(out, tmp_path / "cache", packages=[fake_package()], download=Registry(), progress=lambda _m: None)
    assert (out / "htmx.min.js").read_bytes() == SCRIPT


def test_a_tarball_that_is_not_the_pinned_one_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    other = tarball({"package/dist/htmx.min.js": b"alert('not htmx')", "package/LICENSE": LICENSE})
    with pytest.raises(InfraError, match="integrity mismatch, refused"):
        serve(tmp_path / "served", tmp_path / "cache", packages=[fake_package()], download=Registry(other),
              progress=lambda _m: None)
    assert not (tmp_path / "served" / "htmx.min.js").exists()
    assert not (tmp_path / "cache" / "npm" / "htmx.org-2.0.99").exists()
    assert [p.name for p in (tmp_path / "cache" / "npm").iterdir()] == ["htmx.org-2.0.99.lock"]


def test_a_cache_marked_for_another_integrity_is_fetched_again(tmp_path: Path) -> None:
    home = tmp_path / "cache" / "npm" / "htmx.org-2.0.99"
    (home / "dist").mkdir(parents=True)
    (home / "dist" / "htmx.min.js").write_bytes(b"old")
    (home / ".complete").write_text("sha512-somethingelse\n")
    registry = Registry()
    serve(tmp_path / "served", tmp_path / "cache", packages=[fake_package()], download=registry,
          progress=lambda _m: None)
    assert len(registry.urls) == 1 and (home / "dist" / "htmx.min.js").read_bytes() == SCRIPT


def test_a_tarball_without_a_pinned_file_is_refused(tmp_path: Path) -> None:
    bare = tarball({"package/LICENSE": LICENSE})
    with pytest.raises(InfraError, match=r"has no package/dist/htmx\.min\.js"):
        serve(tmp_path / "served", tmp_path / "cache", packages=[fake_package(integrity(bare))],
              download=Registry(bare), progress=lambda _m: None)


def test_the_real_download_path_reads_a_local_registry(tmp_path: Path) -> None:
    """urllib, as against registry.npmjs.org, but from a file:// registry laid out like npm's."""
    (tmp_path / "registry" / "htmx.org" / "-").mkdir(parents=True)
    (tmp_path / "registry" / "htmx.org" / "-" / "htmx.org-2.0.99.tgz").write_bytes(FAKE)
    out = serve(tmp_path / "served", tmp_path / "cache", packages=[fake_package()],
                registry=(tmp_path / "registry").as_uri(), progress=lambda _m: None)
    assert (out / "htmx.min.js").read_bytes() == SCRIPT


def test_an_unreachable_registry_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="needs to reach the npm registry once"):
        serve(tmp_path / "served", tmp_path / "cache", packages=[fake_package()],
              registry=(tmp_path / "nowhere").as_uri(), progress=lambda _m: None)


def test_check_integrity_accepts_the_pinned_bytes_only() -> None:
    check_integrity(FAKE, integrity(FAKE), "fake")
    with pytest.raises(InfraError, match="mismatch"):
        check_integrity(FAKE + b"\0", integrity(FAKE), "fake")
    with pytest.raises(InfraError, match="not of the form"):
        check_integrity(FAKE, "sha1-" + integrity(FAKE)[7:], "fake")
