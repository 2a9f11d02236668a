"""Check that edgeaff's Jetson runtime installs on JetPack 6 from binary wheels only.

Resolves the runtime's dependency set for linux/aarch64, CPython 3.10, glibc 2.35 (JetPack 6 = Ubuntu 22.04) the way
pip on the device would, downloads the chosen wheels, and inspects them: every wheel must carry a tag the device
accepts, and every ELF binary inside must be built for aarch64. pycuda is the one package allowed to build from
source (the image compiles it against JetPack's CUDA). Packages that must never land in the runtime set (torch, pip
OpenCV wheels that would shadow JetPack's GStreamer build) fail the check too.

The requirement set is read from ``pyproject.toml``: the base dependencies with their environment markers evaluated
for the device, plus the extras the Jetson image installs (``ort`` and ``trt`` by default), under the image's pip
constraints (``docker/jetson-constraints.txt``).

Usage::

    python tools/check_aarch64.py                          # the real runtime set; exit 1 on any problem
    python tools/check_aarch64.py --only opensmile==2.4.2  # check one requirement (fails: x86-64 library inside)
    python tools/check_aarch64.py --json report.json --cache /tmp/wheels

Needs network access to the package index (pip does the resolving and downloading).
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]

# ELF e_machine values (System V ABI) for the architectures a wheel is likely to contain.
ELF_MACHINES = {3: "x86", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390", 40: "arm", 62: "x86-64", 183: "aarch64"}
# ELF name of each platform_machine a target can have.
ELF_NAME = {"aarch64": "aarch64", "x86_64": "x86-64"}
# Packages allowed to build from source in the image: why, and their own dependencies (from the package's metadata;
# reading them from the sdist would make pip run its setup script, which pauses ten seconds without a siteconf).
SOURCE_BUILDS_ALLOWED = {
    "pycuda": (
        "compiled in the image against JetPack's CUDA",
        ("pytools>=2011.2", "platformdirs>=2.2.0", "mako"),
    ),
}
# Packages that must never be part of the device's runtime set.
FORBIDDEN = {
    "torch": "the runtime is torch-free (design.md §2)",
    "opencv-python": "would shadow JetPack's OpenCV (GStreamer, csi://)",
    "opencv-python-headless": "would shadow JetPack's OpenCV (GStreamer, csi://)",
    "opencv-contrib-python": "would shadow JetPack's OpenCV (GStreamer, csi://)",
    "opencv-contrib-python-headless": "would shadow JetPack's OpenCV (GStreamer, csi://)",
}


@dataclass(frozen=True)
class Target:
    """The interpreter and platform the wheels must install on."""

    python: tuple[int, int] = (3, 10)
    glibc: tuple[int, int] = (2, 35)
    machine: str = "aarch64"

    @property
    def abi(self) -> str:
        """CPython ABI tag, e.g. ``cp310``."""
        return f"cp{self.python[0]}{self.python[1]}"

    def platforms(self) -> list[str]:
        """Platform tags, newest glibc first: pip does not expand ``manylinux2014`` or ``manylinux_2_35`` by itself."""
        tags = [f"manylinux_2_{minor}_{self.machine}" for minor in range(self.glibc[1], 16, -1)]
        return [*tags, f"manylinux2014_{self.machine}", f"linux_{self.machine}"]

    def supported_tags(self) -> set[Tag]:
        """Every (interpreter, abi, platform) tag pip on the target accepts."""
        major, minor = self.python
        platforms = [*self.platforms(), "any"]
        interpreters = [
            f"cp{major}{minor}",
            f"py{major}{minor}",
            f"py{major}",
            *(f"py{major}{m}" for m in range(minor)),
        ]
        abis = [self.abi, "abi3", "none"]
        tags = {Tag(i, a, p) for i in interpreters for a in abis for p in platforms}
        # abi3 wheels built for an older CPython 3.x also load on this one.
        tags |= {Tag(f"cp{major}{m}", "abi3", p) for m in range(2, minor) for p in platforms}
        return tags

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values of the device (Linux, aarch64, CPython)."""
        env = {key: str(value) for key, value in default_environment().items()}
        version = f"{self.python[0]}.{self.python[1]}"
        env.update(
            platform_machine=self.machine,
            platform_system="Linux",
            sys_platform="linux",
            os_name="posix",
            implementation_name="cpython",
            platform_python_implementation="CPython",
            python_version=version,
            python_full_version=f"{version}.12",
            implementation_version=f"{version}.12",
        )
        return env

    def pip_flags(self) -> list[str]:
        """pip options that make it resolve for the target instead of this machine."""
        flags = [
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            f"{self.python[0]}.{self.python[1]}",
        ]
        for abi in (self.abi, "abi3", "none"):
            flags += ["--abi", abi]
        for platform in self.platforms():
            flags += ["--platform", platform]
        return flags


