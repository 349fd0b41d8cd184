"""One exception root for kefu; every error says what went wrong and how to fix it."""

from __future__ import annotations


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
