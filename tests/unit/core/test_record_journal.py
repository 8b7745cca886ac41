"""The record journal puts records and dict keys back exactly, in place, after a rollback."""

from __future__ import annotations

from dataclasses import dataclass, field

from pasar.core.record_journal import REPLACED_WHOLE, RecordJournal


@dataclass
class Window:
    bids: dict[str, int] = field(default_factory=dict)


@dataclass
class Record:
    status: str = "open"
    items: list[int] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    running: dict[str, int] = field(default_factory=dict)
    window: Window | None = None


def test_fields_and_containers_come_back_in_place() -> None:
    window = Window({"a": 1})
    record = Record(items=[1, 2], seen={3}, running={"x": 1}, window=window)
    items, seen, running = record.items, record.seen, record.running
    journal = RecordJournal()
    journal.save(record)
    record.status = "done"
    record.items.append(3)
    record.items.pop(0)
    record.seen.add(4)
    record.running.pop("x")
    record.running["y"] = 2
    window.bids["b"] = 2
    record.window = Window()
    journal.rollback()
    assert record == Record(items=[1, 2], seen={3}, running={"x": 1}, window=Window({"a": 1}))
    # the same containers and the same window: references held elsewhere stay valid
    assert record.items is items and record.seen is seen and record.running is running
    assert record.window is window


def test_a_record_is_saved_once_as_it_was_before_the_transaction() -> None:
    record = Record()
    journal = RecordJournal()
    journal.save(record)
    record.status = "running"
    journal.save(record)  # a second save must not overwrite the first snapshot
    record.status = "done"
    journal.rollback()
    assert record.status == "open"


def test_keys_inserted_replaced_and_changed_in_place_are_undone() -> None:
    first, second = Record(status="a"), Record(status="b")
    table: dict[str, Record] = {"p1": first, "p2": second}
    index: dict[str, set[str]] = {"h1": {"o1"}}
    journal = RecordJournal()
    journal.save_key(table, "p3")
    table["p3"] = Record()
    journal.save_key(table, "p1")
    table["p1"] = Record(status="replaced")
    journal.save_key(index, "h1")
    index["h1"].add("o2")
    journal.save_key(index, "h2")
    index.setdefault("h2", set()).add("o2")
    assert journal.touched_keys(table) == ["p3", "p1"]
    journal.rollback()
    assert table == {"p1": first, "p2": second} and table["p1"] is first
    assert list(table) == ["p1", "p2"]  # a replaced value keeps its place
    assert index == {"h1": {"o1"}}


def test_nothing_saved_nothing_changed() -> None:
    record = Record()
    journal = RecordJournal()
    record.status = "changed without a save"
    journal.rollback()
    assert record.status == "changed without a save"
    assert journal.touched_records() == []


@dataclass
class Matched:
    note: str = ""
    reasons: dict[str, str] = field(default_factory=dict, metadata=REPLACED_WHOLE)


def test_a_field_replaced_whole_is_kept_by_reference_not_copied() -> None:
    reasons = {f"p{i}": "ask too high" for i in range(1000)}
    record = Matched(reasons=reasons)
    journal = RecordJournal()
    journal.save(record)
    record.reasons = {"p1": "offline"}
    record.note = "matched"
    journal.rollback()
    assert record.reasons is reasons and record == Matched(reasons=dict(reasons))


def test_items_added_to_a_set_are_discarded_again_without_copying_it() -> None:
    members = {"o1", "o2"}
    index: dict[str, set[str]] = {"h1": members}
    journal = RecordJournal()
    journal.adding(members, "o3")
    members.add("o3")
    journal.adding(members, "o1")  # already there before: stays after the rollback
    journal.adding(members, "o3")  # added twice in one transaction: saved once
    members.add("o3")
    assert journal._keys == {} and journal._records == {}  # nothing copied
    journal.rollback()
    assert index == {"h1": {"o1", "o2"}} and index["h1"] is members


def test_a_set_saved_whole_after_an_item_was_added_loses_the_item_too() -> None:
    index: dict[str, set[str]] = {"h1": {"o1"}}
    journal = RecordJournal()
    journal.adding(index["h1"], "o2")
    index["h1"].add("o2")
    journal.save_key(index, "h1")  # its copy holds o2
    index["h1"].add("o3")
    journal.rollback()
    assert index == {"h1": {"o1"}}