JETSON = Target()


@dataclass(frozen=True)
class WheelReport:
    """What one resolved distribution looks like on the target."""

    name: str
    version: str
    filename: str
    kind: str  # "wheel" or "source build"
    elf: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing stops this distribution from installing and loading on the device."""
        return not self.problems


@dataclass(frozen=True)
class CheckResult:
    """Outcome of a whole check."""

    target: Target
    wheels: tuple[WheelReport, ...]
    unresolved: tuple[str, ...] = ()  # requirement + why pip found no usable wheel

    @property
    def ok(self) -> bool:
        """True when every requirement resolved to usable wheels (or an allowed source build)."""
        return not self.unresolved and all(w.ok for w in self.wheels)


def elf_machines(wheel: Path) -> Counter[str]:
    """Count the ELF files inside a wheel by architecture, reading only each member's header."""
    counts: Counter[str] = Counter()
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir() or info.file_size < 20:
                continue
            with archive.open(info) as member:
                head = member.read(20)
            if head[:4] != b"\x7fELF":
                continue
            byte_order = "<" if head[5] == 1 else ">"
            (machine,) = struct.unpack(f"{byte_order}H", head[18:20])
            counts[ELF_MACHINES.get(machine, f"machine {machine}")] += 1
    return counts


def inspect_wheel(wheel: Path, target: Target = JETSON) -> WheelReport:
    """Check one wheel file: tags the target accepts, aarch64-only binaries, not a forbidden package."""
    name, version, _build, tags = parse_wheel_filename(wheel.name)
    problems = []
    if not tags & target.supported_tags():
        wanted = ", ".join(sorted(str(t) for t in tags))
        problems.append(
            f"tags {wanted} do not install on CPython {target.python[0]}.{target.python[1]} "
            f"{target.machine} with glibc {target.glibc[0]}.{target.glibc[1]}"
        )
    counts = elf_machines(wheel)
    foreign = {arch: n for arch, n in counts.items() if arch != ELF_NAME[target.machine]}
    if foreign:
        listed = ", ".join(f"{n} {arch}" for arch, n in sorted(foreign.items()))
        problems.append(f"ships non-{target.machine} binaries ({listed})")
    if name in FORBIDDEN:
        problems.append(f"must not be installed on the device: {FORBIDDEN[name]}")
    return WheelReport(str(name), str(version), wheel.name, "wheel", dict(counts), tuple(problems))


