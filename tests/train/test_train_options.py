"""Every numeric option of train and prepare has a range, checked before anything is written (issue 16, 4-5, 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from prepared_fixture import make_prepared

from edgeaff.cli import main
from edgeaff.runtime import limits


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prepared"), subjects=8, length=150, seed=3)


def one_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


TRAIN_CASES = [
    (["--batch-size", "0"], "--batch-size must be between 1 and 1024, got 0"),
    (["--batch-size", "5000"], "--batch-size must be between 1 and 1024"),
    (["--epochs", "0"], "--epochs must be between 1 and 10000, got 0"),
    (["--epochs", "-1"], "--epochs must be between 1 and 10000, got -1"),
    (["--threads", "0"], "--threads must be between 1 and"),
    (["--threads", "100000"], "--threads must be between 1 and"),
    (["--workers", "0"], "--workers must be between 1 and"),
    (["--workers", str(limits.usable_cores() + 1)], "one per core at most"),
    (["--seed", "-1"], "--seed must be between 0 and 4294967295"),
    (["--device", "tpu"], "unknown device 'tpu'; use cpu, cuda or cuda:N"),
    (["--lr", "nan"], "--lr must be in (0, 1)"),
]


@pytest.mark.parametrize(("options", "message"), TRAIN_CASES)
def test_bad_train_options_write_nothing(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    out = tmp_path / "run"
    line = one_error(["train", str(prepared), "-o", str(out), "--backbone", "ir-tiny", *options], capsys)
    assert message in line
    assert not out.exists()  # no "pending" runs.json left behind


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line(prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    line = one_error(["train", str(prepared), "-o", str(out), "--device", "cuda", "--backbone", "ir-tiny"], capsys)
    assert "PyTorch cannot use CUDA here" in line and "--device cpu" in line
    assert not out.exists()
    line = one_error(
        ["prepare", str(tmp_path), str(tmp_path / "p"), "--vggish-weights", "random:1", "--device", "cuda"], capsys
    )
    assert "PyTorch cannot use CUDA here" in line
    assert not (tmp_path / "p").exists()


def test_train_output_that_is_a_file_or_the_dataset(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    line = one_error(["train", str(prepared), "-o", str(existing), "--backbone", "ir-tiny"], capsys)
    assert "is a file" in line and existing.read_text() == "mine"
    before = sorted(p.name for p in prepared.iterdir())
    line = one_error(["train", str(prepared), "-o", str(prepared), "--backbone", "ir-tiny"], capsys)
    assert "is the prepared dataset itself" in line
    assert sorted(p.name for p in prepared.iterdir()) == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--device", "tpu"], "unknown device 'tpu'; use cpu, cuda or cuda:N"),
        (["--workers", "0"], "--workers must be between 1 and"),
        (["--workers", "100000"], "one per core at most"),
    ],
)
def test_bad_prepare_options_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    out = tmp_path / "prepared"
    line = one_error(["prepare", str(tmp_path), str(out), "--vggish-weights", "random:1", *options], capsys)
    assert message in line
    assert not out.exists()
