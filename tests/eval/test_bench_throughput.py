"""The throughput benchmark's accounting, on a tiny random Qwen2 on the CPU: concurrency from the KV budget, the
tokens every mode generates and prefills, and the ratios."""
from __future__ import annotations

import json

import pytest


def test_peak_context_of_each_memory_policy():
    from longshort.eval.bench_throughput import peak_context, segments

    assert segments(20, 8) == [8, 8, 4]
    assert peak_context("unfold", 10, 20, 8, 3) == 30
    assert peak_context("fold-restart", 10, 20, 8, 3) == 10 + 3 + 8 + 3  # a summary in, a segment and its summary
    assert peak_context("fold-append", 10, 20, 8, 3) == max(10 + 8 + 3, 10 + 3 + 8 + 3, 10 + 6 + 4)
    assert peak_context("fold-append", 10, 40, 8, 3) == 10 + 3 * 3 + 8 + 3  # the 4th of 5 segments


def test_every_mode_writes_the_same_reasoning_and_pays_its_re_prefills(tmp_path):
    from longshort.eval.bench_throughput import MODES, main

    kv = 2 * 2 * 2 * 16 * 4  # the tiny shape: 2 layers, 2 KV heads of 16 dims, float32 keys and values
    budget_tokens = 3 * 22  # 3 sequences of the folded modes' peak (22 tokens), 2 of unfold's (28)
    result = main(["--shape", "tiny", "--problems", "6", "--prompt", "8", "--reasoning", "20", "--segment", "8",
                   "--summary", "3", "--kv-budget-gb", str(budget_tokens * kv / 2**30),
                   "--output", str(tmp_path / "tp.json")])
    assert json.loads((tmp_path / "tp.json").read_text()) == result
    assert result["kv_bytes_per_token"] == kv
    assert [(r["decode"], r["mode"]) for r in result["rows"]] == [("dynamic", m) for m in MODES]
    rows = {r["mode"]: r for r in result["rows"]}
    assert {m: r["concurrency"] for m, r in rows.items()} == {"unfold": 2, "fold-restart": 3, "fold-append": 3}
    assert {m: r["peak_context"] for m, r in rows.items()} == {"unfold": 28, "fold-restart": 22, "fold-append": 22}
    assert all(r["reasoning"] == 6 * 20 for r in rows.values())
    assert rows["unfold"]["generated"] == 120 and rows["fold-restart"]["generated"] == 6 * (20 + 2 * 3)
    assert rows["unfold"]["prefill"] == 6 * 8
    assert rows["fold-restart"]["prefill"] == 6 * (8 + 11 + 11)  # each restart prefills the prompt and a summary
    assert rows["fold-append"]["prefill"] == 6 * (8 + 11 + 14)  # ... or every summary so far
    assert rows["unfold"]["calls"] == 3 and rows["fold-restart"]["calls"] == 2 * 3  # waves x segments
    for r in rows.values():
        assert r["planned_kv_bytes"] <= budget_tokens * kv
        assert r["speedup_vs_unfold"] == pytest.approx(r["reasoning_tok_s"] / rows["unfold"]["reasoning_tok_s"],
                                                       abs=5e-4)  # rounded to 3 decimals


def test_the_decode_grid_times_both_decode_paths_against_the_bandwidth_floor(tmp_path):
    from longshort.eval.bench_throughput import main

    result = main(["--shape", "tiny", "--decode-grid", "--batches", "1,4", "--contexts", "32", "--steps", "32",
                   "--decode", "dynamic,static", "--output", str(tmp_path / "grid.json")])
    assert json.loads((tmp_path / "grid.json").read_text()) == result
    assert [(c["batch"], c["context"]) for c in result["cells"]] == [(1, 32), (4, 32)]
    assert result["bandwidth_bytes_s"] > 0
    for cell in result["cells"]:
        for decode in ("dynamic", "static"):
            timing = cell[decode]
            # times and the floor are rounded to the microsecond, the share to 4 places and the speedup to 3
            slack = 1e-3 / timing["ms_per_step"]
            assert timing["ms_per_step"] > 0 and 0 < timing["floor_share"] == pytest.approx(
                cell["floor_ms"] / timing["ms_per_step"], rel=slack, abs=2e-3)
        assert cell["static_speedup"] == pytest.approx(
            cell["dynamic"]["ms_per_step"] / cell["static"]["ms_per_step"], abs=1e-3)


def test_an_unknown_decode_path_is_named(capsys):
    from longshort.eval.bench_throughput import main

    with pytest.raises(SystemExit):
        main(["--decode", "dynamic,graphs"])
    assert "unknown graphs; choose from dynamic, static" in capsys.readouterr().err


def test_the_orchestrator_share_comes_from_full_length_turns_under_every_memory_mode(tiny_config, tmp_path):
    """Both agents over one random model: no turn stops early (the model cannot write a tag), so every mode writes
    the same reasoning, and the folded modes one 4-token summary per 24 think tokens."""
    from longshort.eval.bench_throughput import MODES, main

    result = main(["--orchestrator", "--config", str(tiny_config.source), "--problems", "3", "--reasoning", "48",
                   "--chunk", "12", "--segment", "24", "--summary", "4", "--decode", "dynamic,static",
                   "--output", str(tmp_path / "orch.json")])
    assert json.loads((tmp_path / "orch.json").read_text()) == result
    assert [(r["decode"], r["mode"]) for r in result["rows"]] == [(d, m) for d in ("dynamic", "static") for m in MODES]
    for r in result["rows"]:
        folds = 0 if r["mode"] == "unfold" else 3 * 2  # after think tokens 24 and 48
        assert r["stop_reasons"] == {"budget": 3} and r["think_tokens"] == 3 * 48
        assert r["folds"] == folds and r["generated"] == 3 * 48 + folds * 4
        assert r["rounds"] == 4 + folds // 3 and r["requests"] == 3 * r["rounds"]  # turns of 12, all in step
        assert 0 < r["backend_s"] < r["wall_s"] and r["orchestrator_share"] == pytest.approx(
            1 - r["backend_s"] / r["wall_s"], abs=1e-3)
        assert r["orchestrator_ms_per_round"] == pytest.approx(
            (r["wall_s"] - r["backend_s"]) / r["rounds"] * 1000, rel=1e-2)


def test_an_orchestrator_workload_whose_segments_split_a_turn_is_refused(capsys):
    from longshort.eval.bench_throughput import main

    with pytest.raises(SystemExit):
        main(["--orchestrator", "--chunk", "12", "--segment", "36"])
    assert "--segment (36) must be a multiple of 2 × --chunk (12)" in capsys.readouterr().err
