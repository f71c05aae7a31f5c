"""The collaboration protocol's tags as token ids.

Each tag must be exactly one token of the tokenizer: tiny tokenizers carry them as special tokens, real models get
them as added tokens (``add_protocol_tokens``) before cold-start SFT. Generation stops on these ids, never on text.
"""
from __future__ import annotations

from dataclasses import dataclass

from longshort.config import ProtocolConfig

AGENTS = ("long", "short")


class ProtocolError(ValueError):
    """A tokenizer that lacks the protocol's tags."""


@dataclass(frozen=True)
class Protocol:
    ids: dict[str, int]  # field of ProtocolConfig -> token id

    @classmethod
    def from_tokenizer(cls, config: ProtocolConfig, tokenizer, source: str) -> "Protocol":
        ids, missing = {}, []
        for field, tag in config.model_dump().items():
            encoded = tokenizer.encode(tag, add_special_tokens=False)
            if len(encoded) != 1:
                missing.append(tag)
            else:
                ids[field] = encoded[0]
        if missing:
            raise ProtocolError(
                f"tokenizer of {source} lacks the protocol tokens {', '.join(missing)}: each must be a single "
                "token (run `longshort add-tokens` on the model, or use a tokenizer built with them)"
            )
        return cls(ids)

    def open_id(self, agent: str) -> int:
        return self.ids[f"{agent}_open"]

    def close_id(self, agent: str) -> int:
        return self.ids[f"{agent}_close"]

    @property
    def answer_open_id(self) -> int:
        return self.ids["answer_open"]

    @property
    def answer_close_id(self) -> int:
        return self.ids["answer_close"]

    def think_end_id(self, agent: str, following: str | None) -> int:
        """The tag that ends a written think turn of ``agent`` before a turn of ``following``: the short agent hands
        back to the long one; any other turn closes with its agent's tag."""
        return self.ids["handback"] if agent == "short" and following == "long" else self.close_id(agent)

    def answer_block(self, answer: list[int]) -> list[int]:
        """The ids of a final answer in its tags."""
        return [self.answer_open_id, *answer, self.answer_close_id]

    def think_stops(self, agent: str) -> tuple[int, ...]:
        """The ids that end a think turn of ``agent``: its close tag, the end of an answer, and for the short agent
        the hand-back tag."""
        stops = (self.close_id(agent), self.answer_close_id)
        return stops + (self.ids["handback"],) if agent == "short" else stops

    def answer_ids(self, body: list[int]) -> list[int] | None:
        """The ids after the last answer open tag of ``body`` (a turn without its closing tag); None without one."""
        if self.answer_open_id not in body:
            return None
        return body[len(body) - body[::-1].index(self.answer_open_id):]


def prompt_ids(tokenizer, question: str) -> list[int]:
    """The ids a solve starts from: the question as a user turn of the chat template, then the assistant's turn."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True, return_dict=False
    )


def add_protocol_tokens(tokenizer, model, config: ProtocolConfig) -> int:
    """Add the tags to a pretrained model's tokenizer and embeddings; returns how many were new.

    A padded embedding matrix (Qwen2.5 pads its vocabulary to a multiple of 128: 152,064 rows for 151,665 tokens)
    is never shrunk: the tags take spare rows, and the matrix grows only when there are too few. Each tag's rows
    (input embedding, and output embedding when untied) start at the mean of the rows of the tokens its text was
    made of before (``<|answer|>`` from ``<``, ``|``, ``answer``, ...): close to what the model knows, and distinct
    per tag, where a padding row holds whatever the checkpoint left there.
    """
    import torch

    pieces = {tag: tokenizer.encode(tag, add_special_tokens=False) for tag in config.tags()}
    added = tokenizer.add_special_tokens({"additional_special_tokens": config.tags()},
                                         replace_extra_special_tokens=False)
    if not added:
        return 0
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    layers = [model.get_input_embeddings(), model.get_output_embeddings()]
    matrices = {id(layer.weight): layer.weight for layer in layers if layer is not None}  # once when tied
    with torch.no_grad():
        for tag, ids in pieces.items():
            new = tokenizer.convert_tokens_to_ids(tag)
            for matrix in matrices.values():
                matrix[new] = matrix[ids].mean(0)
    return added
