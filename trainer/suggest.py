"""Dialogue suggestions: the next assistant turn of a conversation a labeler is writing.

Run inside `rankery worker` rather than as a child process, because a labeler waits for the
answer: the last model used stays loaded (on the GPU when there is one), so only the first
suggestion from a model version pays for loading it.
"""

import logging
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from trainer.models import load_tokenizer, sample
from trainer.sample import context_limit
from trainer.snapshot import Message
from trainer.text import ChatFormat, readable, truncate_left

log = logging.getLogger("trainer")
_loaded: dict[str, Any] = {}  # the one model kept: path, model, tokenizer, chat format


def reply(model_path: str, params: dict[str, Any]) -> str:
    """The model's answer to `params["messages"]` (the conversation so far)."""
    model, tokenizer, chat = _load(model_path)
    torch.manual_seed(params.get("seed", 0))
    context = [Message(m["role"], m["content"]) for m in params["messages"]]
    # Half the context at most for the reply, so that a small model still sees the dialogue.
    new_tokens = min(params["max_new_tokens"], context_limit(model) // 2)
    ids = truncate_left(chat.prompt(context), context_limit(model) - new_tokens)
    _queries, responses = sample(
        model, [ids], tokenizer, new_tokens, params["temperature"], params["top_p"]
    )
    return readable(tokenizer.decode(responses[0], skip_special_tokens=True))


def _load(path: str) -> tuple[Any, Any, ChatFormat]:
    if _loaded.get("path") != path:
        _loaded.clear()
        log.info("loading %s for suggestions", path)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        tokenizer = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(path).to(device).eval()
        _loaded.update(path=path, model=model, tokenizer=tokenizer, chat=ChatFormat(tokenizer))
    return _loaded["model"], _loaded["tokenizer"], _loaded["chat"]
