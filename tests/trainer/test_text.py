from pathlib import Path

import pytest

from trainer.snapshot import Message
from trainer.text import ChatFormat, readable

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}"
    "{% if m.role == 'assistant' %}<|endoftext|>{% else %}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
DIALOGUE = [
    Message("system", "be brief"),
    Message("user", "pick a colour for the car"),
    Message("assistant", "blue"),
    Message("user", "and the door"),
    Message("assistant", "red"),
]


@pytest.fixture
def tokenizer(tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def assistant_text(chat: ChatFormat, messages: list[Message]) -> str:
    tokenized = chat.conversation(messages)
    kept = [t for t, m in zip(tokenized.input_ids, tokenized.assistant_mask, strict=True) if m]
    return chat.tokenizer.decode(kept)


def test_plain_template_puts_the_loss_on_every_assistant_turn_and_its_eos(tokenizer) -> None:
    chat = ChatFormat(tokenizer)
    assert not chat.uses_chat_template
    assert assistant_text(chat, DIALOGUE) == " blue<|endoftext|> red<|endoftext|>"


def test_plain_template_renders_the_documented_text(tokenizer) -> None:
    chat = ChatFormat(tokenizer)
    text = tokenizer.decode(chat.conversation(DIALOGUE[:3]).input_ids)
    assert text == "System: be brief\nUser: pick a colour for the car\nAssistant: blue<|endoftext|>"


def test_chat_template_marks_the_assistant_turns(tokenizer) -> None:
    tokenizer.chat_template = CHAT_TEMPLATE
    chat = ChatFormat(tokenizer)
    assert chat.uses_chat_template
    assert assistant_text(chat, DIALOGUE) == "blue<|endoftext|>red<|endoftext|>"


@pytest.mark.parametrize("template", [None, CHAT_TEMPLATE])
def test_a_completion_is_the_prompt_followed_by_the_answer(tokenizer, template) -> None:
    tokenizer.chat_template = template
    chat = ChatFormat(tokenizer)
    context = DIALOGUE[:2]
    prompt, completion = chat.prompt(context), chat.completion(context, "blue")
    assert completion[: len(prompt)] == prompt
    assert completion[-1] == tokenizer.eos_token_id
    assert chat.conversation([*context, Message("assistant", "blue")]).input_ids == completion


def test_a_pad_token_equal_to_eos_is_refused(tokenizer) -> None:
    tokenizer.pad_token = tokenizer.eos_token
    with pytest.raises(ValueError, match="pad token distinct from its EOS"):
        ChatFormat(tokenizer)


def test_a_generated_text_loses_control_characters_but_keeps_tabs_and_line_breaks() -> None:
    # A byte-level model can emit any byte; the app refuses control characters in texts.
    assert readable(" anz no\ufffd\x16 A\x00\n\tb\r\n\x7f ") == "anz no\ufffd A\n\tb"
