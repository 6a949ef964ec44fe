"""The failure taxonomy of the papers, shared by the prompts, the simulator's labels and the messages."""

from __future__ import annotations

import enum


class Cause(enum.StrEnum):
    """Why an executed pose failed (or did not); the value is the word the prompts and records use."""

    SUCCESS = "success"
    POSITION = "position"  # the contact is off the movable part
    ROTATION = "rotation"  # the approach axis is more than 30 deg from the part's normal
    POSITION_AND_ROTATION = "position and rotation"


CAUSES = tuple(c.value for c in Cause)  # index: int(position wrong) + 2 * int(rotation wrong)
