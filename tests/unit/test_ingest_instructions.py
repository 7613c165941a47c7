from pathlib import Path

from benchmarks.ingest_instructions import dumped_counts


def _write(path: Path, total: int) -> None:
    path.write_text(f"version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: {total}\n")


def test_counts_are_read_by_dump_and_thread(tmp_path: Path) -> None:
    out = tmp_path / "observed-abc123.out"
    _write(tmp_path / "observed-abc123.out.1-01", 1_000)
    _write(tmp_path / "observed-abc123.out.1-02", 20)
    _write(tmp_path / "observed-abc123.out.2-01", 30)
    _write(tmp_path / "observed-abc123.out-01", 5)  # the dump at exit: not a window
    _write(tmp_path / "callscope-def456.out.1-01", 7)  # another target's

    assert dumped_counts(out) == {(1, 1): 1_000, (1, 2): 20, (2, 1): 30}
