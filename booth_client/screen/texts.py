"""What the screen says about things the protocol names by code: documents, claim types,
capture advice, refused check-ins, how a session ended, waiting times, field problems.

Every sentence goes through the catalogue (`tr.gettext`), so Babel extracts it from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from booth_client.screen.i18n import Translator
from signaling.messages import ClaimType


def document_name(tr: Translator, kind: str) -> str:
    """The document as the participant knows it (KTP, KK, kartu KPJ, paklaring...)."""
    names = {
        "ktp": tr.gettext("KTP (identity card)"),
        "kk": tr.gettext("KK (family card)"),
        "kpj_card": tr.gettext("KPJ card"),
        "paklaring": tr.gettext("paklaring (employer's reference letter)"),
        "termination_letter": tr.gettext("termination letter (surat PHK)"),
        "buku_tabungan": tr.gettext("savings book (buku tabungan)"),
        "npwp": tr.gettext("NPWP card (tax number)"),
        "kitas": tr.gettext("KITAS (limited-stay permit)"),
        "death_certificate": tr.gettext("death certificate"),
        "heirs_letter": tr.gettext("letter of heirs (surat keterangan ahli waris)"),
        "doctor_statement": tr.gettext("doctor's statement"),
    }
    return names.get(kind, kind.replace("_", " "))


def claim_type_name(tr: Translator, claim_type: ClaimType) -> str:
    names = {
        ClaimType.RESIGNATION: tr.gettext("Resigned"),
        ClaimType.TERMINATION: tr.gettext("Laid off (PHK)"),
        ClaimType.RETIREMENT: tr.gettext("Retired (age 56)"),
        ClaimType.DISABILITY: tr.gettext("Total permanent disability"),
        ClaimType.DEATH: tr.gettext("Death (claim by heirs)"),
    }
    return names[claim_type]


def capture_advice(tr: Translator, advice: str) -> str:
    """The capture pipeline's advice code (booth_client.capture.Advice) as a sentence."""
    sentences = {
        "place_document": tr.gettext("Place the whole document under the document camera"),
        "move_closer": tr.gettext("Bring the document closer to the camera"),
        "hold_still": tr.gettext("Hold the document still"),
        "avoid_glare": tr.gettext("Avoid light reflections: tilt the document slightly"),
    }
    return sentences.get(advice, tr.gettext("Hold the document still"))


def check_in_refusal(tr: Translator, code: str, method: str | None) -> str:
    """Why the server refused a check-in, and what to do (signaling.errors.ErrorCode)."""
    if code == "claim_not_found":
        if method == "booking":
            return tr.gettext(
                "This booking code was not found. Check it, or check in without a booking "
                "using your NIK and KPJ number."
            )
        return tr.gettext("No claim was found for this NIK and KPJ number. Please check them.")
    if code == "claim_refused":
        return tr.gettext(
            "This NIK and KPJ number cannot be used for a claim here. Check them, or ask "
            "the branch staff."
        )
    if code in ("internal", "rate_limited"):
        return tr.gettext("The service is busy. Trying again…")
    return tr.gettext("Check-in did not work. Please try again.")


def session_end(tr: Translator, reason: str | None) -> tuple[str, ...]:
    """What happens next, after a session ended for `reason` (signaling EndReason)."""
    match reason:
        case "completed" | "cso_ended" | "supervisor_ended":
            return (
                tr.gettext("The officer has finished your verification."),
                tr.gettext(
                    "The result of your claim will be sent to you. You do not need to come "
                    "back unless you are asked to."
                ),
                tr.gettext("Please take all your documents with you."),
            )
        case _:
            return (
                tr.gettext("Your session has ended."),
                tr.gettext(
                    "If your verification was not finished, you can check in again: your "
                    "claim and the documents already sent are kept."
                ),
                tr.gettext("Please take all your documents with you."),
            )


def waiting_time(tr: Translator, seconds: float | None) -> str:
    if seconds is None:
        return tr.gettext("Estimating the waiting time…")
    if seconds < 60:
        return tr.gettext("Estimated wait: less than a minute")
    return tr.gettext("Estimated wait: about %(minutes)d min") % {
        "minutes": math.ceil(seconds / 60)
    }


# --- the check-in form's fields ---------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """What is wrong with a field, from the pydantic error of BookingRef/WalkInRef."""

    field: str  # booking_code, nik, kpj, claim_type
    typed: int  # characters typed so far


def field_problem(tr: Translator, problem: Problem) -> str:
    empty = problem.typed == 0
    match problem.field:
        case "booking_code":
            if empty:
                return tr.gettext("Type your booking code.")
            return tr.gettext(
                "A booking code has 4 to 32 letters, digits or dashes, as on your booking "
                "confirmation."
            )
        case "nik":
            if empty:
                return tr.gettext("Type your NIK: the 16 digits on your KTP.")
            return tr.gettext("A NIK has 16 digits; %(typed)d typed so far.") % {
                "typed": problem.typed
            }
        case "kpj":
            if empty:
                return tr.gettext("Type your KPJ number: the 11 digits on your KPJ card.")
            return tr.gettext("A KPJ number has 11 digits; %(typed)d typed so far.") % {
                "typed": problem.typed
            }
        case "claim_type":
            return tr.gettext("Choose why you are claiming.")
    return tr.gettext("Please check this field.")
