"""Fixtures of the training tests."""
from __future__ import annotations

import argparse
import ast
import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def openrlhf_parser():
    """``openrlhf_parser("train_sft")``: the parser built in that openrlhf.cli module's main block, from the
    installed (pinned) source, without running it: the modules themselves import GPU-only packages."""
    def build(module: str) -> argparse.ArgumentParser:
        spec = importlib.util.find_spec("openrlhf")
        if spec is None:
            pytest.skip("openrlhf (installed with --no-deps) is absent")
        path = Path(spec.origin).parent / "cli" / f"{module}.py"
        tree = ast.parse(path.read_text())
        main = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
        body = []
        for statement in main.body:
            if "parse_args" in ast.unparse(statement):
                break
            body.append(statement)
        namespace = {"argparse": argparse, "datetime": __import__("datetime").datetime}
        exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
        return namespace["parser"]

    return build
