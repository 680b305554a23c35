"""Just enough of a Dockerfile and its .dockerignore to lay out, without Docker, what each stage holds.

Stages, their WORKDIR, ENV, COPY and RUN instructions; COPY sources from the build context filtered by the
.dockerignore as BuildKit filters them (last matching pattern wins, `!` re-includes, a pattern that matches
a directory matches everything under it), or from an earlier stage's laid-out directory.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


@dataclass
class Stage:
    name: str
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    steps: list[tuple[str, str]] = field(default_factory=list)  # (COPY|RUN, arguments) in order


def parse_dockerfile(path: Path) -> list[Stage]:
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            words = args.split()
            stages.append(Stage(words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(stages))))
        elif instruction == "WORKDIR":
            stages[-1].workdir = args
        elif instruction == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                stages[-1].env[key] = value
        elif instruction in ("COPY", "RUN"):
            stages[-1].steps.append((instruction, args))
    return stages


class DockerIgnore:
    def __init__(self, path: Path) -> None:
        self.patterns: list[tuple[bool, str, re.Pattern[str]]] = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            self.patterns.append((keep, pattern, re.compile(_regex(pattern))))

    def excluded(self, relative: str) -> bool:
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        out = False
        for keep, _, rx in self.patterns:
            if any(rx.fullmatch(p) for p in prefixes):
                out = not keep
        return out

    def may_hold_kept(self, directory: str) -> bool:
        """Whether a re-include pattern could match something under an excluded `directory`."""
        for keep, pattern, _ in self.patterns:
            literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
            if keep and (literal.startswith(directory + "/") or (directory + "/").startswith(literal)):
                return True
        return False

    def context(self, root: Path) -> list[str]:
        """The context's files, relative to `root`, as BuildKit would send them."""
        kept: list[str] = []
        for here, dirs, files in os.walk(root):
            rel = Path(here).relative_to(root).as_posix()
            rel = "" if rel == "." else rel + "/"
            dirs[:] = [d for d in dirs if not self.excluded(rel + d) or self.may_hold_kept(rel + d)]
            kept += [rel + f for f in files if not self.excluded(rel + f)]
        return sorted(kept)


def _regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def copy_step(args: str, context: Path, files: list[str], stages: dict[str, tuple[Path, str]], into: Path) -> None:
    """One COPY of a stage laid out in `into` (its WORKDIR): from the filtered context, or from an earlier
    stage in `stages` (name -> its laid-out directory and the WORKDIR that directory stands for)."""
    words = shlex.split(args)
    source_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
    *sources, dest = [w for w in words if not w.startswith("--")]
    to_dir = dest.endswith("/") or dest == "." or len(sources) > 1
    target = into / dest
    for source in sources:
        if source_stage is not None:
            stage_dir, workdir = stages[source_stage]
            origin = stage_dir / PurePosixPath(source).relative_to(workdir)
            assert origin.exists(), f"COPY --from={source_stage} {source}: the stage did not make it"
            if origin.is_dir():
                shutil.copytree(origin, target, dirs_exist_ok=True)
            else:
                _copy_file(origin, target, to_dir)
            continue
        prefix = source.rstrip("/").removeprefix("./")
        chosen = [f for f in files if f == prefix or f.startswith(prefix + "/")]
        assert chosen, f"COPY {source}: nothing of it is in the build context"
        for f in chosen:
            if f == prefix:
                _copy_file(context / f, target, to_dir)
            else:
                _copy_file(context / f, target / f[len(prefix) + 1 :], False)


def _copy_file(origin: Path, target: Path, to_dir: bool) -> None:
    if to_dir:
        target = target / origin.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(origin, target)
