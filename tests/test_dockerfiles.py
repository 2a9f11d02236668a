"""Dockerfile.jetson and Dockerfile: lint (hadolint) and the invariants the images promise.

Docker itself is not available where the tests run, so the images are never built here; instead the Dockerfiles are
parsed and checked: a pinned base image, nothing torch, no pip OpenCV on the Jetson, a non-root user, the entrypoint,
the engine-cache volume, pip pins in step with pyproject.toml, and a build-time check that really fails the build
when torch is importable or ``edgeaff doctor`` fails (that shell snippet is executed with stand-in tools).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from edgeaff.doctor.report import CHECK_NAMES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
JETSON = REPO / "Dockerfile.jetson"
DESKTOP = REPO / "Dockerfile"
SEPARATORS = {"&&", "||", ";", "|", "(", ")", "then", "else", "fi", "do", "done", "{", "}"}
VALUE_OPTIONS = {"--extra-index-url", "--index-url", "-i", "-c", "--constraint", "-r", "--requirement", "--wheel-dir"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(path: Path) -> list[Instruction]:
    """Dockerfile instructions with line continuations joined and comment lines dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = pending + line
        pending = ""
        keyword, _, args = logical.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, f"{path.name} ends inside a line continuation"
    return instructions


def args_of(instructions: list[Instruction], keyword: str) -> list[str]:
    return [i.args for i in instructions if i.keyword == keyword]


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    defaults = {}
    for args in args_of(instructions, "ARG"):
        name, _, value = args.partition("=")
        defaults[name] = value.strip('"')
    return defaults


def shell_words(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars="();|&")
    lexer.whitespace_split = True
    return list(lexer)


def installs(command: str, tool: tuple[str, ...]) -> list[list[str]]:
    """Each ``<tool> install ...`` in a shell command, as its word list up to the next separator."""
    words = shell_words(command)
    found = []
    for i in range(len(words) - len(tool)):
        if tuple(words[i : i + len(tool)]) == tool and words[i + len(tool)] == "install":
            end = next((j for j in range(i, len(words)) if words[j] in SEPARATORS), len(words))
            found.append(words[i + len(tool) + 1 : end])
    return found


def packages(install_words: list[str]) -> list[str]:
    """The package arguments of one install command (options and their values dropped)."""
    result, skip = [], False
    for word in install_words:
        if skip:
            skip = False
        elif word in VALUE_OPTIONS:
            skip = True
        elif not word.startswith("-"):
            result.append(word)
    return result


def pip_installs(instructions: list[Instruction]) -> list[list[str]]:
    return [words for run in args_of(instructions, "RUN") for words in installs(run, ("pip",))]


def all_installed(instructions: list[Instruction]) -> list[str]:
    names = []
    for run in args_of(instructions, "RUN"):
        for tool in (("pip",), ("apt-get",)):
            names += [p for words in installs(run, tool) for p in packages(words)]
    return names


