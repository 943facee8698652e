"""What ``--reload`` watches: the ``.py`` files a developer edits, not caches or virtualenvs."""

from __future__ import annotations

from pathlib import Path

from ferryman.cli.supervisor import source_files


def test_reload_watches_python_files_but_not_caches_hidden_directories_or_virtualenvs(
    tmp_path: Path,
) -> None:
    files = {
        "app.py": True,
        "pkg/module.py": True,
        "pkg/data.json": False,
        "pkg/__pycache__/module.cpython-311.py": False,
        ".git/hooks/hook.py": False,
        "node_modules/x/y.py": False,
        "venv/lib/site.py": False,
    }
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    found = {str(path.relative_to(tmp_path.resolve())) for path in source_files([tmp_path])}
    assert found == {name for name, watched in files.items() if watched}


def test_overlapping_roots_list_each_file_once(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("")
    found = list(source_files([tmp_path, tmp_path / "pkg"]))
    assert len(found) == len(set(found)) == 1
