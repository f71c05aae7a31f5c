"""Cold-start synthesis by models in their own text format: the short rewrite sees the question and the thoughts
before, and is rejected when it cannot be trusted; prompt-path summaries are cumulative. The model is a script here
(the decisions under test are the synthesis's); tests/rl/test_coldstart.py and `make real-smoke` run real models."""
from __future__ import annotations

import pytest

from longshort.chat import ChatFormat
from longshort.config import ColdstartConfig, ModelConfig
from longshort.data.coldstart import fold, rewrite, rewrite_verdict
from longshort.problem import Problem


@pytest.fixture(scope="module")
def tok(protocol_tokenizer):
    return protocol_tokenizer[0]


@pytest.fixture(scope="module")
def EOS(tok):
    """The id the model ends its turn with."""
    return tok.eos_token_id


@pytest.fixture(scope="module")
def chat(tok):
    return ChatFormat.of(ModelConfig(path="text-model", format="text"), tok, "short")


def completion(tok, text: str, stopped: bool = True):
    from longshort.agents.backend import Completion

    ids = tok.encode(text, add_special_tokens=False) + ([tok.eos_token_id] if stopped else [])
    return Completion(ids, None, "stop" if stopped else "length")


def test_a_rewrite_is_trusted_only_when_whole_shorter_and_keeping_the_numbers_used_next(tok):
    source = "op1: +6. So 3+6=9, and then check 9 again: 9. Yes, x is 9 and we keep 4 for later."
    following = "op2: *4. 9*4=6."
    verdict = lambda text, **kw: rewrite_verdict(source, completion(tok, text, **kw), text, following, tok)  # noqa
    assert verdict("3+6=9, keep 4.") == "ok"
    assert verdict("3+6=9, keep 4.", stopped=False) == "cut"
    assert verdict("") == "empty"
    assert verdict(source + " More.") == "longer"
    assert verdict("3+6=9.") == "numbers", "4 is used by the next thought"
    assert rewrite_verdict(source, completion(tok, "3+6=9."), "3+6=9.", None, tok) == "ok", "the last thought"


def test_the_rewriter_sees_the_question_and_the_thoughts_before_and_bad_rewrites_keep_the_thought(tok, chat, scripted,
                                                                                                    EOS):
    problem = Problem("p", "x=3.\nop1: +6.\nop2: *4.\nFind x modulo m=10.", "6", "t", "synthetic")
    trace = [("long", "op1: +6. 3+6=9."), ("short", "Check: 3+6=9. Yes, 9."), ("short", "Hmm, 9 it is, and then op2."),
             ("long", "op2: *4. 9*4=6."), ("short", "So x=6. Done, x is 6 here.")]
    replies = {"Check": "Check 9.", "Hmm": "Hmm, 9 it is, and then op2, as said.", "So x": "x=6"}

    def reply(request):
        prompt = tok.decode(request.prompt_ids)
        text = next(r for key, r in replies.items() if prompt.split("Next step:")[-1].strip().startswith(key))
        return tok.encode(text, add_special_tokens=False) + ([EOS] if key_done(text) else [])

    key_done = lambda text: text != "x=6"  # noqa: E731  the last reply runs into the cap
    agent = scripted(reply, eos=EOS)
    sizes = [len(tok.encode(text, add_special_tokens=False)) for _, text in trace[:2]]
    config = ColdstartConfig(rewrite_tokens=40, rewrite_context=max(sizes))  # one of the two, not both
    out, counts = rewrite([problem], [trace], agent, tok, chat, config)
    assert [text for _, text in out[0]] == ["op1: +6. 3+6=9.", "Check 9.", trace[2][1], trace[3][1], trace[4][1]]
    assert counts == {"short_thoughts": 3, "too_long_to_ask": 0, "ok": 1, "cut": 1, "empty": 0, "longer": 1,
                      "numbers": 0}
    first = tok.decode(agent.requests[0].prompt_ids)
    assert problem.question in first and "op1: +6. 3+6=9." in first and first.endswith("<|assistant|>")
    second = tok.decode(agent.requests[1].prompt_ids)
    assert "Check: 3+6=9" in second and "op1: +6. 3+6=9." not in second, "only the latest thoughts that fit"


def test_prompt_path_summaries_see_the_previous_summary_and_the_new_segment(tok, chat, scripted, protocol_tokenizer,
                                                                            EOS):
    _, protocol = protocol_tokenizer
    problem = Problem("p", "x=1.\nFind x modulo m=10.", "1", "t", "synthetic")
    texts = ["op1: +1. 1+1=2.", "op2: +2. 2+2=4.", "op3: +3. 4+3=7.", "op4: +4. 7+4=1.", "So x=1."]
    pieces = [(agent, tok.encode(text, add_special_tokens=False))
              for agent, text in zip(["long", "short", "long", "short", "long"], texts)]
    written = iter(["S1 at 2.", "S2 at 7."])
    agent = scripted(lambda request: tok.encode(next(written), add_special_tokens=False) + [EOS], eos=EOS)
    config = ColdstartConfig(segment_tokens=len(pieces[0][1]) + len(pieces[1][1]), summary_tokens=16)
    (folded,) = fold([problem], [pieces], {"long": agent, "short": agent}, tok, protocol, config, "short", chat)
    assert [t.text for t in folded.turns if t.kind == "summary"] == ["S1 at 2.", "S2 at 7."]
    first, second = (tok.decode(r.prompt_ids) for r in agent.requests)
    assert "(none yet)" in first and texts[0] in first and texts[1] in first
    assert "S1 at 2." in second and texts[2] in second and texts[1] not in second, "previous summary + new segment"
    assert "<|long|>" not in second and "<|/long|>" not in second, "the summarizer reads text, not tags"