# --- lint -------------------------------------------------------------------------------------------------------


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", [JETSON, DESKTOP], ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    executable = hadolint()
    if executable is None:
        pytest.skip("hadolint is not installed (it comes with the dev extra: pip install -e '.[dev]')")
    result = subprocess.run([executable, "--no-color", str(dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is real: an unpinned base and a root user are reported."""
    executable = hadolint()
    if executable is None:
        pytest.skip("hadolint is not installed")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run([executable, "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "DL3007" in result.stdout  # "Using latest is prone to errors"


# --- Dockerfile.jetson invariants ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jetson() -> list[Instruction]:
    return parse(JETSON)


def base_image(instructions: list[Instruction]) -> str:
    froms = args_of(instructions, "FROM")
    image = froms[-1].split()[0]
    for name, value in arg_defaults(instructions).items():
        image = image.replace(f"${{{name}}}", value)
    return image


def test_jetson_base_is_a_pinned_jetpack6_image(jetson: list[Instruction]) -> None:
    image = base_image(jetson)
    repository, _, tag = image.rpartition(":")
    assert repository in {"nvcr.io/nvidia/l4t-jetpack", "nvcr.io/nvidia/l4t-tensorrt"}, image
    assert re.fullmatch(r"r36\.4\.\d+", tag), f"{image}: pin a JetPack 6 (L4T r36.4.x) tag, not '{tag}'"
    assert len(args_of(jetson, "FROM")) == 1


@pytest.mark.parametrize("dockerfile", [JETSON, DESKTOP], ids=lambda p: p.name)
def test_no_torch_anywhere(dockerfile: Path) -> None:
    instructions = parse(dockerfile)
    installed = all_installed(instructions)
    assert installed, "no install commands found: the parser is broken"
    assert not [p for p in installed if re.search(r"torch", p, re.IGNORECASE)]
    for run in args_of(instructions, "RUN"):  # the only mention of torch is the check that it is absent
        assert "torch" not in re.sub(r'python -c "import torch"|torch is importable', "", run)
    assert "torch" not in base_image(instructions) and "pytorch" not in dockerfile.read_text().lower()


def test_jetson_keeps_jetpack_opencv(jetson: list[Instruction]) -> None:
    pip_packages = [p for words in pip_installs(jetson) for p in packages(words)]
    assert not [p for p in pip_packages if p.lower().startswith("opencv")]
    assert any("import cv2" in run and "python3-opencv" in run for run in args_of(jetson, "RUN"))


def test_jetson_pip_pins_match_pyproject(jetson: list[Instruction]) -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = {
        Requirement(line).name: str(Requirement(line).specifier) for e in ("ort", "gpu", "trt") for line in extras[e]
    }
    pinned = {}
    for words in pip_installs(jetson):
        for spec in packages(words):
            if not spec.startswith((".", "/", "$")) and not spec.startswith(('"pip', "pip", "setuptools", "wheel")):
                requirement = Requirement(spec)
                pinned[requirement.name] = str(requirement.specifier)
    assert pinned == {name: wanted[name] for name in ("pycuda", "onnxruntime", "onnxruntime-gpu")}
    assert any(".[trt,serve]" in words for words in pip_installs(jetson))  # edgeaff serve runs on the Jetson


@pytest.mark.parametrize("dockerfile", [JETSON, DESKTOP], ids=lambda p: p.name)
def test_every_pip_install_skips_the_cache(dockerfile: Path) -> None:
    for words in pip_installs(parse(dockerfile)):
        assert "--no-cache-dir" in words, words


@pytest.mark.parametrize("dockerfile", [JETSON, DESKTOP], ids=lambda p: p.name)
def test_non_root_user_entrypoint_and_cache_volume(dockerfile: Path) -> None:
    instructions = parse(dockerfile)
    users = args_of(instructions, "USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    keywords = [i.keyword for i in instructions]
    assert max(i for i, k in enumerate(keywords) if k == "USER") < keywords.index("ENTRYPOINT")
    assert [json.loads(a) for a in args_of(instructions, "ENTRYPOINT")] == [["edgeaff"]]
    env = " ".join(args_of(instructions, "ENV"))
    cache = re.search(r"EDGEAFF_CACHE_DIR=(\S+)", env)
    assert cache, "EDGEAFF_CACHE_DIR is not set"
    volumes = [v for args in args_of(instructions, "VOLUME") for v in json.loads(args)]
    assert cache.group(1) in volumes and "/bundles" in volumes


@pytest.mark.parametrize("dockerfile", [JETSON, DESKTOP], ids=lambda p: p.name)
def test_build_check_for_torch_and_doctor_comes_last(dockerfile: Path) -> None:
    instructions = parse(dockerfile)
    runs = [(n, i.args) for n, i in enumerate(instructions) if i.keyword == "RUN"]
    checks = [(n, run) for n, run in runs if "import torch" in run and "edgeaff doctor" in run]
    assert len(checks) == 1
    position, check = checks[0]
    last_install = max(n for n, run in runs if "pip install" in run)
    assert position > last_install, "the check must run after edgeaff is installed"
    words = shell_words(check)
    required = [words[i + 1] for i, word in enumerate(words) if word == "--require"]
    assert required and set(required) <= set(CHECK_NAMES)
    assert "ort-cpu" in required


@pytest.mark.parametrize("dockerfile", [JETSON, DESKTOP], ids=lambda p: p.name)
def test_no_secrets_and_copied_files_exist(dockerfile: Path) -> None:
    instructions = parse(dockerfile)
    for args in args_of(instructions, "ENV") + args_of(instructions, "ARG"):
        assert not re.search(r"(TOKEN|SECRET|PASSWORD|API_KEY|CREDENTIAL)", args, re.IGNORECASE), args
    assert not re.search(r"https?://[^/\s]+:[^@/\s]+@", dockerfile.read_text()), "credentials in a URL"
    for args in args_of(instructions, "COPY"):
        if "--from=" in args:
            continue
        for source in args.split()[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert (REPO / ".dockerignore").read_text().count(f"!{source.split('/')[0]}") >= 1


def test_jetson_pip_constraint_file_is_the_one_copied(jetson: list[Instruction]) -> None:
    env = " ".join(args_of(jetson, "ENV"))
    target = re.search(r"PIP_CONSTRAINT=(\S+)", env)
    assert target and f"docker/jetson-constraints.txt {target.group(1)}" in args_of(jetson, "COPY")
    constraints = (REPO / "docker" / "jetson-constraints.txt").read_text()
    assert re.search(r"^numpy<2$", constraints, re.MULTILINE)


# --- the build check, executed ------------------------------------------------------------------------------------


def run_build_check(tmp_path: Path, *, torch_importable: bool, doctor_exit: int) -> tuple[int, str]:
    """Run the Dockerfile.jetson check with a stand-in ``python`` (torch present or not) and ``edgeaff``."""
    check = next(i.args for i in parse(JETSON) if i.keyword == "RUN" and "import torch" in i.args)
    bin_dir, site = tmp_path / "bin", tmp_path / "site"
    (site / "torch").mkdir(parents=True)
    bin_dir.mkdir()
    body = "VERSION = 'fake'\n" if torch_importable else "raise ImportError('No module named torch')\n"
    (site / "torch" / "__init__.py").write_text(body)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    calls = tmp_path / "edgeaff-calls"
    (bin_dir / "edgeaff").write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexit {doctor_exit}\n')
    for tool in ("python", "edgeaff"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(site)}
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", check], env=env, capture_output=True, text=True, check=False
    )
    return result.returncode, calls.read_text() if calls.exists() else ""


def test_build_check_fails_when_torch_is_importable(tmp_path: Path) -> None:
    code, calls = run_build_check(tmp_path, torch_importable=True, doctor_exit=0)
    assert code == 1 and calls == ""


def test_build_check_runs_doctor_when_torch_is_absent(tmp_path: Path) -> None:
    code, calls = run_build_check(tmp_path, torch_importable=False, doctor_exit=0)
    assert code == 0
    assert calls.split()[0] == "doctor" and "--require gstreamer" in calls


def test_build_check_fails_when_doctor_fails(tmp_path: Path) -> None:
    code, _ = run_build_check(tmp_path, torch_importable=False, doctor_exit=1)
    assert code == 1
