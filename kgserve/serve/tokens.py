"""Counting a request's tokens before the model: its TokenCounts, or its bad input named."""

from __future__ import annotations

from ..providers.base import EmbeddingProvider, InvalidInput, ProviderError, TokenCounts


def count_tokens(provider: EmbeddingProvider, texts: list[str],
                 input_type: str | None) -> TokenCounts:
    """Each text's tokens against the provider's limit. A text the tokenizer fails on (even with
    a Rust panic, which is a BaseException) is the client's input: InvalidInput naming it."""
    try:
        return TokenCounts.of(provider.token_lengths(texts, input_type), provider.max_tokens)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - the tokenizer's errors vary (even panics)
        raise _as_input_error(exc, texts, provider, input_type) from None


def _as_input_error(exc: BaseException, texts: list[str], provider: EmbeddingProvider,
                    input_type: str | None) -> ProviderError:
    """Turn a tokenizer failure into a 400 naming the first bad input."""
    if isinstance(exc, ProviderError):
        return exc
    for n, text in enumerate(texts):
        try:
            provider.token_lengths([text], input_type)
        except BaseException:  # noqa: BLE001 - this is the one that fails
            return InvalidInput(f"input[{n}] cannot be tokenized (invalid text, e.g. a lone "
                                f"surrogate)")
    return InvalidInput("the input cannot be tokenized")
