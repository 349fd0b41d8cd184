"""Secrets come from the environment or from files, never from kefu.yml: every secret setting `NAME` can instead
be `NAME_FILE`, the path of a file holding it (Docker and Kubernetes secrets, systemd credentials).

The file is read once, when the settings are built; one trailing newline is dropped (editors and `echo` add it).
Setting both `NAME` and `NAME_FILE`, a missing or unreadable file and an empty one stop the start with the fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, get_args

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from bot.errors import ConfigError

FILE_SUFFIX = "_FILE"


def read_secret_file(variable: str, path: str) -> str:
    """The secret in the file `variable` names, without its trailing newline; ConfigError says what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ConfigError(f"{variable}={path}: cannot read the secret file ({reason})") from err
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret.strip():
        raise ConfigError(f"{variable}={path}: the secret file is empty")
    return secret


def secret_from_env(variable: str, environ: Mapping[str, str] | None = None) -> str | None:
    """`variable`'s value, or the content of the file `variable_FILE` names; None when neither is set."""
    env = os.environ if environ is None else environ
    value, path = env.get(variable, ""), env.get(variable + FILE_SUFFIX, "")
    if value and path:
        raise ConfigError(f"{variable} and {variable}{FILE_SUFFIX} are both set; keep one of them")
    if path:
        return read_secret_file(variable + FILE_SUFFIX, path)
    return value or None


class SecretFilesSource(PydanticBaseSettingsSource):
    """Reads `<VARIABLE>_FILE` for the secret fields of a settings class; ranks above the environment, so an
    empty `VARIABLE=` left in a compose file does not hide the file."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None) -> None:
        super().__init__(settings_cls)
        env = os.environ if environ is None else environ
        self._environ = {name.upper(): value for name, value in env.items()}  # the settings ignore case too

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, variable in secret_variables(self.settings_cls):
            if self._environ.get(variable + FILE_SUFFIX):
                found[name] = secret_from_env(variable, self._environ)
        return found


class SecretFileSettings(BaseSettings):
    """Settings whose secrets (SecretStr fields, and the fields named in `secret_fields`) may come from files."""

    secret_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, SecretFilesSource(settings_cls), env_settings, dotenv_settings, file_secret_settings


def secret_variables(settings_cls: type[BaseSettings]) -> Iterator[tuple[str, str]]:
    """(key, environment variable in upper case) of every secret setting of `settings_cls`; the key is what the
    environment source would give the value under: the alias of an aliased field, else the field's name."""
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    extra: tuple[str, ...] = getattr(settings_cls, "secret_fields", ())
    for name, field in settings_cls.model_fields.items():
        if name not in extra and not _is_secret(field):
            continue
        alias = field.validation_alias
        aliases = alias.choices if isinstance(alias, AliasChoices) else [alias] if isinstance(alias, str) else []
        named = [choice for choice in aliases if isinstance(choice, str)]
        for key, variable in [(choice, choice) for choice in named] or [(name, prefix + name)]:
            yield key, variable.upper()


def _is_secret(field: FieldInfo) -> bool:
    return field.annotation is SecretStr or SecretStr in get_args(field.annotation)
