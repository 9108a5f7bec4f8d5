"""Settings: embedded defaults work with nothing set; production refuses to run half-set."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from server.records import documents_key
from server.settings import Settings

SECRET = "s" * 40
KEY = base64.b64encode(bytes(range(32))).decode()


def test_defaults_need_nothing(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url is None and settings.sqlalchemy_url.startswith("sqlite")
    # Development generates the document key once, in the data directory, and reuses it.
    assert documents_key(settings) == documents_key(settings)
    assert (tmp_path / "keys" / "documents.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("values", "needs"),
    [
        ({"documents_key": KEY}, "LOKET_JWT_SECRET"),
        ({"jwt_secret": SECRET}, "LOKET_DOCUMENTS_KEY"),
        ({"jwt_secret": SECRET, "documents_key": KEY, "crash_point": "outcome_after_commit"},
         "LOKET_CRASH_POINT"),
    ],
)  # fmt: skip
def test_production_refuses_missing_secrets_and_test_hooks(values, needs) -> None:
    with pytest.raises(ValidationError, match=needs):
        Settings(environment="production", **values)
    Settings(environment="production", jwt_secret=SECRET, documents_key=KEY)


@pytest.mark.parametrize("bad", ["not base64!!", base64.b64encode(b"short").decode()])
def test_a_malformed_documents_key_is_refused_with_the_fix(tmp_path, bad) -> None:
    with pytest.raises(ValueError, match="LOKET_DOCUMENTS_KEY"):
        documents_key(Settings(data_dir=tmp_path, documents_key=bad))
