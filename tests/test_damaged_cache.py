"""A damaged `datasets` cache (a cut-short Arrow file) is rebuilt with one warning; --overwrite_cache rebuilds it."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
from transformers import AutoTokenizer

from pseudo_kd_hf.custom_data import load_data_files, load_named_dataset
from pseudo_kd_hf.glue.data import load_glue_task
from pseudo_kd_hf.glue.tasks import get_task
from pseudo_kd_hf.task_data import tokenize_split

ROWS = 12


def write_rte(data_dir: Path) -> None:
    labels = ("entailment", "not_entailment")
    rows = [f"{i}\tthe first sentence {i}\tand a second {i}\t{labels[i % 2]}" for i in range(ROWS)]
    (data_dir / "RTE").mkdir(parents=True)
    (data_dir / "RTE" / "train.tsv").write_text("\n".join(["index\tsentence1\tsentence2\tlabel", *rows]) + "\n")


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What was warned: other libraries' info lines reach the capture too when an earlier test raised their level."""
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


def cut_short(path: str, keep: float | None) -> None:
    """Cut the Arrow file to `keep` of its bytes; None: rewrite it whole with its first 3 rows (a clean cut)."""
    if keep is None:
        table = pa.ipc.open_stream(Path(path).read_bytes()).read_all().slice(0, 3)
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return
    size = Path(path).stat().st_size
    with open(path, "r+b") as file:
        file.truncate(int(size * keep))


@pytest.mark.parametrize("keep", [0.5, 0.0, None], ids=["half", "empty", "fewer_rows"])
def test_a_damaged_raw_cache_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture, keep: float | None) -> None:
    write_rte(tmp_path)
    first = load_glue_task("rte", tmp_path, splits=["train"])["train"]
    cache_file, expected = first.cache_files[0]["filename"], first.to_list()  # read before the file is rewritten
    cut_short(cache_file, keep)
    with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf"):
        again = load_glue_task("rte", tmp_path, splits=["train"])["train"]
    assert again.to_list() == expected
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"cache in {Path(cache_file).parent} was damaged" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf"):
        assert load_glue_task("rte", tmp_path, splits=["train"])["train"].to_list() == expected
    assert not warnings_of(caplog)  # rebuilt once, then served from the cache


def test_overwrite_cache_rebuilds_the_raw_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_rte(tmp_path)
    first = load_glue_task("rte", tmp_path, splits=["train"])["train"]
    cache_file, expected = Path(first.cache_files[0]["filename"]), first.to_list()
    intact = cache_file.read_bytes()
    cache_file.write_bytes(intact[:-1] + bytes([intact[-1] ^ 0xFF]))  # any change: rewritten means rebuilt
    with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf"):
        again = load_glue_task("rte", tmp_path, splits=["train"], overwrite_cache=True)["train"]
    assert again.to_list() == expected and cache_file.read_bytes() == intact
    assert not warnings_of(caplog)


def test_a_damaged_own_file_cache_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train = tmp_path / "train.csv"
    train.write_text("sentence,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(ROWS)))
    first, _ = load_data_files(str(train), None, None, cache_dir=str(tmp_path / "cache"))
    expected = first["train"].to_list()
    raw_cache = next((tmp_path / "cache").rglob("csv-train.arrow"))
    cut_short(str(raw_cache), 0.5)
    with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf"):
        again, _ = load_data_files(str(train), None, None, cache_dir=str(tmp_path / "cache"))
    assert again["train"].to_list() == expected
    assert "was damaged" in caplog.text and str(raw_cache.parent) in caplog.text


def test_a_damaged_tokenised_cache_is_rebuilt(tmp_path: Path, minilm_path: Path, caplog) -> None:
    write_rte(tmp_path)
    train = load_glue_task("rte", tmp_path, splits=["train"])["train"]
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    data_args = SimpleNamespace(pad_to_max_length=False, preprocessing_num_workers=None, overwrite_cache=False)
    training_args = SimpleNamespace(main_process_first=lambda desc: contextlib.nullcontext())

    def tokenise():
        return tokenize_split(train, get_task("rte"), tokenizer, data_args, training_args, 32)

    first = tokenise()
    cache_file, expected = first.cache_files[0]["filename"], list(first["input_ids"])
    assert cache_file != train.cache_files[0]["filename"]
    cut_short(cache_file, 0.5)
    with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf"):
        again = tokenise()
    assert list(again["input_ids"]) == expected
    assert "The tokenised data cache in" in caplog.text and "was damaged" in caplog.text


def test_a_damaged_named_dataset_cache_is_rebuilt_and_overwrite_cache_rebuilds_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "train.csv").write_text("sentence,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(ROWS)))
    cache_dir = str(tmp_path / "cache")
    first, _ = load_named_dataset(str(folder), None, [], cache_dir)
    expected = first["train"].to_list()
    raw_cache = next(Path(cache_dir).rglob("dataset-train.arrow"))  # what load_dataset wrote, before our columns
    cut_short(str(raw_cache), None)  # a clean cut: fewer rows, no pyarrow error
    with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf"):
        again, _ = load_named_dataset(str(folder), None, [], cache_dir)
    assert again["train"].to_list() == expected
    assert "was damaged" in caplog.text and str(raw_cache.parent) in caplog.text
    cut_short(str(raw_cache), None)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf"):
        rebuilt, _ = load_named_dataset(str(folder), None, [], cache_dir, overwrite_cache=True)
    assert rebuilt["train"].to_list() == expected and not warnings_of(caplog)  # rebuilt on request, no warning
