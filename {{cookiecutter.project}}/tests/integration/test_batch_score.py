"""The batch scorer never loses work: a row for every input (bad files get a reason), an output replaced only when
complete, ``--resume`` after a kill, CSVs read as acquisition reads them, shards that merge back into input order."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.images import png_header_only
from PIL import Image

from {{ cookiecutter.package }}.acquisition import sources
from {{ cookiecutter.package }}.core.errors import ConfigError, DataError
from {{ cookiecutter.package }}.core.images import load_batch
from {{ cookiecutter.package }}.deployment.predict import load_model, predict
from {{ cookiecutter.package }}.deployment.scoring import shards
from {{ cookiecutter.package }}.deployment.scoring.batch_score import decoded, input_items, score

PACKAGE = "{{ cookiecutter.package }}"


def run_score(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", PACKAGE, "score", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:  # a name's bytes, as the scorer
        return list(csv.DictReader(f))


def copy_images(tiny_images: Path, folder: Path) -> Path:
    folder.mkdir()
    for path in sorted(tiny_images.rglob("*.png")) + sorted(tiny_images.rglob("*.jpg")):
        shutil.copy(path, folder / path.name)
    return folder


def kill_when_stalled(args: list[str], stall: Path, partial: Path, written: int) -> None:
    """Run score with ``stall`` a named pipe (opening it blocks: the run cannot get past it), and kill it once
    ``partial`` holds ``written`` lines, as an interrupted run leaves it; ``stall`` is left a named pipe."""
    os.mkfifo(stall)
    command = [sys.executable, "-m", PACKAGE, "score", *args, "--workers", "2"]
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.read_bytes().count(b"\n") >= written) and time.monotonic() < deadline:
        assert killed.poll() is None, "the run ended before it reached the stalled file"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL


def mixed_folder(root: Path, tiny_images: Path) -> dict[str, str]:
    """Good images (two classes, PNG and JPEG, one 16-bit) and bad files; returns {name: expected error}."""
    root.mkdir()
    for path in sorted(tiny_images.rglob("*"))[::3]:
        if path.is_file():
            shutil.copy(path, root / path.name)
    good_png = next(tiny_images.rglob("*.png")).read_bytes()
    Image.fromarray(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60).save(root / "deep_16bit.png")
    Image.fromarray(np.zeros((1, 21_000), np.uint16)).save(root / "wide_16bit.png")  # over the 20,000 side limit
    (root / "random.png").write_bytes(np.random.default_rng(0).bytes(3000))
    (root / "truncated.png").write_bytes(good_png[: len(good_png) // 2])
    (root / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    (root / "empty.png").write_bytes(b"")
    expected = {path.name: "" for path in root.iterdir()}
    expected |= {
        "wide_16bit.png": "21000x1 pixels is over the limit",
        "random.png": "not an image",
        "truncated.png": "corrupt or truncated",
        "bomb.png": "40,000,000 pixels",  # refused from the header, before any decoding
        "empty.png": "empty file",
    }
    return expected


def test_a_folder_of_good_and_bad_files_gets_a_row_each_and_exits_0(exported_model, tiny_images, tmp_path):
    expected = mixed_folder(tmp_path / "mixed", tiny_images)
    assert len(png_header_only(100_000, 100_000)) == 45
    out = tmp_path / "scores.csv"
    result = run_score("--model", str(exported_model), "--input", str(tmp_path / "mixed"), "--output", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    n_errors = sum(1 for reason in expected.values() if reason)
    assert result.stdout.strip().splitlines()[-1] == f"scored {len(expected) - n_errors}, errors {n_errors}: {out}"
    rows = read_rows(out)
    assert list(rows[0]) == ["path", "prediction", "p_horizontal", "p_vertical", "error"]
    assert sorted(Path(row["path"]).name for row in rows) == sorted(expected)
    for row in rows:
        reason = expected[Path(row["path"]).name]
        assert (reason in row["error"]) if reason else row["error"] == "", (row, reason)
        assert (row["prediction"] == "") == bool(reason)
    good = [row for row in rows if not row["error"]]
    probs = predict(load_model(exported_model), load_batch([row["path"] for row in good], 32))
    scored = np.array([[float(row["p_horizontal"]), float(row["p_vertical"])] for row in good])
    np.testing.assert_allclose(scored, probs, atol=1.5e-6)
    assert not (tmp_path / "scores.csv.partial").exists()


def test_a_killed_run_keeps_the_earlier_output_and_resume_finishes_it(exported_model, tiny_images, tmp_path):
    """The second run stalls on a named pipe in the middle of the folder (deterministically mid-run) and is killed."""
    folder = tmp_path / "images"
    folder.mkdir()
    for copy in range(2):
        for path in sorted(tiny_images.rglob("*.png")) + sorted(tiny_images.rglob("*.jpg")):
            shutil.copy(path, folder / f"{copy}_{path.name}")
    names = sorted(p.name for p in folder.iterdir())
    stall = folder / names[len(names) // 2 + 1]
    out = tmp_path / "scores.csv"
    args = ["--model", str(exported_model), "--input", str(folder), "--output", str(out), "--batch-size", "4"]
    first = run_score(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    complete = out.read_bytes()

    image = stall.read_bytes()
    stall.unlink()
    partial = tmp_path / "scores.csv.partial"
    written = 1 + (len(names) // 2 + 1) // 4 * 4  # the header and every batch before the stalled one
    kill_when_stalled(args, stall, partial, written)
    assert out.read_bytes() == complete, "a killed run changed the earlier complete output"
    assert partial.read_bytes().count(b"\n") == written < len(names) + 1
    with partial.open("a") as f:
        f.write(f"{folder}/half-written-row.png,vert")  # as a kill in the middle of a write would leave it

    stall.unlink()
    stall.write_bytes(image)
    out.unlink()
    (folder / names[0]).write_bytes(b"changed after it was scored")  # resume keeps its row: it does not score again
    assert (tmp_path / "scores.csv.partial.json").is_file(), "the partial file has its record"
    resumed = run_score(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert out.read_bytes() == complete
    assert not partial.exists() and not (tmp_path / "scores.csv.partial.json").exists()


def with_int8_copy(exported_model: Path, to: Path) -> Path:
    """The model folder with an int8 file beside its fp32 one (the same bytes: only the precision differs)."""
    shutil.copytree(exported_model, to)
    shutil.copy(to / "model.onnx", to / "model.int8.onnx")
    return to


def another_export(exported_model: Path, to: Path) -> Path:
    """The same network in other bytes, as a registry alias moved to another version would give."""
    import onnx

    shutil.copytree(exported_model, to)
    graph = onnx.load(str(to / "model.onnx"))
    graph.doc_string = "another export"
    onnx.save(graph, str(to / "model.onnx"))
    return to


def test_resume_refuses_rows_of_another_precision_model_or_input(exported_model, tiny_images, tmp_path):
    """The header alone cannot tell: an fp32 and an int8 run, or two versions of a model, write the same columns."""
    model = with_int8_copy(exported_model, tmp_path / "model")
    folder = copy_images(tiny_images, tmp_path / "images")
    out, partial = tmp_path / "scores.csv", tmp_path / "scores.csv.partial"
    args = ["--model", str(model), "--input", str(folder), "--output", str(out), "--batch-size", "4"]
    kill_when_stalled(args, folder / "zz_stall.png", partial, 1 + 24)  # every image before the stalled one
    (folder / "zz_stall.png").unlink()
    kept = partial.read_bytes(), (tmp_path / "scores.csv.partial.json").read_bytes()

    refusals = [
        (["--precision", "int8"], "precision 'fp32' -> 'int8'"),
        (["--model", str(another_export(exported_model, tmp_path / "other"))], "model_sha256 "),
    ]
    for extra, names in refusals:
        result = run_score(*args, *extra, "--resume")
        assert result.returncode == 1, result.stderr[-3000:]
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: --resume: {partial} was written by another run (") and names in line, line
        assert line.endswith("or run again without --resume to start over."), line
        assert (partial.read_bytes(), (tmp_path / "scores.csv.partial.json").read_bytes()) == kept
        assert not out.exists()

    first = sorted(folder.iterdir())[0]
    first.unlink()  # the same settings, but the input changed under the rows already written
    with pytest.raises(DataError, match=f"row 1 of .* is for {str(first)!r}.*without --resume"):
        score(model, folder, out, resume=True, progress=False)
    assert not out.exists()


def test_a_file_name_that_is_not_utf8_is_scored_and_survives_resume_and_merge(exported_model, tiny_images, tmp_path):
    """Linux names are bytes: this one (Latin-1 'café') goes into the CSV as it is, and reads back the same."""
    folder = copy_images(tiny_images, tmp_path / "images")
    odd = os.fsencode(folder) + b"/caf\xe9.png"
    image = next(folder.glob("*.png")).read_bytes()
    with open(odd, "wb") as f:
        f.write(image)
    out = tmp_path / "scores.csv"
    args = ["--model", str(exported_model), "--input", str(folder), "--output", str(out), "--batch-size", "4"]
    result = run_score(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert b"/caf\xe9.png," in out.read_bytes()
    rows = read_rows(out)
    (row,) = [row for row in rows if row["path"] == os.fsdecode(odd)]
    assert row["prediction"] in ("horizontal", "vertical") and row["error"] == ""

    partial = tmp_path / "scores.csv.partial"
    complete = out.read_bytes()
    kill_when_stalled(args, folder / "zz_stall.png", partial, 1 + 24)
    (folder / "zz_stall.png").unlink()
    assert b"/caf\xe9.png," in partial.read_bytes()
    assert score(exported_model, folder, out, batch_size=4, resume=True, progress=False) == out
    assert [(r["path"], r["prediction"]) for r in read_rows(out)] == [(r["path"], r["prediction"]) for r in rows]

    sharded = tmp_path / "sharded.csv"
    for index in range(2):
        score(exported_model, folder, sharded, shard=f"{index}/2", progress=False)
    assert shards.merge(sharded) == (sharded, len(rows))
    assert [r["path"] for r in read_rows(sharded)] == [r["path"] for r in rows]
    assert complete.count(b"\xe9") == sharded.read_bytes().count(b"\xe9") == 1


def test_a_csv_from_a_spreadsheet_is_read_as_acquisition_reads_it(exported_model, tiny_images, tmp_path):
    """Byte-order mark, header in capitals, a blank line, a row without a path, a missing file, paths relative
    to the CSV; the same table is a valid acquisition manifest, read with the same parser."""
    images = sorted(tiny_images.rglob("*.png"))[:2]
    listing = tmp_path / "lists" / "to_score.csv"
    listing.parent.mkdir()
    lines = [" PATH ,Label", f"{os.path.relpath(images[0], listing.parent)},a", "", ",b", f"{images[1]},a"]
    lines += ["../nowhere.png,c"]
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    out = score(exported_model, listing, tmp_path / "scores.csv", progress=False)
    rows = read_rows(out)
    assert [row["path"] for row in rows] == [str(images[0]), "", str(images[1]), str(tmp_path / "nowhere.png")]
    assert [row["error"] for row in rows] == [
        "",
        f"{listing} line 4: no path in this row; fill in its 'path' column",
        "",
        "cannot read the file: No such file or directory",
    ]
    with pytest.raises(DataError, match="line 4: 'path' and 'label' must both be filled in"):
        list(sources.csv_rows(listing))
    listing.write_text("PATH,Label\n" + "\n".join(lines[1:3]) + "\n", encoding="utf-8-sig")
    assert [row["path"] for row in sources.csv_rows(listing)] == [str(listing.parent / lines[1].split(",")[0])]


def test_a_csv_without_a_path_column_is_refused(exported_model, tmp_path):
    (tmp_path / "list.csv").write_text("file\nx.png\n")
    with pytest.raises(DataError, match="needs a 'path' column.*reads \\['file'\\]"):
        score(exported_model, tmp_path / "list.csv", tmp_path / "out.csv")


def test_shards_merge_into_what_one_run_writes(exported_model, tiny_images, tmp_path):
    folder = tmp_path / "images"
    shutil.copytree(tiny_images, folder)
    (folder / "horizontal" / "broken.png").write_bytes(b"not a png")  # 25 inputs: parts of 9, 8 and 8 rows
    whole = read_rows(score(exported_model, folder, tmp_path / "whole.csv", batch_size=4, progress=False))
    out = tmp_path / "sharded" / "scores.csv"
    parts = [score(exported_model, folder, out, batch_size=4, shard=f"{i}/3", progress=False) for i in range(3)]
    assert [p.name for p in parts] == [f"scores.shard-{i}-of-3.csv" for i in range(3)]
    assert [len(read_rows(p)) for p in parts] == [9, 8, 8]
    records = [p.with_name(p.name + ".json") for p in parts]
    assert all(r.is_file() for r in records), "each part keeps its record until merged"
    assert shards.merge(out) == (out, 25)
    assert not any(r.exists() for r in records), "a merge removes the records of the parts it joined"
    merged = read_rows(out)
    assert [(r["path"], r["prediction"], r["error"]) for r in merged] == [
        (r["path"], r["prediction"], r["error"]) for r in whole
    ]
    for column in ("p_horizontal", "p_vertical"):
        np.testing.assert_allclose(
            [float(r[column] or "nan") for r in merged], [float(r[column] or "nan") for r in whole], atol=1.5e-6
        )

    parts[2].rename(shards.partial_path(parts[2]))  # as an interrupted shard leaves it
    result = subprocess.run(
        [sys.executable, "-m", PACKAGE, "merge", "--output", str(out)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: Shard 2/3 is unfinished (scores.shard-2-of-3.csv does not exist): run score --shard 2/3 --resume "
        "with the same --input and --output, then merge again."
    ]
    shards.partial_path(parts[2]).unlink()
    with pytest.raises(DataError, match="Shard 2/3 is missing"):
        shards.merge(out)
    assert read_rows(out) == merged, "a refused merge left the earlier output alone"


def test_the_launchers_environment_chooses_the_shard_of_the_command_only(
    exported_model, tiny_images, tmp_path, monkeypatch
):
    """``score()`` called from a program (the pipeline's step under torchrun or a Slurm array) scores everything;
    the command line reads the launcher's variables."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    every = [item.path for item in input_items(tiny_images)]
    whole = score(exported_model, tiny_images, tmp_path / "scores.csv", progress=False)
    assert whole == tmp_path / "scores.csv" and [row["path"] for row in read_rows(whole)] == every
    result = run_score("--model", str(exported_model), "--input", str(tiny_images), "--output", str(whole))
    assert result.returncode == 0, result.stderr[-3000:]
    part = tmp_path / "scores.shard-1-of-2.csv"
    assert [row["path"] for row in read_rows(part)] == every[1::2]

    assert shards.from_environment({"RANK": "0", "WORLD_SIZE": "1"}) is None  # torchrun on one process
    slurm = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert shards.from_environment(slurm) == shards.Shard(2, 4)
    assert shards.from_environment({"JOB_COMPLETION_INDEX": "3", "WORLD_SIZE": "5"}) == shards.Shard(3, 5)
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX='3', WORLD_SIZE=''.*set WORLD_SIZE"):
        shards.from_environment({"JOB_COMPLETION_INDEX": "3"})
    with pytest.raises(ConfigError, match="RANK='2', WORLD_SIZE='2'"):
        shards.from_environment({"RANK": "2", "WORLD_SIZE": "2"})


def test_merge_refuses_parts_of_another_precision_or_model(exported_model, tiny_images, tmp_path):
    model = with_int8_copy(exported_model, tmp_path / "model")
    out = tmp_path / "scores.csv"
    parts = [score(model, tiny_images, out, shard="0/2", progress=False)]
    parts.append(score(model, tiny_images, out, shard="1/2", precision="int8", progress=False))
    result = subprocess.run(
        [sys.executable, "-m", PACKAGE, "merge", "--output", str(out)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: scores.shard-0-of-2.csv and scores.shard-1-of-2.csv were scored differently (")
    assert "precision 'fp32' -> 'int8'" in line and "then merge again" in line, line
    assert not out.exists() and not shards.partial_path(out).exists()

    score(another_export(exported_model, tmp_path / "other"), tiny_images, out, shard="1/2", progress=False)
    with pytest.raises(DataError, match="scored differently \\(model_sha256 [0-9a-f]{12}… -> [0-9a-f]{12}…\\)"):
        shards.merge(out)
    score(model, tiny_images, out, shard="1/2", progress=False)
    assert shards.merge(out) == (out, 24)


@pytest.mark.parametrize(
    ("make", "args", "code", "message"),
    [
        (None, ["--shard", "3/2"], 2, "error: --shard 3/2: the index must be from 0 to the count minus 1"),
        (None, ["--shard", "half"], 2, "error: --shard 'half' is not i/n"),
        ("file", ["--output", "{tmp}/taken/scores.csv"], 2, "is a file, not a folder"),
        (None, ["--input", "{tmp}/nowhere"], 2, "error: --input '{tmp}/nowhere' does not exist"),
        (None, ["--batch-size", "0"], 2, "error: --batch-size 0: use a whole number of 1 or more"),
    ],
)
def test_bad_arguments_get_one_line_naming_the_parameter(
    exported_model, tiny_images, tmp_path, make, args, code, message
):
    if make == "file":
        (tmp_path / "taken").write_text("a file where a folder is expected")
    given = {"--model": str(exported_model), "--input": str(tiny_images), "--output": str(tmp_path / "s.csv")}
    given |= {args[0]: args[1].format(tmp=tmp_path)}
    result = run_score(*[part for pair in given.items() for part in pair])
    assert result.returncode == code
    assert len(result.stderr.strip().splitlines()) == 1 and message.format(tmp=tmp_path) in result.stderr


def test_decoding_runs_a_bounded_number_ahead_of_scoring():
    """Memory does not grow with the number of inputs: at most ``ahead`` are taken before the one in use."""
    taken = []

    def inputs():
        for number in range(1000):
            taken.append(number)
            yield number

    for used, (number, square, error) in enumerate(decoded(inputs(), lambda n: (n * n, ""), workers=3, ahead=10)):
        assert (number, square, error) == (used, used * used, "")
        assert len(taken) <= used + 10
    assert len(taken) == 1000
