"""Each kind of source becomes the same rows: folders (plain or split), CSV manifests, URL lists."""

import pytest
from PIL import Image

from {{ cookiecutter.package }}.acquisition import sources
from {{ cookiecutter.package }}.core.errors import DataError


def images(folder, count, prefix="img"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(folder / f"{prefix}_{i}.png")


def test_class_folders_at_any_depth(tmp_path):
    images(tmp_path / "cat", 2)
    images(tmp_path / "dog" / "2024" / "june", 3)
    (tmp_path / ".git").mkdir()
    rows = list(sources.folder_rows(tmp_path))
    assert sorted(r["label"] for r in rows) == ["cat"] * 2 + ["dog"] * 3
    assert {r["given_split"] for r in rows} == {""}
    assert "dog/2024/june/img_0.png" in {r["origin"] for r in rows}


@pytest.mark.parametrize("val_name", ["val", "valid", "validation"])
def test_split_folders_are_honoured(tmp_path, val_name):
    for split, name in (("train", "train"), ("val", val_name), ("test", "test")):
        images(tmp_path / name / "cat", 2, split)
        images(tmp_path / name / "dog", 2, split)
    rows = list(sources.folder_rows(tmp_path))
    assert {(r["given_split"], r["path"].split("/")[-1].split("_")[0]) for r in rows} == {
        ("train", "train"),
        ("val", "val"),
        ("test", "test"),
    }
    assert {r["label"] for r in rows} == {"cat", "dog"}


def test_split_folders_mixed_with_class_folders_is_an_error(tmp_path):
    images(tmp_path / "train" / "cat", 2)
    images(tmp_path / "dog", 2)
    with pytest.raises(DataError, match="mixes split folders"):
        list(sources.folder_rows(tmp_path))


def test_a_single_class_folder_is_an_error(tmp_path):
    images(tmp_path / "only", 3)
    with pytest.raises(DataError, match="1 class sub-folder"):
        list(sources.folder_rows(tmp_path))


def test_csv_manifest_paths_are_relative_to_the_csv(tmp_path):
    images(tmp_path / "pics", 3)
    manifest = tmp_path / "lists" / "labels.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "path,label,split\n../pics/img_0.png,cat,train\n../pics/img_1.png,dog,Valid\n../pics/img_2.png,dog,\n"
    )
    assert sources.detect(manifest).kind == "csv"
    rows = list(sources.csv_rows(manifest))
    assert [r["label"] for r in rows] == ["cat", "dog", "dog"]
    assert [r["given_split"] for r in rows] == ["train", "val", ""]
    assert all((manifest.parent / r["origin"]).resolve().is_file() for r in rows)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,label\na.png,\n", "line 2: 'path' and 'label'"),
        ("path,label,split\na.png,cat,holdout\n", "line 2: split"),
    ],
)
def test_csv_manifest_errors_name_the_line(tmp_path, text, message):
    manifest = tmp_path / "labels.csv"
    manifest.write_text(text)
    with pytest.raises(DataError, match=message):
        list(sources.csv_rows(manifest))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("urls.tsv", "url\tlabel\nhttp://x/a.jpg\tcat\nhttps://x/b.jpg\tdog\n"),
        ("urls.csv", "http://x/a.jpg,cat\nhttps://x/b.jpg,dog\n"),
    ],
)
def test_url_lists_with_or_without_header(tmp_path, name, text):
    url_list = tmp_path / name
    url_list.write_text(text)
    assert sources.detect(url_list).kind == "urls"
    assert sources.url_entries(url_list) == [("http://x/a.jpg", "cat"), ("https://x/b.jpg", "dog")]


def test_an_unknown_or_missing_source_says_what_is_accepted(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        sources.detect(tmp_path / "nope")
    (tmp_path / "notes.csv").write_text("name,colour\n")
    with pytest.raises(DataError, match="neither a CSV manifest"):
        sources.detect(tmp_path / "notes.csv")
