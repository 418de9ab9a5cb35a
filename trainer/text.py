"""Turning conversations into token ids, the same way in every stage.

A prompt is the conversation so far rendered with a generation prompt; a completion is the
assistant's text followed by the end-of-sequence token. Every piece is tokenized on its own and
the ids are concatenated, so SFT, the reward model and PPO see exactly the tokens that
generation produces (tokenizing the joined text could merge tokens across the seam).

When the tokenizer has a chat template, it renders the pieces (the template should end an
assistant turn with the EOS token, as chat models' tokenizers do). Otherwise the plain template:

    System: {content}\\n        (one line per system or user message)
    User: {content}\\n
    Assistant: {content}<eos>  (the assistant's text with a leading space, then EOS)

where "Assistant:" is the generation prompt and the loss covers " {content}<eos>".
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from trainer.snapshot import Message

ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


@dataclass(frozen=True)
class TokenizedConversation:
    input_ids: list[int]
    assistant_mask: list[bool]  # True on tokens that carry the SFT loss


class ChatFormat:
    def __init__(self, tokenizer) -> None:  # a transformers tokenizer
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token; completions must end with one")
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            # With pad = EOS the model never learns to stop (padding is masked out of the loss).
            raise ValueError("the tokenizer needs a pad token distinct from its EOS token")
        self.tokenizer = tokenizer
        self.eos_id: int = tokenizer.eos_token_id
        self.pad_id: int = tokenizer.pad_token_id
        self.uses_chat_template = bool(getattr(tokenizer, "chat_template", None))
        bos = tokenizer.bos_token_id
        adds_bos = bos is not None and tokenizer("x").input_ids[:1] == [bos]
        self._start = [bos] if adds_bos and not self.uses_chat_template else []

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids if text else []

    def _render(self, messages: Sequence[Message], generation_prompt: bool) -> str:
        if not messages:
            return ""
        items = [{"role": m.role, "content": m.content} for m in messages]
        return self.tokenizer.apply_chat_template(
            items, tokenize=False, add_generation_prompt=generation_prompt
        )

    def _generation_prompt(self, history: Sequence[Message]) -> str:
        if not self.uses_chat_template:
            return "Assistant:"
        return _after(self._render(history, False), self._render(history, True))

    def _message_text(self, history: Sequence[Message], message: Message) -> str:
        """The text a message adds after the history (after the generation prompt, for the
        assistant)."""
        if not self.uses_chat_template:
            if message.role == "assistant":
                return " " + message.content
            return f"{ROLE_NAMES[message.role]}: {message.content}\n"
        before = self._render(history, generation_prompt=message.role == "assistant")
        return _after(before, self._render([*history, message], generation_prompt=False))

    def conversation(self, messages: Sequence[Message]) -> TokenizedConversation:
        """A demonstration, with the mask of the tokens the assistant wrote (and its EOS)."""
        ids, mask = list(self._start), [False] * len(self._start)

        def add(piece: list[int], is_output: bool) -> None:
            ids.extend(piece)
            mask.extend([is_output] * len(piece))

        for i, message in enumerate(messages):
            text = self._message_text(messages[:i], message)
            if message.role != "assistant":
                add(self._encode(text), False)
                continue
            add(self._encode(self._generation_prompt(messages[:i])), False)
            # The plain template ends the turn with EOS; a chat template writes its own end.
            add(self._encode(text) + ([] if self.uses_chat_template else [self.eos_id]), True)
        return TokenizedConversation(ids, mask)

    def prompt(self, context: Sequence[Message]) -> list[int]:
        """The context with the generation prompt: what the policy continues."""
        ids = self.conversation(context).input_ids
        return ids + self._encode(self._generation_prompt(context))

    def completion(self, context: Sequence[Message], text: str) -> list[int]:
        """Prompt and completion ids, ending with EOS: what the reward model scores."""
        return self.conversation([*context, Message("assistant", text)]).input_ids


def _after(prefix: str, text: str) -> str:
    if not text.startswith(prefix):
        raise ValueError(
            "the chat template does not render a conversation as an extension of its "
            "beginning; the trainer needs that to find the assistant's tokens"
        )
    return text[len(prefix) :]


def truncate_left(ids: list[int], max_length: int) -> list[int]:
    """Keeps the end of a sequence (the completion) when it is too long."""
    return ids[-max_length:] if len(ids) > max_length else ids


# Control characters other than tab and line breaks: a byte-level model can emit any byte, but
# the app refuses them in texts that people read (and PostgreSQL cannot store NUL).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def readable(text: str) -> str:
    """A generated text as people will read it: control characters removed, ends stripped."""
    return _CONTROL.sub("", text).strip()
