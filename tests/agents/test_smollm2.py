"""The path real users take: a pretrained chat model (SmolLM2-135M-Instruct, from a GGUF on PyPI) plus added
protocol tokens, hosted by our backends and prompted through its own chat template."""
import pytest
import torch

from longshort.agents.backend import GenerationRequest
from longshort.config import ModelConfig, ProtocolConfig
from longshort.protocol import Protocol


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    from longshort.agents.hf_backend import HFBackend

    return HFBackend(ModelConfig(path=smollm2_path), "long")


def chat_prompt(backend, question):
    protocol = Protocol.from_tokenizer(ProtocolConfig(), backend.tokenizer, "smollm2")
    ids = backend.tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    return ids, protocol


def test_protocol_tokens_are_added_single_tokens(smollm2):
    protocol = Protocol.from_tokenizer(ProtocolConfig(), smollm2.tokenizer, "smollm2")
    assert len(set(protocol.ids.values())) == len(ProtocolConfig().tags())
    assert min(protocol.ids.values()) >= 49152, "tags are new ids after the original vocabulary"
    assert smollm2.model.get_input_embeddings().weight.shape[0] >= len(smollm2.tokenizer)


def test_pretrained_chat_model_answers_through_the_backend(smollm2):
    prompt, protocol = chat_prompt(smollm2, "What is 2 + 3? Answer briefly.")
    stops = (protocol.close_id("long"), protocol.answer_close_id)  # besides its own end-of-turn token
    result = smollm2.generate([GenerationRequest(prompt, 24, stops, temperature=0.0)])[0]
    completion = result.completions[0]
    with torch.no_grad():
        logits = smollm2.model(torch.tensor([prompt + completion.token_ids[:-1]])).logits[0]
    expected = torch.log_softmax(logits.float(), -1)[len(prompt) - 1:].gather(-1, torch.tensor(completion.token_ids)[:, None])[:, 0]
    assert completion.logprobs == pytest.approx(expected.tolist(), abs=1e-3)
    assert completion.token_ids == logits[len(prompt) - 1:].argmax(-1).tolist()
    text = smollm2.tokenizer.decode(completion.token_ids, skip_special_tokens=True)
    assert "5" in text, text
