"""The cluster install resolves: pip's resolver, asked about PyPI, finds versions of ``longshort[gpu,train]`` that
install together on Linux x86_64 once flash-attn is built (it has no wheel on PyPI; the README's recipe builds it
against the torch vLLM pins first). Nothing is installed; pip reads package metadata only."""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.network


def built_flash_attn(folder: Path, version: str) -> Path:
    """A wheel carrying flash-attn's name, version and requirements (torch, einops): what the recipe's build step
    leaves in its wheel folder, without the CUDA kernels, which the resolver never reads."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"flash_attn-{version}.dist-info"
    path = folder / f"flash_attn-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: flash-attn\nVersion: {version}\n"
                                           "Requires-Dist: torch\nRequires-Dist: einops\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: longshort-test\nRoot-Is-Purelib: true\n"
                                        "Tag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return folder


def recipe() -> str:
    """The install commands of the README's cluster recipe."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("**Cluster recipe"):]
    return section[section.index("```bash"):section.index("```", section.index("```bash") + 7)]


def test_the_cluster_install_resolves_on_pypi(tmp_path):
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("the cluster install is for Linux x86_64, where the resolver is asked about this machine")
    if int(__import__("pip").__version__.split(".")[0]) < 24:
        pytest.skip("pip older than 24 downloads whole wheels to read their metadata (make install upgrades it)")
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=15).close()
    except OSError as e:
        pytest.skip(f"PyPI cannot be reached: {e}")
    commands = recipe()
    pins = dict(re.findall(r"([a-z-]+)==([\w.]+)", commands))
    wheels = built_flash_attn(tmp_path / "wheels", pins["flash-attn"])
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", str(report), "--find-links", str(wheels), "--only-binary", "flash-attn",
                           f"torch=={pins['torch']}", f"{REPO}[gpu,train]"],
                          capture_output=True, text=True, env=env, timeout=900)
    if done.returncode and ("NewConnectionError" in done.stderr or "Max retries exceeded" in done.stderr):
        pytest.skip(f"PyPI stopped answering: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    assert chosen["vllm"] == "0.29.0" and chosen["openrlhf"] == "0.11.2" and chosen["deepspeed"] == "0.19.6"
    assert chosen["torch"] == pins["torch"] and chosen["flash-attn"] == pins["flash-attn"]
    assert chosen["transformers"] == "5.15.0"  # OpenRLHF's pin, inside longshort's range
    assert "--find-links wheels" in commands and "--no-build-isolation" in commands
