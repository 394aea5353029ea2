"""The storage service's ``sd-card-status`` property: the card state as the device model reports it.

MIoT-spec style property (urn:miot-spec-v2:property:sd-card-status, an enumerated uint8): :class:`SdCardStatus` is
the detailed value this service tracks; :func:`spec_sd_status` folds it into the device model's coarser
``storage.sd-status`` (siid 6, piid 1 in ``device_sim/spec/model.json``: 0 normal, 1 none, 2 full, 3 error).
"""
from __future__ import annotations

import enum

from device_sim.hal.sdcard import CardState


class SdCardStatus(enum.IntEnum):
    NORMAL = 0
    NO_CARD = 1
    READ_ONLY = 2
    CORRUPT = 3          # needs format-sd-card
    FORMATTING = 4
    FULL_LOOPING = 5     # recording on, oldest footage being overwritten (still healthy)
    UNFORMATTED = 6


VALUE_LIST = [{"value": int(s), "description": s.name.replace("_", " ").title()} for s in SdCardStatus]


def status_of(state: CardState, *, formatting: bool = False, looping: bool = False) -> SdCardStatus:
    if formatting:
        return SdCardStatus.FORMATTING
    return {
        CardState.OK: SdCardStatus.FULL_LOOPING if looping else SdCardStatus.NORMAL,
        CardState.REMOVED: SdCardStatus.NO_CARD,
        CardState.READ_ONLY: SdCardStatus.READ_ONLY,
        CardState.CORRUPT: SdCardStatus.CORRUPT,
        CardState.UNFORMATTED: SdCardStatus.UNFORMATTED,
    }[state]


SPEC_NORMAL, SPEC_NONE, SPEC_FULL, SPEC_ERROR = 0, 1, 2, 3


def spec_sd_status(status: SdCardStatus) -> int:
    """The device model's ``sd-status`` value: read-only, corrupt, unformatted and formatting all read "error"."""
    return {SdCardStatus.NORMAL: SPEC_NORMAL, SdCardStatus.NO_CARD: SPEC_NONE,
            SdCardStatus.FULL_LOOPING: SPEC_FULL}.get(status, SPEC_ERROR)
