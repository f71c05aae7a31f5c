"""Adding the protocol tags to a pretrained model: a padded embedding matrix keeps its rows, new rows start from what
the model knows."""
from __future__ import annotations

import pytest

from longshort.config import ProtocolConfig
from longshort.protocol import add_protocol_tokens


def padded_model(spare: int, tied: bool):
    """A real BPE tokenizer that has never seen the tags, and a random Qwen2 model whose embedding matrix has
    ``spare`` rows more than the tokenizer has tokens (padding, as Qwen2.5 has)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(["the long and short answer summary handback", "<|long|> is a tag"] * 20,
                            trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer) + spare, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         tie_word_embeddings=tied))
    return tokenizer, model


@pytest.mark.parametrize("tied", [False, True])
def test_tags_take_spare_rows_of_a_padded_matrix_and_start_from_their_texts_tokens(tied):
    tokenizer, model = padded_model(spare=40, tied=tied)
    known = len(tokenizer)
    rows = known + 40
    pieces = {tag: tokenizer.encode(tag) for tag in ProtocolConfig().tags()}
    before = model.get_input_embeddings().weight.detach().clone()
    assert add_protocol_tokens(tokenizer, model, ProtocolConfig()) == 9
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] == rows and model.config.vocab_size == rows, "a padded matrix is never shrunk"
    ids = [tokenizer.convert_tokens_to_ids(tag) for tag in pieces]
    assert sorted(ids) == list(range(known, known + 9))
    for tag, new in zip(pieces, ids):
        assert weight[new].tolist() == pytest.approx(before[pieces[tag]].mean(0).tolist(), abs=1e-6)
        if not tied:
            head = model.get_output_embeddings().weight
            assert head[new].tolist() == pytest.approx(head[pieces[tag]].mean(0).tolist(), abs=1e-6)
    assert len({tuple(weight[i].tolist()) for i in ids}) == 9, "each tag starts somewhere of its own"
    untouched = [i for i in range(rows) if i not in ids]
    assert weight[untouched].equal(before[untouched])
    assert add_protocol_tokens(tokenizer, model, ProtocolConfig()) == 0, "a second call adds nothing"


def test_a_matrix_without_room_grows_to_the_tokenizer():
    tokenizer, model = padded_model(spare=3, tied=False)
    add_protocol_tokens(tokenizer, model, ProtocolConfig())
    rows = model.get_input_embeddings().weight.shape[0], model.get_output_embeddings().weight.shape[0]
    assert rows == (len(tokenizer), len(tokenizer))
    (new,) = tokenizer.encode("<|handback|>")
    assert new == len(tokenizer) - 1 and model.get_input_embeddings().weight[new].abs().sum() > 0
