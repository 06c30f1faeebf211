import pytest

from {{ cookiecutter.package }}.acquisition import samples

EXPECTED = {"elpv": {"defective": 821, "functional": 1803}, "digits": {str(d): None for d in range(10)}}


@pytest.mark.bake
@pytest.mark.parametrize("name", samples.available())
def test_bundled_sample_is_written_as_class_folders_once(name, tmp_path):
    dest = samples.materialize(name, tmp_path / name)
    counts = {p.name: sum(1 for _ in p.iterdir()) for p in dest.iterdir() if p.is_dir()}
    assert set(counts) == set(EXPECTED[name])
    for label, count in EXPECTED[name].items():
        assert count is None or counts[label] == count, label
    marker = (dest / ".complete").stat().st_mtime_ns
    samples.materialize(name, tmp_path / name)
    assert (dest / ".complete").stat().st_mtime_ns == marker


@pytest.mark.bake
def test_unknown_sample_lists_the_available_ones(tmp_path):
    with pytest.raises(ValueError, match="Unknown sample 'nope'"):
        samples.materialize("nope", tmp_path)
