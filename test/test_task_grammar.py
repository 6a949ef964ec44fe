"""The task grammar: named parts of multi-part objects, and the inputs it refuses with a reason."""

import pytest

from sc_mllm_ros.episode.record import BadInput, parse_task
from sc_mllm_ros.sim.objects import OBJECT_NAMES


@pytest.mark.parametrize(
    ("task", "name"),
    [
        ("pull the top drawer", "top drawer"),
        ("Open the left door of the cabinet.", "left door of the cabinet"),
        ("open the left door of a cabinet", "left door of the cabinet"),
        ("pull out the second drawer", "second drawer"),
        ("please pull open the oven door!", "oven door"),
        ("freezer_drawer", "freezer drawer"),
        ("  pull   the   bottom   drawer  ", "bottom drawer"),
    ],
)
def test_tasks_name_the_part(task: str, name: str) -> None:
    assert parse_task(task) == name


@pytest.mark.parametrize("name", sorted({n for names in OBJECT_NAMES.values() for n in names}))
def test_every_part_the_world_asks_for_parses_back_to_itself(name: str) -> None:
    assert parse_task(f"pull the {name}") == name
    assert parse_task(f"open the {name}.") == name


@pytest.mark.parametrize(
    "task",
    [
        "pull the top",  # a qualifier names no part
        "open the left",
        "pull the door of the",  # dangling "of"
        "pull the door of",
        "pull the door of the cabinet of the kitchen",  # two "of"
        "pull the of cabinet",
        "open the open door",
        "pull the drawer & the door",
        "pull the 2nd; drawer",
        "pull the",
    ],
)
def test_bad_tasks_are_refused_with_a_reason(task: str) -> None:
    with pytest.raises(BadInput, match="task"):
        parse_task(task)
