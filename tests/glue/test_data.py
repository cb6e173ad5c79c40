"""load_glue_task: the Hub's schema from the original glue_data files, byte-exact, cached, with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from datasets import ClassLabel, DatasetDict, DownloadMode, Features, Value

from pseudo_kd_hf.glue import data
from pseudo_kd_hf.glue.data import GlueDataError, load_glue_task, missing_splits, required_splits
from pseudo_kd_hf.glue.tasks import get_task

BOM = b"\xef\xbb\xbf"
REAL_TASKS = ("cola", "sst2", "mrpc", "stsb", "rte")

# The Hub's schema (nyu-mll/glue), spelled out here rather than read from the registry so that it checks the registry.
HUB_TEXT_COLUMNS = {
    "cola": ["sentence"],
    "sst2": ["sentence"],
    "mrpc": ["sentence1", "sentence2"],
    "stsb": ["sentence1", "sentence2"],
    "rte": ["sentence1", "sentence2"],
    "qqp": ["question1", "question2"],
    "mnli": ["premise", "hypothesis"],
    "qnli": ["question", "sentence"],
    "wnli": ["sentence1", "sentence2"],
    "ax": ["premise", "hypothesis"],
}
HUB_LABELS = {
    "cola": ClassLabel(names=["unacceptable", "acceptable"]),
    "sst2": ClassLabel(names=["negative", "positive"]),
    "mrpc": ClassLabel(names=["not_equivalent", "equivalent"]),
    "stsb": Value("float32"),
    "rte": ClassLabel(names=["entailment", "not_entailment"]),
    "qqp": ClassLabel(names=["not_duplicate", "duplicate"]),
    "mnli": ClassLabel(names=["entailment", "neutral", "contradiction"]),
    "qnli": ClassLabel(names=["entailment", "not_entailment"]),
    "wnli": ClassLabel(names=["not_entailment", "entailment"]),
    "ax": ClassLabel(names=["entailment", "neutral", "contradiction"]),
}


def hub_features(task_name: str) -> Features:
    text = {column: Value("string") for column in HUB_TEXT_COLUMNS[task_name]}
    return Features({**text, "label": HUB_LABELS[task_name], "idx": Value("int32")})


def raw_rows(path: Path) -> list[list[str]]:
    """The file's lines split on tab, read independently of the loader: bytes, BOM dropped, no final empty line."""
    raw = path.read_bytes().removeprefix(BOM)
    return [line.decode("utf-8").split("\t") for line in raw.removesuffix(b"\n").split(b"\n")]


