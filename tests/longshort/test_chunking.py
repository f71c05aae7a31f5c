"""The thought chunker on the 291 real R1 traces with SmolLM2's tokenizer, and `longshort chunk` end to end."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from longshort.chunking import chunk_text, marker_pattern, chunk_stats
from longshort.cli import main
from longshort.config import ChunkingConfig
from longshort.jsonl import InputError, read_traces
REPO = Path(__file__).resolve().parents[2]
CONFIG = ChunkingConfig()


@pytest.fixture(scope="module")
def traces(shared_file):
    return shared_file("traces/limo_r1_distill_qwen32b.jsonl")


@pytest.fixture(scope="module")
def tokenizer(smollm2_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_path)


@pytest.fixture(scope="module")
def chunked(tokenizer, traces):
    return [(text, chunk_text(text, tokenizer, CONFIG)) for _, text in read_traces(traces)]


def test_every_trace_is_rebuilt_exactly_from_contiguous_spans(chunked):
    assert len(chunked) == 291
    for text, chunks in chunked:
        assert "".join(c.text for c in chunks) == text
        assert (chunks[0].start, chunks[0].token_start, chunks[-1].end) == (0, 0, len(text))
        for before, after in zip(chunks, chunks[1:]):
            assert (after.start, after.token_start) == (before.end, before.token_end)
        assert all(c.text == text[c.start:c.end] and c.start < c.end for c in chunks)


def test_token_spans_index_the_encoding_of_the_whole_trace(chunked, tokenizer):
    for text, chunks in chunked[:20]:
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = encoding["offset_mapping"]
        assert chunks[-1].token_end == len(offsets)
        for c in chunks:
            first, last = offsets[c.token_start], offsets[c.token_end - 1]
            assert c.start <= first[0] and last[1] <= c.end, "each chunk's tokens lie inside its characters"


def test_every_chunk_is_within_the_token_bounds(chunked):
    lengths = [c.tokens for _, chunks in chunked for c in chunks]
    assert CONFIG.min_tokens <= min(lengths) and max(lengths) <= CONFIG.max_tokens
    assert len(lengths) > 20 * len(chunked), "a trace of thousands of tokens holds many thoughts"


def test_chunks_start_at_paragraphs_and_markers_unless_a_thought_was_too_long(chunked):
    natural = forced = 0
    for text, chunks in chunked:
        markers = {m.start(1) for m in marker_pattern(CONFIG.markers).finditer(text)}
        for before, c in zip(chunks, chunks[1:]):
            head = c.start + len(c.text) - len(c.text.lstrip())
            if re.search(r"\n\s*\n\s*$", text[:head]) or head in markers:
                natural += 1
            else:
                forced += 1
                assert before.tokens + c.tokens > CONFIG.max_tokens, (
                    f"cut inside a thought of {before.tokens + c.tokens} tokens: {text[before.start:c.end]!r}")
    assert forced < 0.05 * natural


def test_markers_cut_and_short_pieces_join_a_neighbour(tokenizer):
    text = ("So the first value is twelve and we add seven to it, which gives nineteen in total.\n\n"
            "Hmm. Let me check the problem statement once more before going on with the sum. "
            "Wait, but the statement says that we subtract seven from the value instead of adding it. "
            "Alternatively, maybe the word was add after all, so the two readings should both be tried. "
            "Sonic is no marker, and neither is a lower-case word at the start of a sentence. "
            "but this sentence runs on in the thought before it.\n\nSo 42.")
    chunks = chunk_text(text, tokenizer, CONFIG)
    assert [c.text.lstrip()[:12] for c in chunks] == ["So the first", "Hmm. Let me ", "Wait, but th", "Alternativel"]
    assert chunks[-1].text.endswith("before it.\n\nSo 42."), "the short last thought joins the one before it"
    assert chunks[2].text.startswith(" Wait"), "a marker's token carries the space before it"


def test_a_trace_shorter_than_the_minimum_is_one_chunk(tokenizer):
    chunks = chunk_text("Hmm.\n\nSo 42.", tokenizer, CONFIG)
    assert [(c.text, c.tokens < CONFIG.min_tokens) for c in chunks] == [("Hmm.\n\nSo 42.", True)]


def test_long_thoughts_are_cut_at_sentence_ends_else_between_tokens(tokenizer):
    sentences = " ".join(f"the value after step {i} is {i * 7 % 10} as computed." for i in range(60))
    chunks = chunk_text(sentences, tokenizer, CONFIG)
    assert len(chunks) > 2 and all(CONFIG.min_tokens <= c.tokens <= CONFIG.max_tokens for c in chunks)
    assert all(c.text.endswith("computed.") for c in chunks[:-1])

    config = ChunkingConfig(min_tokens=2, max_tokens=5)
    text = "x₁₀₀ ≤ 😀 " * 30  # no sentence end; subscripts and the emoji are several byte tokens each
    chunks = chunk_text(text, tokenizer, config)
    assert "".join(c.text for c in chunks) == text
    assert all(2 <= c.tokens <= 5 for c in chunks)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert all(offsets[c.token_start][0] >= offsets[c.token_start - 1][1] for c in chunks[1:]), \
        "never between the byte tokens of one character"


def test_a_sentence_longer_than_the_bound_is_cut_between_words(tokenizer):
    sentence = " ".join(["the compounds of seventeen interest rates accumulate monthly"] * 20) + "."
    config = ChunkingConfig(min_tokens=4, max_tokens=24)
    chunks = chunk_text(sentence, tokenizer, config)
    assert len(chunks) > 5 and "".join(c.text for c in chunks) == sentence
    assert all(config.min_tokens <= c.tokens <= config.max_tokens for c in chunks)
    assert all(sentence[c.start - 1] == " " or sentence[c.start] == " " for c in chunks[1:]), "never inside a word"


@pytest.mark.parametrize("model", ["smollm2", "tiny"])
def test_the_default_config_cuts_real_traces_at_sentence_and_paragraph_ends_whatever_the_tokenizer(
        model, traces, smollm2_path, tiny_config):
    """configs/tiny.yaml, `longshort chunk`'s default, on the real R1 traces: with SmolLM2's tokenizer and with the
    tiny world's (a 384-token byte-level vocabulary: real English costs several times more tokens)."""
    from transformers import AutoTokenizer

    from longshort.config import load_config
    from longshort.eval.check_real import chunk_figures

    config = load_config(REPO / "configs" / "tiny.yaml").chunking
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path if model == "smollm2" else tiny_config.long.path)
    found = read_traces(traces)
    records = [{"id": i, "chunks": [c.__dict__ for c in chunk_text(text, tokenizer, config)]} for i, text in found]
    figures = chunk_figures(dict(found), records)
    assert figures["exact_spans"] == 1.0 and figures["inside_a_word"] == 0.0, figures
    assert figures["at_sentence_or_paragraph_end"] >= 0.95, figures


