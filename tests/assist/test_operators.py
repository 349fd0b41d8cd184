"""Operator accounts: scrypt hashes, the accounts file `kefu operators` writes, and clear errors for bad ones."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.assist.operators import OperatorAccounts, hash_password, verify_password
from bot.assist.operators_cli import run_operators
from bot.errors import ConfigError
from bot.settings import Settings
from tests.conftest import SHOP


def test_passwords_are_stored_as_salted_scrypt_hashes() -> None:
    first, second = hash_password("s3cret-password"), hash_password("s3cret-password")
    assert first != second and "s3cret" not in first and first.startswith("scrypt$")
    assert verify_password("s3cret-password", first) and not verify_password("s3cret-passwore", first)
    assert not verify_password("s3cret-password", "plain:s3cret-password")


def test_kefu_operators_adds_lists_and_removes_accounts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    out = io.StringIO()
    code = run_operators(
        SHOP, settings, add="小王", remove=None, password_stdin=True, stdin=io.StringIO("long enough 1\n"), out=out
    )
    assert code == 0 and "operators (1): 小王" in out.getvalue()
    file = tmp_path / "operators"
    assert file.stat().st_mode & 0o777 == 0o600 and "long enough" not in file.read_text(encoding="utf-8")
    accounts = OperatorAccounts.load(tmp_path, environ={})
    assert (
        accounts.check("小王", "long enough 1") and not accounts.check("小王", "wrong") and not accounts.check("x", "")
    )

    with pytest.raises(ConfigError, match="at least 8"):
        run_operators(SHOP, settings, add="b", remove=None, password_stdin=True, stdin=io.StringIO("short\n"))
    assert run_operators(SHOP, settings, add=None, remove="nobody", password_stdin=False, out=io.StringIO()) == 1
    assert run_operators(SHOP, settings, add=None, remove="小王", password_stdin=False, out=io.StringIO()) == 0
    assert len(OperatorAccounts.load(tmp_path, environ={})) == 0


def test_a_malformed_account_names_its_place(tmp_path: Path) -> None:
    (tmp_path / "operators").write_text("# agents\nalice:hunter2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"operators:2: an operator account is NAME:scrypt"):
        OperatorAccounts.load(tmp_path, environ={})
    environ = {"KEFU_OPERATORS_FILE": str(tmp_path / "none"), "KEFU_OPERATORS": f"bob:{hash_password('pw-12345678')}"}
    assert OperatorAccounts.load(tmp_path, environ=environ).check("bob", "pw-12345678")
