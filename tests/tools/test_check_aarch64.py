"""tools/check_aarch64.py: the Jetson (linux/aarch64, CPython 3.10) install check.

Most tests run offline on hand-made wheel files and a fake pip; two tests ask the real package index (marked
``network``; they run in CI and share one wheel cache per test session).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import check_aarch64 as ca
import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
NO_WHEEL = "Could not find a version that satisfies the requirement {} (from versions: none)"


def elf_header(machine: int, *, big_endian: bool = False) -> bytes:
    """The first 64 bytes of a 64-bit ELF shared object for ``machine`` (e_machine at offset 18)."""
    order = ">" if big_endian else "<"
    ident = b"\x7fELF" + bytes([2, 2 if big_endian else 1, 1]) + bytes(9)
    return ident + struct.pack(f"{order}HHI", 3, machine, 1) + bytes(40)


def make_wheel(directory: Path, filename: str, files: dict[str, bytes] | None = None) -> Path:
    path = directory / filename
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pkg/__init__.py", b"")
        for name, data in (files or {}).items():
            archive.writestr(name, data)
    return path


# --- wheel contents and tags -------------------------------------------------------------------------------------


def test_elf_machines_reads_the_architecture_of_every_binary(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        "mix-1.0-py3-none-any.whl",
        {
            "mix/a.so": elf_header(183),
            "mix/b.so": elf_header(183),
            "mix/c.so": elf_header(62),
            "mix/d.so": elf_header(22, big_endian=True),  # s390x is big-endian: e_machine must be read as such
            "mix/e.dylib": b"\xcf\xfa\xed\xfe" + bytes(40),  # Mach-O: not an ELF file
            "mix/notes.txt": b"\x7fEL" + bytes(40),
        },
    )
    assert ca.elf_machines(wheel) == {"aarch64": 2, "x86-64": 1, "s390": 1}


def test_aarch64_wheel_with_aarch64_library_passes(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "good-2.0-cp310-cp310-manylinux_2_28_aarch64.whl", {"good/lib.so": elf_header(183)})
    report = ca.inspect_wheel(wheel)
    assert report.ok, report.problems
    assert (report.name, report.version, report.elf) == ("good", "2.0", {"aarch64": 1})


def test_pure_python_wheel_that_bundles_an_x86_64_library_fails(tmp_path: Path) -> None:
    """The opensmile 2.4.2 pattern: a py3-none-any wheel whose native library is x86-64 only."""
    wheel = make_wheel(
        tmp_path,
        "opensmile-2.4.2-py3-none-any.whl",
        {"opensmile/core/bin/linux_x64/libSMILEapi.so": elf_header(62)},
    )
    report = ca.inspect_wheel(wheel)
    assert not report.ok
    assert report.problems == ("ships non-aarch64 binaries (1 x86-64)",)


@pytest.mark.parametrize(
    ("filename", "accepted"),
    [
        ("a-1-cp310-cp310-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", True),
        ("a-1-cp310-cp310-manylinux_2_35_aarch64.whl", True),  # JetPack 6 = glibc 2.35
        ("a-1-cp310-cp310-manylinux_2_38_aarch64.whl", False),  # needs a newer glibc than Ubuntu 22.04
        ("a-1-cp310-cp310-manylinux2014_aarch64.whl", True),
        ("a-1-cp310-cp310-linux_aarch64.whl", True),  # NVIDIA's JetPack wheels carry the plain tag
        ("a-1-cp311-cp311-manylinux_2_28_aarch64.whl", False),  # JetPack 6 has Python 3.10
        ("a-1-cp38-abi3-manylinux_2_28_aarch64.whl", True),  # stable ABI from an older CPython
        ("a-1-cp310-cp310-manylinux_2_28_x86_64.whl", False),
        ("a-1-cp310-cp310-musllinux_1_2_aarch64.whl", False),
        ("a-1-py2.py3-none-any.whl", True),
        ("a-1-py3-none-manylinux_2_17_aarch64.whl", True),
    ],
)
def test_wheel_tags_are_checked_against_jetpack6(tmp_path: Path, filename: str, accepted: bool) -> None:
    report = ca.inspect_wheel(make_wheel(tmp_path, filename))
    assert report.ok is accepted, report.problems
    if not accepted:
        assert "do not install on CPython 3.10 aarch64 with glibc 2.35" in report.problems[0]


def test_forbidden_packages_fail_even_with_good_wheels(tmp_path: Path) -> None:
    torch = ca.inspect_wheel(make_wheel(tmp_path, "torch-2.5.1-cp310-cp310-manylinux_2_28_aarch64.whl"))
    opencv_wheel = "opencv_python_headless-4.14.0.94-cp37-abi3-manylinux_2_28_aarch64.whl"
    opencv = ca.inspect_wheel(make_wheel(tmp_path, opencv_wheel))
    assert "torch-free" in torch.problems[0]
    assert "shadow JetPack's OpenCV" in opencv.problems[0]


def test_pip_flags_list_every_glibc_tag_explicitly() -> None:
    """A bare manylinux2014 tag makes pip pick opensmile 2.4.2 (x86-64 library inside); feasibility.md §1."""
    flags = ca.JETSON.pip_flags()
    platforms = [flags[i + 1] for i, flag in enumerate(flags) if flag == "--platform"]
    expected = [f"manylinux_2_{minor}_aarch64" for minor in range(35, 16, -1)]
    assert platforms == [*expected, "manylinux2014_aarch64", "linux_aarch64"]
    assert "--only-binary=:all:" in flags
    assert flags[flags.index("--python-version") + 1] == "3.10"
    assert flags[flags.index("--implementation") + 1] == "cp"


# --- requirement set ----------------------------------------------------------------------------------------------


def test_requirements_are_evaluated_for_the_device(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        "[project]\n"
        'name = "x"\n'
        "dependencies = [\n"
        '  "numpy>=1.24",\n'
        "  \"opencv-python-headless>=4.8,<5; platform_machine != 'aarch64'\",\n"
        "  \"tomli>=2; python_version < '3.11'\",\n"
        "  \"pywin32; sys_platform == 'win32'\",\n"
        "]\n"
        "[project.optional-dependencies]\n"
        'trt = ["pycuda>=2024.1"]\n'
        'train = ["torch>=2.1"]\n'
    )
    names = [r.name for r in ca.runtime_requirements(pyproject, extras=["trt"])]
    assert names == ["numpy", "tomli", "pycuda"]
    with pytest.raises(SystemExit, match="unknown extra"):
        ca.runtime_requirements(pyproject, extras=["gpu"])


def test_the_projects_jetson_set_has_no_pip_opencv_and_no_torch() -> None:
    """pyproject.toml keeps OpenCV off aarch64 (JetPack's build is used) and the runtime extras stay torch-free."""
    requirements = {r.name: str(r.specifier) for r in ca.runtime_requirements()}
    assert not any(name.startswith("opencv") for name in requirements)
    assert "torch" not in requirements
    assert {"numpy", "av", "opensmile", "onnxruntime", "pycuda"} <= set(requirements)
    assert requirements["opensmile"] == ">=2.5"  # 2.5.0 is the first release with an aarch64 library


# --- the whole check, against a fake pip --------------------------------------------------------------------------


class FakeIndex:
    """Answers ``pip install --dry-run --report`` and ``pip download`` from a small table of wheels."""

    VALUE_FLAGS = frozenset(
        {"--report", "--platform", "--abi", "--implementation", "--python-version", "--constraint", "--dest"}
    )

    def __init__(self, wheels: dict[str, tuple[str, list[str], Path]]) -> None:
        self.wheels = wheels  # name -> (version, dependencies, wheel file)
        self.calls: list[list[str]] = []

    def _requirements(self, args: list[str]) -> list[str]:
        names, skip = [], False
        for token in args[1:]:
            if skip:
                skip = False
            elif token in self.VALUE_FLAGS:
                skip = True
            elif not token.startswith("-"):
                names.append(Requirement(token).name)
        return names

    def __call__(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        names = self._requirements(args)
        missing = [n for n in names if n not in self.wheels]
        if missing:
            message = (
                f"ERROR: Could not find a version that satisfies the requirement {missing[0]} (from versions: none)"
            )
            return subprocess.CompletedProcess(args, 1, "", message + "\n")
        if args[0] == "install":
            closure: list[str] = []
            todo = list(names)
            while todo:
                name = todo.pop()
                if name not in closure:
                    closure.append(name)
                    todo.extend(self.wheels[name][1])
            report = [{"metadata": {"name": n, "version": self.wheels[n][0]}} for n in closure]
            Path(args[args.index("--report") + 1]).write_text(json.dumps({"install": report}))
        else:
            dest = Path(args[args.index("--dest") + 1])
            for name in names:
                shutil.copy(self.wheels[name][2], dest)
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    src = tmp_path / "index"
    src.mkdir()
    aarch64 = {"lib/x.so": elf_header(183)}
    x86_64 = {"bin/linux_x64/libSMILEapi.so": elf_header(62)}
    return FakeIndex(
        {
            "numpy": ("1.26.4", [], make_wheel(src, "numpy-1.26.4-cp310-cp310-manylinux_2_17_aarch64.whl", aarch64)),
            "opensmile": ("2.4.2", ["numpy"], make_wheel(src, "opensmile-2.4.2-py3-none-any.whl", x86_64)),
            "pytools": ("2026.1", [], make_wheel(src, "pytools-2026.1-py3-none-any.whl")),
            "platformdirs": ("4.0", [], make_wheel(src, "platformdirs-4.0-py3-none-any.whl")),
            "mako": ("1.3", [], make_wheel(src, "mako-1.3-py3-none-any.whl")),
            "torch": ("2.5.1", ["numpy"], make_wheel(src, "torch-2.5.1-cp310-cp310-manylinux_2_28_aarch64.whl")),
        }
    )


def test_check_passes_with_pycuda_as_the_allowed_source_build(index: FakeIndex, tmp_path: Path) -> None:
    result = ca.check([Requirement("numpy<2"), Requirement("pycuda>=2024.1")], cache=tmp_path / "cache", pip=index)
    assert result.ok, ca.format_table(result)
    by_name = {w.name: w for w in result.wheels}
    assert set(by_name) == {"numpy", "pycuda", "pytools", "platformdirs", "mako"}
    assert by_name["pycuda"].kind.startswith("source build")
    table = ca.format_table(result)
    assert "PASS" in table and "source build" in table
    # every resolution and download was made for the device, not for this machine
    assert all("--platform" in call and "manylinux_2_35_aarch64" in call for call in index.calls)


def test_check_fails_on_x86_64_binaries_and_on_a_package_without_wheel(index: FakeIndex, tmp_path: Path) -> None:
    result = ca.check([Requirement("opensmile"), Requirement("onnxruntime-gpu")], cache=tmp_path / "cache", pip=index)
    assert not result.ok
    assert result.unresolved == ("onnxruntime-gpu: " + NO_WHEEL.format("onnxruntime-gpu"),)
    by_name = {w.name: w for w in result.wheels}  # the rest is still resolved and inspected
    assert by_name["numpy"].ok
    assert by_name["opensmile"].problems == ("ships non-aarch64 binaries (1 x86-64)",)
    assert "FAIL" in ca.format_table(result)


def test_forbidden_packages_are_reported_without_downloading_them(index: FakeIndex, tmp_path: Path) -> None:
    result = ca.check([Requirement("torch")], cache=tmp_path / "cache", pip=index)
    assert not result.ok
    assert [w.name for w in result.wheels if not w.ok] == ["torch"]
    downloads = [call for call in index.calls if call[0] == "download"]
    assert downloads and all("torch==2.5.1" not in call for call in downloads)


# --- against the real package index -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aarch64-wheels")


@pytest.mark.network
def test_the_real_runtime_set_installs_on_jetpack6(wheel_cache: Path) -> None:
    result = ca.check(
        ca.runtime_requirements(), constraints=[REPO / "docker" / "jetson-constraints.txt"], cache=wheel_cache
    )
    table = ca.format_table(result)
    assert result.ok, table
    versions = {w.name: w.version for w in result.wheels}
    assert tuple(int(part) for part in versions["opensmile"].split(".")[:2]) >= (2, 5)
    assert int(versions["numpy"].split(".")[0]) == 1  # the image's constraint
    assert {w.name for w in result.wheels if w.kind != "wheel"} == {"pycuda"}
    opensmile = next(w for w in result.wheels if w.name == "opensmile")
    assert opensmile.elf == {"aarch64": 1}  # the aarch64 libSMILEapi.so


@pytest.mark.network
def test_known_bad_requirements_fail(wheel_cache: Path) -> None:
    result = ca.check([Requirement("opensmile==2.4.2"), Requirement("onnxruntime-gpu")], cache=wheel_cache)
    assert not result.ok
    opensmile = next(w for w in result.wheels if w.name == "opensmile")
    assert opensmile.filename == "opensmile-2.4.2-py3-none-any.whl"
    assert any("x86-64" in problem for problem in opensmile.problems)
    assert len(result.unresolved) == 1 and result.unresolved[0].startswith("onnxruntime-gpu:")