def write_tsv(path: Path, lines: list[str], final_newline: bool = True, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path.write_bytes((BOM if bom else b"") + text.encode("utf-8"))
    return path


@pytest.fixture(scope="module")
def real(shared_glue_data: Path) -> dict[str, DatasetDict]:
    return {name: load_glue_task(name, shared_glue_data) for name in REAL_TASKS}


# ---- real GLUE files -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_name", REAL_TASKS)
def test_real_files_have_official_sizes_and_hub_schema(real: dict[str, DatasetDict], task_name: str) -> None:
    task = get_task(task_name)
    dataset = real[task_name]
    assert list(dataset) == ["train", "validation", "test"]
    for split, ds in dataset.items():
        assert ds.num_rows == task.split_sizes[split], split
        assert ds.features == hub_features(task_name), split
        assert ds.column_names == [*HUB_TEXT_COLUMNS[task_name], "label", "idx"], split
        assert ds.split == split
        assert ds.cache_files, f"{split} is not backed by an Arrow cache file"
    assert set(dataset["test"]["label"]) == {-1}


def test_mrpc_bom_header_quotes_and_positional_idx(real: dict[str, DatasetDict], shared_glue_data: Path) -> None:
    train_file = shared_glue_data / "MRPC" / "train.tsv"
    assert train_file.read_bytes().startswith(BOM)
    label, _, _, sentence1, sentence2 = raw_rows(train_file)[1]
    assert real["mrpc"]["train"][0] == {"sentence1": sentence1, "sentence2": sentence2, "label": int(label), "idx": 0}
    assert real["mrpc"]["train"]["idx"] == list(range(3668))
    # The first dev row's second sentence opens a quote it never closes: no CSV quoting may swallow it.
    dev_row = raw_rows(shared_glue_data / "MRPC" / "dev.tsv")[1]
    assert dev_row[4].count('"') == 1
    assert real["mrpc"]["validation"][0]["sentence2"] == dev_row[4]
    test_rows = raw_rows(shared_glue_data / "MRPC" / "test.tsv")[1:]
    assert real["mrpc"]["test"]["idx"] == [int(row[0]) for row in test_rows]


def test_sst2_keeps_trailing_space(real: dict[str, DatasetDict], shared_glue_data: Path) -> None:
    sentence, label = raw_rows(shared_glue_data / "SST-2" / "train.tsv")[1]
    assert sentence.endswith(" ")
    assert real["sst2"]["train"][0] == {"sentence": sentence, "label": int(label), "idx": 0}
    assert real["sst2"]["train"].features["label"].int2str(0) == "negative"


def test_cola_headerless_rows_and_missing_final_newline(real: dict[str, DatasetDict], shared_glue_data: Path) -> None:
    dev_file = shared_glue_data / "CoLA" / "dev.tsv"
    assert not dev_file.read_bytes().endswith(b"\n")
    dev_rows = raw_rows(dev_file)
    assert real["cola"]["validation"]["sentence"] == [row[3] for row in dev_rows]
    assert real["cola"]["validation"][-1] == {"sentence": dev_rows[-1][3], "label": int(dev_rows[-1][1]), "idx": 1042}
    first = real["cola"]["train"][0]
    assert raw_rows(shared_glue_data / "CoLA" / "train.tsv")[0][1] == "1"
    assert real["cola"]["train"].features["label"].int2str(first["label"]) == "acceptable"
    test_rows = raw_rows(shared_glue_data / "CoLA" / "test.tsv")[1:]
    assert real["cola"]["test"]["idx"] == [int(row[0]) for row in test_rows]
    assert real["cola"]["test"]["sentence"] == [row[1] for row in test_rows]


def test_rte_string_labels_map_to_hub_ids(real: dict[str, DatasetDict], shared_glue_data: Path) -> None:
    rows = raw_rows(shared_glue_data / "RTE" / "train.tsv")[1:]
    assert rows[0][3] == "not_entailment"
    assert real["rte"]["train"][0]["label"] == 1
    assert real["rte"]["train"]["label"] == [["entailment", "not_entailment"].index(row[3]) for row in rows]
    assert real["rte"]["train"]["sentence1"] == [row[1] for row in rows]


def test_stsb_float_scores_and_file_idx(real: dict[str, DatasetDict], shared_glue_data: Path) -> None:
    rows = raw_rows(shared_glue_data / "STS-B" / "train.tsv")[1:]
    train = real["stsb"]["train"]
    assert rows[0][-1] == "5.000"
    assert train[0] == {"sentence1": rows[0][7], "sentence2": rows[0][8], "label": 5.0, "idx": int(rows[0][0])}
    assert train["label"] == pytest.approx([float(row[-1]) for row in rows])
    assert real["stsb"]["test"]["label"] == [-1.0] * 1379


# ---- small files in the GLUE layout, for the tasks not in shared/glue_data ---------------------------------------


def test_qqp_quirks_stay_text(tmp_path: Path) -> None:
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
    write_tsv(tmp_path / "QQP" / "train.tsv", [header, '5\t1\t2\tWhat is "this?\tNA\t0', "9\t3\t4\tnull\tWhy?\t1"])
    write_tsv(tmp_path / "QQP" / "dev.tsv", [header, "3\t5\t6\tA\tB\t1"], final_newline=False)
    write_tsv(tmp_path / "QQP" / "test.tsv", ["id\tquestion1\tquestion2", "0\tHow?\tnull", '1\tNA\t"x'])
    dataset = load_glue_task("qqp", tmp_path)
    assert list(dataset) == ["train", "validation", "test"]
    assert dataset["train"].features == hub_features("qqp")
    assert dataset["train"].to_list() == [
        {"question1": 'What is "this?', "question2": "NA", "label": 0, "idx": 0},
        {"question1": "null", "question2": "Why?", "label": 1, "idx": 1},
    ]
    assert dataset["validation"].to_list() == [{"question1": "A", "question2": "B", "label": 1, "idx": 0}]
    assert dataset["test"].to_list() == [
        {"question1": "How?", "question2": "null", "label": -1, "idx": 0},
        {"question1": "NA", "question2": '"x', "label": -1, "idx": 1},
    ]


def test_mnli_split_names_and_absent_splits(tmp_path: Path) -> None:
    parses = "\t".join(["(a)", "(b)", "(ROOT a)", "(ROOT b)"])
    base = "index\tpromptID\tpairID\tgenre\t" + "\t".join(
        ["sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse", "sentence2_parse"]
    )
    write_tsv(
        tmp_path / "MNLI" / "train.tsv",
        [
            base + "\tsentence1\tsentence2\tlabel1\tgold_label",
            f"0\t1\t1n\tfiction\t{parses}\tA premise.\tA hypothesis. \tneutral\tneutral",
            f"1\t2\t2c\tslate\t{parses}\tNA\tnull\tcontradiction\tcontradiction",
        ],
    )
    write_tsv(
        tmp_path / "MNLI" / "dev_matched.tsv",
        [
            base + "\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label",
            f"4\t3\t3e\ttravel\t{parses}\tP\tH\tentailment\tentailment\tneutral\tentailment\tentailment\tentailment",
        ],
    )
    write_tsv(
        tmp_path / "MNLI" / "test_mismatched.tsv",
        [
            base + "\tsentence1\tsentence2",
            f"0\t4\t4\tletters\t{parses}\tP0\tH0",
            f"1\t5\t5\tverbatim\t{parses}\tP1\tH1",
        ],
        final_newline=False,
    )
    dataset = load_glue_task("MNLI", tmp_path)
    assert list(dataset) == ["train", "validation_matched", "test_mismatched"]
    assert all(ds.features == hub_features("mnli") for ds in dataset.values())
    assert dataset["train"].to_list() == [
        {"premise": "A premise.", "hypothesis": "A hypothesis. ", "label": 1, "idx": 0},
        {"premise": "NA", "hypothesis": "null", "label": 2, "idx": 1},
    ]
    assert dataset["validation_matched"].to_list() == [{"premise": "P", "hypothesis": "H", "label": 0, "idx": 4}]
    assert dataset["test_mismatched"]["label"] == [-1, -1]
    assert dataset["test_mismatched"]["premise"] == ["P0", "P1"]


def test_qnli_byte_order_mark_and_string_labels(tmp_path: Path) -> None:
    header = "index\tquestion\tsentence\tlabel"
    rows = ['0\tWhat "is it?\tIt is.\tentailment', "1\tNA?\tnull\tnot_entailment"]
    write_tsv(tmp_path / "QNLI" / "train.tsv", [header, *rows], bom=True)
    write_tsv(tmp_path / "QNLI" / "test.tsv", ["index\tquestion\tsentence", "0\tQ\tS"], bom=True, final_newline=False)
    dataset = load_glue_task("qnli", tmp_path)
    assert list(dataset) == ["train", "test"]
    assert dataset["train"].features == hub_features("qnli")
    assert dataset["train"].to_list() == [
        {"question": 'What "is it?', "sentence": "It is.", "label": 0, "idx": 0},
        {"question": "NA?", "sentence": "null", "label": 1, "idx": 1},
    ]
    assert dataset["test"].to_list() == [{"question": "Q", "sentence": "S", "label": -1, "idx": 0}]


def test_wnli_digit_labels_follow_hub_order(tmp_path: Path) -> None:
    write_tsv(tmp_path / "WNLI" / "dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tA\tB\t1", "1\tC\tD\t0"])
    dataset = load_glue_task("wnli", tmp_path)
    labels = dataset["validation"].features["label"]
    assert [labels.int2str(label) for label in dataset["validation"]["label"]] == ["entailment", "not_entailment"]


