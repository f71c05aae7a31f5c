"""Outputs a run owns: one writer at a time, and a resume that is the same run or none.

Every command that writes results (solve, chunk, score, eval, demo, coldstart, rl) claims its output before any
model loads. The claim

- checks the place: a JSONL output must not be a folder, a run folder must not be a file, and the folder that holds
  it must be writable; each failure is one sentence naming the path;
- locks it (``flock`` on ``<output>.lock``, or ``run.lock`` in a run folder) for as long as the run lives, so a
  second writer stops at once, naming the process that holds it; the kernel drops the lock when a process dies;
- fingerprints it: the settings that change results (config sections, model files, result-changing flags) go to
  ``<output>.run.json`` (``run.json`` in a folder). A rerun with the same settings resumes; one with other settings is
  refused, naming each key that differs, unless the output holds no results yet (or ``overwrite`` clears them).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


class RunError(ValueError):
    """An output that cannot be claimed: written by another process, holding another run, or not writable."""


@dataclass
class Claim:
    """An output held by this process; ``release`` (or leaving the ``with`` block) lets the next writer in."""

    path: Path
    lock: object  # the open lock file

    def release(self) -> None:
        self.lock.close()

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim(out: str | Path, spec: dict, what: str, folder: bool = False, overwrite: bool = False,
          hint: str = "write to another output, or delete it to start over") -> Claim:
    """Claim ``out`` (a JSONL file, or a run folder when ``folder``) for the run described by ``spec``."""
    out = Path(out)
    if folder and out.exists() and not out.is_dir():
        raise RunError(f"{out} is a file; the output of {what} is a folder")
    if not folder and out.is_dir():
        raise RunError(f"{out} is a folder; the output of {what} is a JSONL file")
    home = out if folder else out.parent
    if folder:
        lock_path, marker = out / "run.lock", out / "run.json"
    else:
        lock_path, marker = _beside(out, ".lock"), _beside(out, ".run.json")
    try:
        home.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "a+")
    except OSError as e:
        raise RunError(f"cannot write in {home}: {e.strerror or e}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise RunError(f"{out} is being written by another process (pid {holder})") from None
    try:
        _record_pid(lock)
        text = json.dumps({"command": what, **spec}, sort_keys=True)
        if marker.exists() and marker.read_text() != text and _holds_results(out, folder, {lock_path, marker}):
            if not overwrite:
                old = _read_spec(marker)
                changed = differences(old, json.loads(text))
                raise RunError(f"{out} holds a {old.get('command', what)} run with other settings "
                               f"({'; '.join(changed)}): {hint}")
            _clear(out, folder, keep={lock_path, marker})
        elif not marker.exists() and _holds_results(out, folder, {lock_path, marker}):
            raise RunError(f"{out} holds results of an unknown run (no {marker.name} beside them): {hint}")
        _write_atomically(marker, text)
    except OSError as e:
        lock.close()
        raise RunError(f"cannot write in {home}: {e.strerror or e}") from None
    except BaseException:
        lock.close()
        raise
    return Claim(out, lock)


def differences(old: dict, new: dict, shown: int = 6) -> list[str]:
    """``key: old -> new`` for each dotted key whose value differs (a list, such as a model's files, is one value),
    the first ``shown`` of them."""
    before, after = _flatten(old), _flatten(new)
    found = []
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key, "(none)"), after.get(key, "(none)")
        if a != b:
            long = any(isinstance(v, list) or len(str(v)) > 40 for v in (a, b))
            found.append(f"{key}: changed" if long else f"{key}: {a} -> {b}")
    if len(found) > shown:
        found = found[:shown] + [f"{len(found) - shown} more"]
    return found or ["the run record differs"]


def fingerprint(path: str) -> str | list:
    """A model folder's files with their sizes and modification times, so a rebuilt model starts a new run."""
    folder = Path(path)
    if not folder.is_dir():
        return path  # a hub name
    return [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(folder.iterdir()) if f.is_file()]


def model_settings(config, agents=("long", "short")) -> dict:
    """What of each agent's (or named baseline's) model changes results: where it is (checked to exist, naming the config key), its
    files, and how it is run. Placement (CPUs, GPUs, batch sizes, caches) is left out: it changes speed only."""
    from longshort.agents.hf_backend import check_model_path

    settings = {}
    for agent in agents:
        model, key = ((config.baselines[agent], f"baselines.{agent}.path") if agent in config.baselines
                      else (config.model(agent), f"{agent}.path"))
        check_model_path(model.path, f"{config.source}: {key}")
        settings[agent] = {"path": model.path, "files": fingerprint(model.path), "backend": model.backend,
                           "dtype": model.dtype, "max_context": model.max_context, "format": model.format,
                           "text": model.text.model_dump() if model.format == "text" else None}
    return settings


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _record_pid(lock) -> None:
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()


def _read_spec(marker: Path) -> dict:
    try:
        found = json.loads(marker.read_text())
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _holds_results(out: Path, folder: bool, own: set[Path]) -> bool:
    if folder:
        return any(entry not in own for entry in out.iterdir())
    return out.exists() and out.stat().st_size > 0


def _clear(out: Path, folder: bool, keep: set[Path]) -> None:
    if not folder:
        out.unlink()
        return
    for entry in out.iterdir():
        if entry in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _write_atomically(path: Path, text: str) -> None:
    partial = _beside(path, ".tmp")
    partial.write_text(text)
    partial.replace(path)


def _flatten(data, prefix: str = "") -> dict:
    if not isinstance(data, dict):
        return {prefix: data}
    flat = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}"))
    return flat
