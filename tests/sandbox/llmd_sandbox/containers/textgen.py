"""A stand-in for a model: word-piece "tokens" and deterministic text, enough to count and stream.

A token is a word or a punctuation mark with its leading whitespace, so joining tokens gives the text back.
"""

import dataclasses
import hashlib
import random
import re

_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]")
_WORDS = (
    "the model is ready to serve your request today and every token arrives on time while the scheduler "
    "routes traffic to a healthy decode pod with a warm prefix cache so latency stays low under load"
).split()


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def prompt_tokens(prompt) -> list:
    """Tokens of a completions prompt: a string, a list of token ids, or a batch of either (first used)."""
    if isinstance(prompt, list):
        if prompt and all(isinstance(token, int) for token in prompt):
            return prompt
        return prompt_tokens(prompt[0]) if prompt else []
    return tokenize(prompt)


def message_text(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def chat_prompt_tokens(messages: list) -> list:
    """Tokens of the prompt a chat template renders (role markers included, as a real template adds them)."""
    rendered = "".join(f"<|{message.get('role', 'user')}|>\n{message_text(message)}<|end|>\n" for message in messages)
    return tokenize(rendered + "<|assistant|>\n")


@dataclasses.dataclass
class Choice:
    """What one choice will say: its tokens, why it ends, and (vLLM's stop_reason) the stop string hit."""
    tokens: list
    finish_reason: str
    stop_reason: str | None = None


def _rng(seed, temperature, prompt_text: str, index: int) -> random.Random:
    if seed is not None:
        return random.Random(f"{seed}/{index}")
    if temperature == 0:
        # Greedy decoding: the same prompt always gives the same answer.
        return random.Random(hashlib.sha256(f"{prompt_text}/{index}".encode()).hexdigest())
    return random.Random()


def plan_choice(*, mode: str, prompt_text: str, max_tokens: int, stop: list, seed, temperature,
                index: int = 0) -> Choice:
    """Decide the whole answer up front, so streaming only has to pace it."""
    rng = _rng(seed, temperature, prompt_text, index)
    if mode == "echo":
        natural = tokenize(prompt_text)
    else:
        length = rng.randint(8, 40)
        natural = [("" if i == 0 else " ") + rng.choice(_WORDS) for i in range(length - 1)] + ["."]
    tokens = natural[:max_tokens]
    finish = "length" if len(natural) > max_tokens else "stop"
    text = ""
    for position, token in enumerate(tokens):
        text += token
        for stop_string in stop:
            at = text.find(stop_string)
            if at >= 0:
                return Choice(_cut(tokens[: position + 1], at) or [""], "stop", stop_string)
    return Choice(tokens or [""], finish)


def _cut(tokens: list, length: int) -> list:
    """The tokens that make up the first `length` characters (the stop string is not part of the output)."""
    kept, used = [], 0
    for piece in tokens:
        if used >= length:
            break
        kept.append(piece[: length - used])
        used += len(piece)
    return kept