def test_ax_reads_the_diagnostic_file_as_test(tmp_path: Path) -> None:
    write_tsv(
        tmp_path / "diagnostic" / "diagnostic.tsv",
        ["index\tsentence1\tsentence2", '0\tThe cat sat.\tThe "cat sat.', "1\tNA\tnull"],
        final_newline=False,
    )
    dataset = load_glue_task("ax", tmp_path)
    assert list(dataset) == ["test"]
    assert dataset["test"].features == hub_features("ax")
    assert dataset["test"].to_list() == [
        {"premise": "The cat sat.", "hypothesis": 'The "cat sat.', "label": -1, "idx": 0},
        {"premise": "NA", "hypothesis": "null", "label": -1, "idx": 1},
    ]


def test_windows_line_endings_do_not_leak_into_fields(tmp_path: Path) -> None:
    path = tmp_path / "RTE" / "dev.tsv"
    path.parent.mkdir()
    path.write_bytes(b"index\tsentence1\tsentence2\tlabel\r\n0\tA\tB\tentailment\r\n")
    assert load_glue_task("rte", tmp_path)["validation"].to_list() == [
        {"sentence1": "A", "sentence2": "B", "label": 0, "idx": 0}
    ]


# ---- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_name", "file_name", "lines", "bad_line", "expected"),
    [
        ("rte", "RTE/train.tsv", ["index\ts1\ts2\tlabel", "0\tA\tB\tentailment", "1\tA\tB"], 3, "expected 4"),
        ("rte", "RTE/dev.tsv", ["index\ts1\ts2\tlabel", "0\tA\tB\tmaybe"], 2, "entailment, not_entailment"),
        ("cola", "CoLA/train.tsv", ["gj04\t1\t\tOK.", "gj04\t1\tA tab\tin\ttext."], 2, "expected 4"),
        ("stsb", "STS-B/dev.tsv", ["\t".join("abcdefghij"), "0\t1\t2\t3\t4\t5\t6\tA\tB\tfive"], 2, "float"),
        ("qnli", "QNLI/test.tsv", ["index\tquestion\tsentence", "0\tQ\tS", "x\tQ\tS"], 3, "integer index"),
        ("sst2", "SST-2/train.tsv", ["sentence\tlabel", "fine\t1", "", "more\t0"], 3, "expected 2"),
        ("stsb", "STS-B/dev.tsv", ["\t".join("abcdefghij"), "0\t1\t2\t3\t4\t5\t6\tA\tB\tnan"], 2, "in [0, 5]"),
        ("stsb", "STS-B/train.tsv", ["\t".join("abcdefghij"), "0\t1\t2\t3\t4\t5\t6\tA\tB\t5.5"], 2, "'5.5'"),
        # Headers: a lost header line, a header with too few fields, one that disagrees with every row.
        ("rte", "RTE/train.tsv", ["0\tA\tB\tentailment", "1\tC\tD\tnot_entailment"], 1, "lost its header"),
        ("mrpc", "MRPC/dev.tsv", ["1\t7\t8\tA\tB", "0\t9\t10\tC\tD"], 1, "lost its header"),
        ("sst2", "SST-2/test.tsv", ["0\tfine", "1\tmore"], 1, "lost its header"),
        ("stsb", "STS-B/test.tsv", ["0\t1\t2\t3\t4\t5\t6\tA\tB", "1\t1\t2\t3\t4\t5\t6\tC\tD"], 1, "lost its header"),
        ("rte", "RTE/dev.tsv", ["index\ts1\ts2", "0\tA\tB\tentailment"], 1, "header has 3 tab-separated fields"),
        (
            "rte",
            "RTE/train.tsv",
            ["index\ts1\ts2\tlabel\tx", "0\tA\tB\tentailment", "1\tC\tD\tentailment"],
            1,
            "every row has 4",
        ),
    ],
)
def test_malformed_row_names_file_and_line(
    tmp_path: Path, task_name: str, file_name: str, lines: list[str], bad_line: int, expected: str
) -> None:
    path = write_tsv(tmp_path / file_name, lines)
    with pytest.raises(GlueDataError) as error:
        load_glue_task(task_name, tmp_path)
    message = str(error.value)
    assert f"{path.resolve()}, line {bad_line}:" in message
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("task_name", "file_name", "lines", "bad_line"),
    [
        ("rte", "RTE/test.tsv", ["index\tsentence1\tsentence2", "0\tA\tB", "2\tC\tD", "1\tE\tF"], 3),
        ("qqp", "QQP/test.tsv", ["id\tquestion1\tquestion2", "1\tHow?\tWhy?"], 2),
        ("ax", "diagnostic/diagnostic.tsv", ["index\tsentence1\tsentence2", "0\tA\tB", "0\tC\tD"], 3),
    ],
)
def test_a_test_file_not_numbered_in_file_order_is_refused(
    tmp_path: Path, task_name: str, file_name: str, lines: list[str], bad_line: int
) -> None:
    """Leaderboard files number their rows 0..n-1 in file order: another index would misnumber every prediction."""
    path = write_tsv(tmp_path / file_name, lines)
    with pytest.raises(GlueDataError, match=f"{path.resolve()}, line {bad_line}: index .* misnumbered"):
        load_glue_task(task_name, tmp_path, splits=get_task(task_name).test_splits)