def runtime_requirements(
    pyproject: Path = REPO / "pyproject.toml", *, extras: Sequence[str] = ("ort", "trt"), target: Target = JETSON
) -> list[Requirement]:
    """Base dependencies plus the given extras, keeping only those whose markers hold on the target."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"unknown extra(s) {', '.join(unknown)}; pyproject.toml defines {', '.join(optional)}")
    lines = list(project["dependencies"]) + [line for extra in extras for line in optional[extra]]
    env = target.marker_environment()
    requirements = []
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({**env, "extra": ""}):
            requirement.marker = None
            requirements.append(requirement)
    return requirements


PipRunner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def run_pip(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run this interpreter's pip with the given arguments, capturing its output."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)


def _pip_error(process: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in process.stderr.splitlines() if line.strip().startswith("ERROR")]
    return lines[0].removeprefix("ERROR: ") if lines else f"pip exited with {process.returncode}"


def resolve(
    requirements: Sequence[Requirement],
    *,
    target: Target = JETSON,
    constraints: Sequence[Path] = (),
    workdir: Path,
    pip: PipRunner = run_pip,
) -> tuple[list[tuple[str, str]], list[str]]:
    """Resolve requirements for the target with binary wheels only.

    Returns:
        ``(pins, unresolved)``: ``(name, version)`` of every distribution pip would install, and one line per
        top-level requirement that has no usable wheel. When some requirements cannot be met, the others are still
        resolved together, so their wheels get checked too.
    """
    report = workdir / "resolution.json"
    base = ["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), *target.pip_flags()]
    for path in constraints:
        base += ["--constraint", str(path)]

    def attempt(subset: Sequence[Requirement]) -> subprocess.CompletedProcess[str]:
        return pip([*base, *(str(r) for r in subset)])

    def pins() -> list[tuple[str, str]]:
        data = json.loads(report.read_text())
        return [(item["metadata"]["name"], item["metadata"]["version"]) for item in data["install"]]

    if not requirements:
        return [], []
    process = attempt(requirements)
    if process.returncode == 0:
        return pins(), []
    unresolved, good = [], []
    for requirement in requirements:  # which requirement(s) cannot be met on the target?
        single = attempt([requirement])
        if single.returncode == 0:
            good.append(requirement)
        else:
            unresolved.append(f"{requirement}: {_pip_error(single)}")
    if not unresolved:
        return [], [f"the requirements conflict with each other on the target: {_pip_error(process)}"]
    if good and attempt(good).returncode == 0:
        return pins(), unresolved
    return [], unresolved


def download(
    pins: Sequence[tuple[str, str]], *, target: Target = JETSON, cache: Path, pip: PipRunner = run_pip
) -> dict[str, Path]:
    """Download the exact wheels pip picked into ``cache`` (kept files are reused); returns them by name."""
    if pins:
        args = ["download", "--no-deps", "--quiet", "--dest", str(cache), *target.pip_flags()]
        process = pip([*args, *(f"{name}=={version}" for name, version in pins)])
        if process.returncode != 0:
            raise SystemExit(f"pip download failed: {_pip_error(process)}")
    wheels: dict[str, Path] = {}
    wanted = {(canonicalize_name(name), version) for name, version in pins}
    for path in sorted(cache.glob("*.whl")):
        name, version, _build, _tags = parse_wheel_filename(path.name)
        if (name, str(version)) in wanted:
            wheels[str(name)] = path
    missing = sorted({name for name, _ in wanted} - set(wheels))
    if missing:
        raise SystemExit(f"pip reported success but these wheels are not in {cache}: {', '.join(missing)}")
    return wheels


def _split_source_builds(
    requirements: Iterable[Requirement], target: Target, pip: PipRunner, workdir: Path
) -> tuple[list[Requirement], list[WheelReport]]:
    """Replace allowed source-only packages by their own dependencies; report them as source builds."""
    kept: list[Requirement] = []
    sources: list[WheelReport] = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name not in SOURCE_BUILDS_ALLOWED:
            kept.append(requirement)
            continue
        pins, _ = resolve([requirement], target=target, workdir=workdir, pip=pip)
        if pins:  # a wheel exists after all: check it like every other one
            kept.append(requirement)
            continue
        why, dependencies = SOURCE_BUILDS_ALLOWED[name]
        version = str(requirement.specifier) or "any"
        sources.append(WheelReport(str(name), version, "sdist", f"source build: {why}"))
        kept.extend(Requirement(dep) for dep in dependencies)
    return kept, sources


def check(
    requirements: Sequence[Requirement],
    *,
    target: Target = JETSON,
    constraints: Sequence[Path] = (),
    cache: Path,
    pip: PipRunner = run_pip,
) -> CheckResult:
    """Resolve, download and inspect ``requirements`` for ``target``.

    Forbidden packages are reported from the resolution alone, without downloading them.
    """
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeaff-aarch64-") as scratch:
        workdir = Path(scratch)
        binary, reports = _split_source_builds(requirements, target, pip, workdir)
        pins, unresolved = resolve(binary, target=target, constraints=constraints, workdir=workdir, pip=pip)
    allowed = []
    for name, version in pins:
        reason = FORBIDDEN.get(canonicalize_name(name))
        if reason is None:
            allowed.append((name, version))
        else:
            problem = f"must not be installed on the device: {reason}"
            reports.append(WheelReport(str(canonicalize_name(name)), version, "-", "wheel", problems=(problem,)))
    wheels = download(allowed, target=target, cache=cache, pip=pip)
    reports += [inspect_wheel(path, target) for path in wheels.values()]
    return CheckResult(target, tuple(sorted(reports, key=lambda w: w.name)), tuple(unresolved))


def _wheel_tags(filename: str) -> str:
    """The ``python-abi-platform`` part of a wheel filename."""
    parts = filename.removesuffix(".whl").split("-")
    return "-".join(parts[-3:]) if len(parts) >= 5 else filename


def format_table(result: CheckResult) -> str:
    """A plain-text table: one row per distribution, then the requirements without a usable wheel."""
    t = result.target
    rows = [("package", "version", "distribution", "ELF files", "verdict")]
    for wheel in result.wheels:
        elf = ", ".join(f"{n} {arch}" for arch, n in sorted(wheel.elf.items())) or "-"
        verdict = "ok" if wheel.ok else "FAIL: " + "; ".join(wheel.problems)
        kind = _wheel_tags(wheel.filename) if wheel.kind == "wheel" else wheel.kind
        rows.append((wheel.name, wheel.version, kind, elf, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        f"aarch64 install check: linux/{t.machine}, CPython {t.python[0]}.{t.python[1]}, "
        f"glibc <= {t.glibc[0]}.{t.glibc[1]}, binary wheels only",
        "",
    ]
    lines += [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)), row[4]]) for row in rows
    ]
    lines += [f"NO WHEEL  {line}" for line in result.unresolved]
    problems = sum(not w.ok for w in result.wheels) + len(result.unresolved)
    lines += ["", f"{len(result.wheels)} distributions, {problems} problem(s): {'PASS' if result.ok else 'FAIL'}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: prints the table and returns 0 when the runtime set installs on the device."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyproject", type=Path, default=REPO / "pyproject.toml")
    parser.add_argument("--extra", action="append", help="extra installed in the image (default: ort, trt)")
    parser.add_argument("--constraint", action="append", type=Path, help="pip constraints file (default: the image's)")
    parser.add_argument("--only", action="append", metavar="REQ", help="check these requirements instead")
    parser.add_argument("--cache", type=Path, help="directory for downloaded wheels (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the result as JSON")
    args = parser.parse_args(argv)
    constraints = args.constraint if args.constraint is not None else [REPO / "docker" / "jetson-constraints.txt"]
    if args.only:
        requirements = [Requirement(r) for r in args.only]
    else:
        requirements = runtime_requirements(args.pyproject, extras=args.extra or ("ort", "trt"))
    with tempfile.TemporaryDirectory(prefix="edgeaff-wheels-") as scratch:
        result = check(requirements, constraints=constraints, cache=args.cache or Path(scratch))
    print(format_table(result))
    if args.json:
        payload = {
            "target": {"python": list(JETSON.python), "glibc": list(JETSON.glibc), "machine": JETSON.machine},
            "ok": result.ok,
            "wheels": [{**w.__dict__, "problems": list(w.problems), "ok": w.ok} for w in result.wheels],
            "unresolved": list(result.unresolved),
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
