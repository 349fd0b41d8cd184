"""One exception root for kefu; every error says what went wrong and how to fix it."""

from __future__ import annotations

import math


class KefuError(Exception):
    """Root of every error kefu raises on purpose."""


class ConfigError(KefuError):
    """Settings or kefu.yml are invalid."""


class ProjectError(KefuError):
    """A project file is missing or malformed; the message names the file, the line and the fix."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        location = path if line is None else f"{path}:{line}"
        super().__init__(f"{location}: {message}" if location else message)
        self.message = message
        self.path = path
        self.line = line


class ModelNotTrainedError(KefuError):
    """A component needs a trained model that the project does not have yet."""


class SessionStoreError(KefuError):
    """The session store (Redis) failed or cannot be reached."""


class LockTimeoutError(SessionStoreError):
    """Another turn of the same conversation held the lock for longer than the bounded wait."""


class StaleSessionError(SessionStoreError):
    """A commit came from a turn whose lock expired or whose view of the session is outdated."""


class ActionError(KefuError):
    """An action failed (a business API, a template, an action server)."""


class GenerationError(KefuError):
    """The generator failed or timed out."""


class BadRequestError(KefuError):
    """A channel received a request it cannot accept."""


class NluBackendError(KefuError):
    """A remote NLU backend (a Rasa server) failed, timed out or answered something unusable."""


class RateLimitedError(KefuError):
    """A sender, or the network address it writes from, is over its rate limit (KEFU_RATE_LIMIT,
    KEFU_RATE_LIMIT_CLIENT): the message was refused before anything was stored."""

    def __init__(self, retry_after_s: float, *, limit: str, language: str = "en") -> None:
        self.retry_after_s = retry_after_s
        self.language = language
        super().__init__(f"too many messages (the limit is {limit}); wait {self.retry_after} s and send again")

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait, at least 1: the value of an HTTP `Retry-After` header."""
        return max(1, math.ceil(self.retry_after_s))

    @property
    def polite(self) -> str:
        """What to tell the customer, in the language of the refused message."""
        if self.language == "zh":
            return f"您发送消息太快了，请 {self.retry_after} 秒后再试。"
        return f"You are sending messages too quickly; please wait {self.retry_after} seconds and try again."