def test_missing_task_folder_and_unknown_task(tmp_path: Path) -> None:
    with pytest.raises(GlueDataError, match="MNLI"):
        load_glue_task("mnli", tmp_path)
    (tmp_path / "MNLI").mkdir()
    with pytest.raises(GlueDataError, match="dev_matched.tsv"):
        load_glue_task("mnli", tmp_path)
    with pytest.raises(ValueError, match="Unknown GLUE task 'squad'"):
        load_glue_task("squad", tmp_path)


@pytest.mark.parametrize(
    ("file_name", "text", "expected"),
    [
        ("RTE/train.tsv", b"", "the file is empty"),
        ("RTE/train.tsv", b"\xef\xbb\xbf", "the file is empty"),
        ("RTE/dev.tsv", b"index\tsentence1\tsentence2\tlabel\n", "only a header line"),
        ("CoLA/dev.tsv", b"", "the file is empty"),
    ],
)
def test_empty_or_header_only_file_names_the_file(tmp_path: Path, file_name: str, text: bytes, expected: str) -> None:
    path = tmp_path / file_name
    path.parent.mkdir()
    path.write_bytes(text)
    with pytest.raises(GlueDataError, match=f"^{path.resolve()}: {expected}") as error:
        load_glue_task(file_name.split("/")[0].lower(), tmp_path)
    assert "\n" not in str(error.value)


