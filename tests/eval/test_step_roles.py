"""eval/step_roles.py reads each role of a step at the token that plays it, on the tiny world's held-out traces."""
from __future__ import annotations

import pytest

from longshort.eval.step_roles import ROLES, held_out_steps, role_accuracy


def test_each_role_is_read_at_its_own_token(tiny_config):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_config.long.path)
    seen: dict[str, set[str]] = {role: set() for role in ROLES}
    for ids, marks in held_out_steps(tiny_config, tokenizer, 20):
        for position, role in marks:
            seen[role].add(tokenizer.decode([ids[position]]))
    digits = set("0123456789")
    assert seen["label"] <= {f"op{k}:" for k in range(1, tiny_config.tiny.max_ops + 1)}
    assert seen["op"] == {" +", " -", " *"} and seen["op again"] == {"+", "-", "*"}
    assert seen["operand"] | seen["operand again"] | seen["value"] | seen["result"] <= digits
    assert seen["equals"] == {"="} and seen["end"] == {"."} and seen["space"] == {" "}


def test_role_accuracy_is_a_share_per_role(tiny_config):
    accuracy = role_accuracy(tiny_config, 5)
    assert list(accuracy) == list(ROLES)
    assert all(0.0 <= share <= 1.0 for share in accuracy.values())
    assert accuracy["equals"] == 1.0  # a format token every trained model writes


@pytest.mark.heavy
def test_the_learning_curve_probes_every_n_steps_without_changing_the_model_it_measures(tmp_path, small_world):
    from longshort.data.tiny_world import build
    from longshort.eval.step_roles import learning_curve

    config = small_world(tmp_path / "plain", 0)
    rows = learning_curve(config, 4, 5, tmp_path / "probed", print_row=lambda row: None)
    assert [row["step"] for row in rows] == [4, 8, 12]
    assert all(set(ROLES) <= set(row) and all(0.0 <= row[role] <= 1.0 for role in ROLES) for row in rows)
    build(config, log=lambda *_: None)
    for agent in ("long", "short"):
        weights = [(tmp_path / world / agent / "model.safetensors").read_bytes() for world in ("probed", "plain")]
        assert weights[0] == weights[1]