def test_real_configs_make_tens_of_thoughts_per_trace_not_hundreds(traces, tokenizer):
    import statistics

    from longshort.config import load_config

    for path in sorted(p for p in (REPO / "configs").glob("*.yaml") if not p.name.startswith("tiny")):
        name, config = path.stem, load_config(path).chunking
        counts = [len(chunk_text(text, tokenizer, config)) for _, text in read_traces(traces)[:60]]
        assert 8 <= statistics.median(counts) <= 30 and max(counts) < 100, (name, statistics.median(counts))


def test_no_cut_falls_inside_a_character_whose_bytes_start_a_longer_token():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # Trained so that "é\n\nWait" encodes as "Ã" + "©ĊĊWait": the paragraph's token starts inside the "é".
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    bpe.train_from_iterator(["©\n\nWait"] * 9 + ["é\n\nWait"], trainers.BpeTrainer(
        vocab_size=262, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe)
    text = "abcdé\n\nWait abc"
    assert tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])[4:6] == ["Ã", "©ĊĊWait"]
    chunks = chunk_text(text, tokenizer, ChunkingConfig(min_tokens=1, max_tokens=100))
    assert [(c.text, c.token_start, c.token_end) for c in chunks] == [("abcd", 0, 4), ("é\n\nWait abc", 4, 10)]