def test_cola_without_a_header_by_design_keeps_its_first_row(tmp_path: Path) -> None:
    write_tsv(tmp_path / "CoLA" / "train.tsv", ["gj04\t1\t\tFirst.", "gj04\t0\t*\tSecond."])
    assert load_glue_task("cola", tmp_path)["train"]["sentence"] == ["First.", "Second."]


def rte_folder(tmp_path: Path) -> Path:
    header = "index\tsentence1\tsentence2\tlabel"
    write_tsv(tmp_path / "RTE" / "train.tsv", [header, "0\tA\tB\tentailment"])
    write_tsv(tmp_path / "RTE" / "dev.tsv", [header, "0\tC\tD\tnot_entailment"])
    return tmp_path


def test_only_the_splits_asked_for_are_read(tmp_path: Path) -> None:
    (rte_folder(tmp_path) / "RTE" / "test.tsv").write_bytes(b"")  # broken, but a train+eval run never reads it
    dataset = load_glue_task("rte", tmp_path, splits=["train", "validation"])
    assert list(dataset) == ["train", "validation"]
    assert list(load_glue_task("rte", tmp_path, splits="validation")) == ["validation"]
    with pytest.raises(GlueDataError, match="test.tsv: the file is empty"):
        load_glue_task("rte", tmp_path)  # every split: the empty test file is read, and refused


