"""EmbeddingModelManager: one provider per process, lazy single-flight load, atomic swap."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, Protocol

from ..providers.base import ProviderConfig, ProviderError

log = logging.getLogger(__name__)

# After a load of a config failed, it is not tried again on its own (first request, listener)
# for this long; an explicit prepare or reload always tries. KG_LOAD_RETRY_SECONDS overrides it.
LOAD_RETRY_SECONDS = 10.0


class Servable(Protocol):
    """What the manager serves: an EmbeddingProvider, or a ServedProvider around one."""

    @property
    def config(self) -> ProviderConfig: ...
    @property
    def model(self) -> str: ...
    @property
    def dimensions(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def load_seconds(self) -> float | None: ...
    def load(self) -> None: ...
    def close(self) -> None: ...


Builder = Callable[[ProviderConfig], Servable]


class NotReady(Exception):
    """No provider is loaded yet; message says why."""

    code = "model_not_ready"
    retry_after = 5  # seconds: a load takes a few


def _default_builder(cfg: ProviderConfig) -> Servable:
    # Lazy: the providers import torch or openai.
    from ..providers import build_provider

    return build_provider(cfg)


class EmbeddingModelManager:
    """Holds the serving provider; swaps it atomically and closes the old one when unborrowed."""

    def __init__(self, builder: Builder | None = None,
                 retry_seconds: float = LOAD_RETRY_SECONDS) -> None:
        self._build = builder or _default_builder
        self.retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._provider: Servable | None = None
        self._config_id: int | None = None
        self._borrowers: dict[int, int] = {}  # id(provider) -> requests using it
        self._retired: dict[int, Servable] = {}  # swapped out, closed when unborrowed
        self._flights: dict[ProviderConfig, Future] = {}
        self._last_error: str | None = None
        self._failed: dict[int | None, float] = {}  # config id -> when loading it last failed
        # Held across "write the new row + swap" so the listener never races the admin path.
        self.commit_lock = threading.RLock()

    # -- loading --------------------------------------------------------------------------
    def prepare(self, cfg: ProviderConfig) -> Servable:
        """Build and load a provider for `cfg` without touching the serving one."""
        provider = None
        try:
            provider = self._build(cfg)
            provider.load()
            return provider
        except BaseException as exc:
            if provider is not None:
                _close_quietly(provider)
            if isinstance(exc, Exception) and not isinstance(exc, ProviderError):
                log.exception("loading %s failed", cfg.model_name)
                exc = ProviderError(f"loading {cfg.model_name} failed unexpectedly "
                                    f"({exc.__class__.__name__}; details in the server log)")
                with self._lock:
                    self._last_error = str(exc)
                raise exc from None
            with self._lock:
                self._last_error = str(exc)
            raise

    def swap(self, provider: Servable, config_id: int | None) -> bool:
        """Serve `provider` from now on; False (and it is closed) if a newer config is served."""
        with self._lock:
            if (config_id is not None and self._config_id is not None
                    and config_id < self._config_id and self._provider is not None):
                stale = True
            else:
                stale = False
                old, self._provider, self._config_id = self._provider, provider, config_id
                self._last_error = None
                self._failed.pop(config_id, None)
                if old is not None and old is not provider:
                    self._retired[id(old)] = old
                    old = None if self._borrowers.get(id(old), 0) else self._retired.pop(id(old))
        if stale:
            _close_quietly(provider)
            return False
        if old is not None:
            _close_quietly(old)
        log.info("serving config %s: provider=%s model=%s dimensions=%s device=%s",
                 config_id, provider.config.provider, provider.model, provider.dimensions,
                 provider.device)
        return True

    def load(self, cfg: ProviderConfig, force: bool = False) -> Servable:
        """Prepare and swap in `cfg` once, however many threads ask at the same time."""
        with self._lock:
            if not force and self._provider is not None and cfg.id is not None \
                    and cfg.id == self._config_id:
                return self._provider
            flight = self._flights.get(cfg)
            owner = flight is None
            if owner:
                flight = self._flights[cfg] = Future()
        if not owner:
            return flight.result()
        try:
            provider = self.prepare(cfg)
            self.swap(provider, cfg.id)
            flight.set_result(provider)
            return provider
        except BaseException as exc:
            with self._lock:
                self._failed[cfg.id] = time.monotonic()
            flight.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._flights.pop(cfg, None)

    def ensure_loaded(self, source: Callable[[], ProviderConfig]) -> None:
        """Load the active config now if nothing is served (lazy first load)."""
        with self._lock:
            if self._provider is not None:
                return
            recent = not self._flights and any(map(self._recent, self._failed.values()))
            last = self._last_error
        if recent:
            raise NotReady(f"the model failed to load: {last}")
        try:
            self.load(source())
        except ProviderError as exc:
            raise NotReady(f"the model failed to load: {exc}") from None

    def follow(self, cfg: ProviderConfig, force: bool = False) -> None:
        """Serve `cfg` (the listener's change) unless this process serves it or a newer config,
        or loading it failed less than retry_seconds ago; `force` (a reload) loads it anyway."""
        with self.commit_lock:  # an admin change in this process finishes its swap first
            if not force and self._config_id is not None and self._provider is not None \
                    and self._config_id >= cfg.id:
                return
        with self._lock:
            failed_at = self._failed.get(cfg.id)
        if not force and failed_at is not None and self._recent(failed_at):
            return  # do not reload a broken model every poll
        self.load(cfg, force=force)

    def _recent(self, failed_at: float) -> bool:
        return time.monotonic() - failed_at < self.retry_seconds

    # -- serving --------------------------------------------------------------------------
    def current(self) -> Servable | None:
        """Return the serving provider (None before the first load)."""
        return self._provider

    @property
    def config_id(self) -> int | None:
        """The id of the config row this process serves."""
        return self._config_id

    @contextmanager
    def borrow(self, source: Callable[[], ProviderConfig] | None = None
               ) -> Iterator[tuple[Servable, int | None]]:
        """Borrow the serving provider for one request, with the id of the config it serves;
        a swap closes the old provider only once its borrowers are done."""
        if self._provider is None and source is not None:
            self.ensure_loaded(source)
        with self._lock:
            provider, config_id = self._provider, self._config_id
            if provider is None:
                raise NotReady(self._not_ready_reason())
            self._borrowers[id(provider)] = self._borrowers.get(id(provider), 0) + 1
        try:
            yield provider, config_id
        finally:
            with self._lock:
                left = self._borrowers[id(provider)] = self._borrowers[id(provider)] - 1
                done = None
                if left == 0:
                    del self._borrowers[id(provider)]
                    done = self._retired.pop(id(provider), None)
            if done is not None:
                _close_quietly(done)

    def _not_ready_reason(self) -> str:
        if self._flights:
            return "the model is loading"
        if self._last_error:
            return f"the model failed to load: {self._last_error}"
        return "no model is loaded yet"

    def status(self) -> dict[str, Any]:
        """Describe this process's model: state, device, load time, last error, config id."""
        with self._lock:
            p = self._provider
            if p is not None:
                state = "ready"
            elif self._flights:
                state = "loading"
            elif self._last_error:
                state = "failed"
            else:
                state = "not_loaded"
            return {
                "state": state,
                "loading": bool(self._flights),
                "config_id": self._config_id,
                "provider": p.config.provider if p else None,
                "model": p.model if p else None,
                "dimensions": p.dimensions if p else None,
                "device": p.device if p else None,
                "backend": p.config.backend if p else None,
                "precision": p.config.precision if p else None,
                "accuracy": _accuracy(p),
                "load_seconds": round(p.load_seconds, 3) if p and p.load_seconds else None,
                "last_error": self._last_error,
                "pid": os.getpid(),
            }

    def reset(self) -> None:
        """Close every provider and forget all state (tests)."""
        with self._lock:
            providers = [p for p in [self._provider, *self._retired.values()] if p is not None]
            self._provider, self._config_id = None, None
            self._retired.clear()
            self._borrowers.clear()
            self._last_error = None
            self._failed.clear()
        for p in providers:
            _close_quietly(p)

    close = reset


def _accuracy(provider: Servable | None) -> dict[str, Any] | None:
    """The accuracy guard's figures of an onnx/openvino provider (None for the others)."""
    guard = getattr(provider, "guard", None) if provider is not None else None
    return guard.as_dict() if guard is not None else None


def _close_quietly(provider: Servable) -> None:
    try:
        provider.close()
    except Exception:  # a failing close must not break a swap
        log.exception("closing provider %s failed", provider.model)
