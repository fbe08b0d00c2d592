"""BankSection: keys relative to a prefix, isolation, read-only sections."""

from __future__ import annotations

import pytest

from protectflow.bank import Bank, BankSection
from protectflow.errors import BankError


def test_relative_keys_and_isolation(bank: Bank) -> None:
    section = BankSection(bank, "cp/1/server")
    section.update_object("meta", {"a": 1})
    section.update_object("disks/0", b"\x00\x01")
    bank.update_object("cp/1/server-2/meta", "neighbour")  # shares the string prefix
    bank.update_object("cp/1/serverx", "neighbour")
    assert bank.get_object("cp/1/server/meta") == {"a": 1}
    assert section.list_objects() == ["disks/0", "meta"]
    assert section.list_objects(sort_dir="desc") == ["meta", "disks/0"]
    assert section.list_objects("d") == ["disks/0"]
    assert section.list_objects(limit=1, marker="disks/0") == ["meta"]
    assert section.get_object("disks/0") == b"\x00\x01"
    assert section.has_object("meta") and not section.has_object("nope")
    section.delete_object("meta")
    assert section.list_objects() == ["disks/0"]
    assert bank.get_object("cp/1/server-2/meta") == "neighbour"


def test_section_keys_are_validated(bank: Bank) -> None:
    section = BankSection(bank, "s")
    for bad in ("../escape", "/abs", "a//b"):
        with pytest.raises(BankError, match="invalid bank key"):
            section.update_object(bad, b"x")
    with pytest.raises(BankError, match="invalid bank section prefix"):
        BankSection(bank, "../up")
    assert bank.list_objects() == []


def test_streaming_in_a_section(bank: Bank) -> None:
    section = BankSection(bank, "s")
    with section.open_write("big") as f:
        f.write(b"abc" * 1000)
    with section.open_read("big") as f:
        assert f.read() == b"abc" * 1000


def test_read_only_section_refuses_writes(bank: Bank) -> None:
    BankSection(bank, "ro").update_object("k", "v")
    section = BankSection(bank, "ro", read_only=True)
    assert not section.is_writable
    with pytest.raises(BankError, match="cannot write 'k': bank section 'ro/' is read-only"):
        section.update_object("k", "changed")
    with pytest.raises(BankError, match=r"cannot delete 'k'.*read-only"):
        section.delete_object("k")
    with pytest.raises(BankError, match="read-only"), section.open_write("new"):
        pass
    assert section.get_object("k") == "v"
    assert section.list_objects() == ["k"]
    with section.open_read("k") as f:
        assert f.read() == b"v"
    # A subsection of a read-only section is read-only, whatever is asked.
    sub = section.subsection("deeper", read_only=False)
    with pytest.raises(BankError, match="read-only"):
        sub.update_object("x", b"")
    assert bank.list_objects() == ["ro/k"]


def test_subsection(bank: Bank) -> None:
    sub = BankSection(bank, "a").subsection("b")
    sub.update_object("c", b"")
    assert bank.list_objects() == ["a/b/c"]
    assert sub.is_writable