def test_a_split_asked_for_must_be_there(tmp_path: Path) -> None:
    rte_folder(tmp_path)
    folder = tmp_path / "RTE"
    with pytest.raises(
        GlueDataError,
        match=f"^rte has no test split: test.tsv not found in {folder}; add the file, or run without the stage",
    ):
        load_glue_task("rte", tmp_path, splits=["train", "test"])
    with pytest.raises(ValueError, match="^rte has no split validation_matched: choose from train, validation, test"):
        load_glue_task("rte", tmp_path, splits=["validation_matched"])


def test_required_and_missing_splits(tmp_path: Path) -> None:
    assert required_splits("rte", do_train=True, do_eval=True, do_predict=False) == ["train", "validation"]
    assert required_splits("mnli", do_train=False, do_eval=True, do_predict=True) == [
        "validation_matched",
        "validation_mismatched",
        "test_matched",
        "test_mismatched",
    ]
    assert required_splits("ax", do_train=True, do_eval=True, do_predict=True) == ["test"]
    rte_folder(tmp_path)
    assert missing_splits("rte", tmp_path, ["train", "validation"]) == []
    assert missing_splits("rte", tmp_path, ["train", "validation", "test"]) == ["test"]
    assert missing_splits("mnli", tmp_path, ["train", "validation_matched"]) == ["train", "validation_matched"]
    assert missing_splits("rte", None, ["test"]) == []  # the Hub has every split
    with pytest.raises(ValueError, match="rte has no split dev"):
        missing_splits("rte", tmp_path, ["dev"])


# ---- caching and the Hub ------------------------------------------------------------------------------------------


def sentence1_length(row: dict) -> dict:
    """A stand-in for tokenization: `.map()` caches it under the dataset's fingerprint and the function's hash."""
    return {"length": len(row["sentence1"])}


def test_second_load_and_map_come_from_cache_and_edits_are_reread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = "index\tsentence1\tsentence2\tlabel"
    path = write_tsv(tmp_path / "RTE" / "train.tsv", [header, "0\tA\tB\tentailment"])
    first = load_glue_task("rte", tmp_path)["train"]
    first_mapped = first.map(sentence1_length)
    assert first.cache_files and first_mapped.cache_files

    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read again instead of the cache"))
        second = load_glue_task("rte", tmp_path)["train"]
    assert second.cache_files == first.cache_files
    assert second.map(sentence1_length).cache_files == first_mapped.cache_files

    write_tsv(path, [header, "0\tA\tB\tentailment", "1\tC\tD\tnot_entailment"])
    edited = load_glue_task("rte", tmp_path)["train"]
    assert edited.cache_files != first.cache_files
    assert edited["sentence1"] == ["A", "C"]


def test_the_cache_is_keyed_on_content_not_size_and_mtime(tmp_path: Path) -> None:
    header = "index\tsentence1\tsentence2\tlabel"
    path = write_tsv(tmp_path / "RTE" / "train.tsv", [header, "0\tA\tB\tentailment"])
    stat = path.stat()
    assert load_glue_task("rte", tmp_path)["train"]["label"] == [0]
    write_tsv(path, [header, "0\tX\tY\tentailment"])  # same size, other text
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as a copy that keeps timestamps would leave it
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert load_glue_task("rte", tmp_path)["train"]["sentence1"] == ["X"]


def test_a_file_changed_while_loading_is_refused(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "RTE" / "train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tA\tB\tentailment"])
    with pytest.raises(GlueDataError, match="changed while it was being loaded"):
        list(data._read_rows(str(path), "0" * 64, get_task("rte"), "train"))


def test_without_data_dir_loads_the_hub_config(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(data, "load_dataset", lambda *args, **kwargs: calls.append((*args, kwargs)) or DatasetDict())
    assert isinstance(load_glue_task("AX"), DatasetDict)
    load_glue_task("SST-2", overwrite_cache=True)
    assert calls == [
        ("nyu-mll/glue", "ax", {"download_mode": None}),
        ("nyu-mll/glue", "sst2", {"download_mode": DownloadMode.FORCE_REDOWNLOAD}),
    ]
