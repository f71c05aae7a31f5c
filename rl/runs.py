"""Run folders of the training stages: a folder belongs to one config, and a rerun of that config resumes in it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path


class RunFolderError(ValueError):
    """An output folder that holds a different run."""


def claim(out: Path, spec: dict, overwrite: bool, what: str) -> None:
    """Claim ``out`` for the run described by ``spec``, or resume the run of the same spec already there."""
    text = json.dumps(spec, sort_keys=True)
    marker = out / "run.json"
    if marker.exists() and marker.read_text() != text:
        if not overwrite:
            raise RunFolderError(f"{out} holds a {what} run of another config; pass --overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(text)


def fingerprint(path: str) -> str | list:
    """A model folder's files with their sizes and modification times, so a rebuilt model starts a new run."""
    folder = Path(path)
    if not folder.is_dir():
        return path  # a hub name
    return [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(folder.iterdir()) if f.is_file()]