def test_bad_traces_are_named_by_file_line_and_id(tmp_path, capsys):
    path = tmp_path / "traces.jsonl"
    path.write_text('{"id": "a", "thinking": "Hmm."}\n{"thinking": "So."}\n{"id": "c", "problem": "p", "answer": "1"}\n'
                    '{"id": "d", "thinking": "  "}\n{"id": "a", "thinking": "Wait."}\n')
    with pytest.raises(InputError, match=rf"{path}, line 3: trace c: no thinking text \(pass --skip-bad"):
        read_traces(path)
    assert read_traces(path, skip_bad=True) == [("a", "Hmm."), ("line-2", "So.")]
    err = capsys.readouterr().err
    assert "line 4: trace d: no thinking text" in err and "line 5: trace a: the id is also on line 1" in err


def test_summary_counts_chunks_and_spreads_lengths(tmp_path):
    path = tmp_path / "chunks.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "chunks": [{"token_start": 0, "token_end": n}]}) + "\n"
                            for i, n in enumerate(range(1, 11))))
    assert chunk_stats(path) == "10 traces, 10 chunks, tokens per chunk: min 1, median 5.5, p90 9, max 10"
    path.write_text("")
    assert chunk_stats(path) == "0 traces, 0 chunks"


def chunk_cli(*args):
    cmd = [sys.executable, "-m", "longshort.cli", "chunk", "--config", str(REPO / "configs/tiny.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)


def test_chunk_command_resumes_and_names_bad_lines(smollm2_path, traces, tmp_path, capsys):
    rows = sorted((json.loads(line) for line in open(traces)), key=lambda r: len(r["thinking"]))[:4]
    lines = [json.dumps({k: r[k] for k in ("id", "problem", "thinking", "answer")}) + "\n" for r in rows]
    lines.insert(2, json.dumps({"id": "empty", "problem": "p", "thinking": "", "answer": "1"}) + "\n")
    source, out = tmp_path / "traces.jsonl", tmp_path / "chunks.jsonl"
    source.write_text("".join(lines[:3]))
    args = ["--input", str(source), "--output", str(out), "--tokenizer", smollm2_path]

    assert main(["chunk", "--config", str(REPO / "configs/tiny.yaml"), *args]) == 2, "a bad line stops the run"
    assert f"{source}, line 3: trace empty: no thinking text" in capsys.readouterr().err
    assert not out.exists()

    first = chunk_cli(*args, "--skip-bad")
    assert first.returncode == 0, first.stderr
    assert "skipped" in first.stderr and "line 3: trace empty" in first.stderr
    written = out.read_text()
    source.write_text("".join(lines))
    second = chunk_cli(*args, "--skip-bad")
    assert second.returncode == 0, second.stderr
    assert out.read_text().startswith(written), "a rerun appends and never rewrites"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [r["id"] for r in rows], "each trace exactly once"
    for row, record in zip(rows, records):
        assert "".join(c["text"] for c in record["chunks"]) == row["thinking"]
    count = sum(len(r["chunks"]) for r in records)
    assert first.stdout.startswith("chunked 2 new traces")
    assert second.stdout.startswith(f"chunked 2 new traces into {out}; 4 traces, {count} chunks, tokens per chunk: ")


def test_block_starts_read_any_reply_as_a_partition():
    from longshort.chunking import block_starts

    assert block_starts("1, 3, 7", 8) == [0, 2, 6]
    assert block_starts("Steps 4 and 2 start thoughts; 99 does not exist.", 5) == [0, 1, 3]
    assert block_starts("I cannot tell.", 5) == [0]


def test_a_model_groups_thoughts_into_blocks_that_still_rebuild_the_trace(chunked, tokenizer, smollm2_path):
    """SmolLM2, hosted like any agent, merges consecutive thoughts; spans stay contiguous and exact."""
    from longshort.agents.actor import start_agents
    from longshort.chunking import group_thoughts
    from longshort.config import ModelConfig

    config = ChunkingConfig(group_by="long", group_window=8, max_tokens=512)
    agent = start_agents({"long": ModelConfig(path=smollm2_path)}, None)["long"]
    traces = []
    for text, chunks in chunked[:2]:
        head = chunks[:16]
        traces.append((text[:head[-1].end], head))
    grouped = group_thoughts(traces, agent, tokenizer, config)
    for (text, chunks), blocks in zip(traces, grouped):
        assert "".join(b.text for b in blocks) == text
        assert len(blocks) <= len(chunks)
        boundaries = {c.start for c in chunks}
        assert all(b.start in boundaries for b in blocks), "blocks start where a thought starts"
        assert all(b.tokens <= config.max_tokens for b in blocks)
