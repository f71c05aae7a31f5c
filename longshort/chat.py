"""The text-native path: a pretrained model in its own chat format, before cold-start SFT has taught it the tags.

A model with ``format: text`` is prompted through its chat template (the question as the user message, the
assistant's turn opened, and ``<think>`` after it for a reasoning model) and its answers are graded from its text.
Importance rollouts close a thinking prefix with ``text.answer_prompt`` (after ``</think>`` for a reasoning model) and
grade what follows; free-form baselines let the model write until its end-of-turn token. Everything is token ids:
the think tags are single tokens, found in a completion by id.
"""
from __future__ import annotations

from dataclasses import dataclass

from longshort.config import ModelConfig


class FormatError(ValueError):
    """A model whose tokenizer cannot serve the configured text format (no chat template, no generation prompt,
    think tags that are not single tokens)."""


@dataclass(frozen=True)
class ChatFormat:
    """A ``format: text`` model's format as token ids, checked against its tokenizer."""

    template: str  # the user message, with {question}
    reasoning: bool
    think_open: list[int]  # the ids that open its thinking (empty for an instruct model)
    think_close: int | None  # the one id that ends it
    closing: list[int]  # what closes a thinking prefix and asks for the answer
    answer_prompt: str
    template_thinks: bool = False  # its generation prompt opens the thinking itself (R1-Distill's: "<think>\n")

    @classmethod
    def of(cls, model: ModelConfig, tokenizer, agent: str) -> "ChatFormat":
        """The format of ``model`` (``format: text``) over ``tokenizer``; a clear error when they do not fit."""
        where = f"{agent} ({model.path})"
        if model.format != "text":
            raise FormatError(f"{where} speaks the protocol (format: protocol); the text path needs format: text")
        if not getattr(tokenizer, "chat_template", None):
            raise FormatError(f"{where}: format: text needs a chat template, and its tokenizer has none")
        probe = [{"role": "user", "content": "?"}]
        bare = tokenizer.apply_chat_template(probe, tokenize=True, return_dict=False)
        opened = tokenizer.apply_chat_template(probe, add_generation_prompt=True, tokenize=True, return_dict=False)
        if opened == bare:
            raise FormatError(f"{where}: its chat template adds no generation prompt (add_generation_prompt "
                              "changes nothing), so the assistant's turn cannot be opened")
        text, think_open, think_close, close = model.text, [], None, []
        generation = opened[len(bare):] if opened[:len(bare)] == bare else opened[-8:]
        if text.reasoning:
            ids = {tag: tokenizer.encode(tag, add_special_tokens=False) for tag in (text.think_open, text.think_close)}
            bad = [tag for tag, found in ids.items() if len(found) != 1]
            if bad:
                raise FormatError(f"{where}: reasoning: true needs {' and '.join(bad)} as single tokens of its "
                                  "tokenizer (text.think_open, text.think_close)")
            think_open, think_close = ids[text.think_open], ids[text.think_close][0]
            close = tokenizer.encode("\n", add_special_tokens=False) + [think_close]
        closing = close + tokenizer.encode(text.answer_prompt, add_special_tokens=False)
        thinks = bool(think_open) and think_open[0] in generation
        return cls(text.prompt, text.reasoning, think_open, think_close, closing, text.answer_prompt, thinks)

    def prompt(self, tokenizer, question: str) -> list[int]:
        """The question as the user's message, the assistant's turn opened, and its thinking opened when it reasons
        (unless the template opens it already, as R1-Distill's does)."""
        ids = list(tokenizer.apply_chat_template([{"role": "user", "content": self.template.format(question=question)}],
                                                 add_generation_prompt=True, tokenize=True, return_dict=False))
        return ids if self.template_thinks else ids + self.think_open

    def ask(self, tokenizer, message: str) -> list[int]:
        """A request in a new chat (rewrite a thought, summarize reasoning) answered directly: a reasoning model's
        thinking is opened and closed empty, so its reply is the answer."""
        ids = ask(tokenizer, message)  # the chat template alone
        if self.reasoning:
            ids += [] if self.template_thinks else self.think_open
            ids += tokenizer.encode("\n", add_special_tokens=False) + [self.think_close]
            ids += tokenizer.encode("\n\n", add_special_tokens=False)
        return ids

    def answer(self, tokenizer, ids: list[int], stopped: bool) -> str | None:
        """The text of a free-form completion that is graded: after the thinking for a reasoning model (None when it
        never ended it), else all of it; the end-of-turn token (when ``stopped`` on it) left out."""
        body = ids[:-1] if stopped else ids
        if self.reasoning:
            if self.think_close not in body:
                return None
            body = body[body.index(self.think_close) + 1:]
        return tokenizer.decode(body, skip_special_tokens=True).strip()

    def describe(self) -> str:
        kind = "a reasoning model thinking in its think tags" if self.reasoning else "an instruct model"
        return f"text format ({kind}; answer prompt {self.answer_prompt!r})"


def ask(tokenizer, message: str, chat: ChatFormat | None = None) -> list[int]:
    """The ids of ``message`` as the user's turn of a new chat, the assistant's reply opened: in the model's text
    format when it has one (``chat``), else by its chat template alone."""
    from longshort.protocol import prompt_ids

    return chat.ask(tokenizer, message) if chat is not None else list(prompt_ids(tokenizer, message))
