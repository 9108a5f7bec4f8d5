"""Consent to be recorded: the words the participant is shown, and their answer.

The answer goes to the server with the recording's opening (audited there with the SHA-256
of the very words shown, so an auditor can tell which text was agreed to). A refusal
follows the server's policy (`GET /api/recording-policy`): `in_person` (the default: no
remote session; the kiosk says where to go, and the refusal is audited on the claim its
reference finds) or `unrecorded` (the session goes on, the officer sees it is not
recorded).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Literal

from signaling.messages import Language

Answer = Literal["given", "refused"]

# Kept here, not in the gettext catalogue: its hash is evidence, so the words must not
# change with a translator's edit without the code (and the hash) changing with them.
TEXTS: dict[Language, str] = {
    Language.INDONESIAN: (
        "Sesi video ini akan direkam (wajah dan suara Anda serta petugas) sebagai bukti "
        "verifikasi klaim Anda. Rekaman disimpan terenkripsi selama {years} tahun, hanya "
        "dapat dilihat oleh pengawas dan auditor, lalu dihapus. Apakah Anda setuju direkam?"
    ),
    Language.ENGLISH: (
        "This video session will be recorded (your face and voice and the officer's) as "
        "evidence for the verification of your claim. The recording is kept encrypted for "
        "{years} years, seen only by supervisors and auditors, then deleted. Do you agree "
        "to be recorded?"
    ),
}
DEFAULT_YEARS = 5


def consent_text(language: Language, years: float = DEFAULT_YEARS) -> str:
    shown = f"{years:g}"
    return TEXTS.get(language, TEXTS[Language.INDONESIAN]).format(years=shown)


@dataclass(frozen=True)
class Consent:
    """What the participant answered, to what words, when (the kiosk's clock)."""

    answer: Answer
    language: Language
    text: str
    answered_at: float

    @classmethod
    def answered(cls, answer: Answer, language: Language, years: float = DEFAULT_YEARS) -> Consent:
        return cls(answer, language, consent_text(language, years), time.time())

    @property
    def given(self) -> bool:
        return self.answer == "given"

    def body(self, policy: str | None = None) -> dict[str, Any]:
        """As the server takes it (server/api/recordings.py ConsentBody)."""
        body: dict[str, Any] = {
            "answer": self.answer,
            "answered_at": round(self.answered_at, 3),
            "language": str(self.language),
            "text_sha256": hashlib.sha256(self.text.encode()).hexdigest(),
        }
        if policy is not None:
            body["policy"] = policy
        return body
