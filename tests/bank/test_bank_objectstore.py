"""The Bank: round trips, listing, keys, streaming, pickling."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protectflow.bank import Bank, default_bank_url
from protectflow.errors import BankError
from tests.bank.bank_helpers import make_bank

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture],
                      max_examples=60, deadline=None)


@fixture_ok
@given(data=st.binary(max_size=4096))
def test_bytes_round_trip(bank: Bank, data: bytes) -> None:
    bank.update_object("blob/x", data)
    got = bank.get_object("blob/x")
    assert type(got) is bytes and got == data


@fixture_ok
@given(text=st.text(max_size=500))
def test_text_round_trip(bank: Bank, text: str) -> None:
    bank.update_object("t", text)
    got = bank.get_object("t")
    assert type(got) is str and got == text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=4),
    max_leaves=12,
)


@fixture_ok
@given(value=st.dictionaries(st.text(max_size=5), json_values, max_size=5)
       | st.lists(json_values, max_size=5))
def test_json_round_trip(bank: Bank, value: object) -> None:
    bank.update_object("j", value)
    got = bank.get_object("j")
    assert type(got) is type(value) and got == value


def test_kind_is_preserved_even_when_bytes_look_like_a_header(bank: Bank) -> None:
    bank.update_object("a", b"PFB1s\nhello")
    bank.update_object("b", "PFB1j\n{}")
    bank.update_object("c", b"{}")
    assert bank.get_object("a") == b"PFB1s\nhello"
    assert bank.get_object("b") == "PFB1j\n{}"
    assert bank.get_object("c") == b"{}"


def test_overwrite_delete_missing(bank: Bank) -> None:
    bank.update_object("k", "one")
    bank.update_object("k", b"two")
    assert bank.get_object("k") == b"two"
    assert bank.has_object("k")
    bank.delete_object("k")
    assert not bank.has_object("k")
    with pytest.raises(BankError, match="no bank object 'k'"):
        bank.get_object("k")
    with pytest.raises(BankError, match="no such object"):
        bank.delete_object("k")
    with pytest.raises(BankError, match="cannot store a set"):
        bank.update_object("k", {1, 2})


def test_foreign_file_is_refused(local_bank: Bank) -> None:
    local_bank.update_object("other", b"")  # creates the folder
    Path(local_bank.url, "foreign").write_bytes(b"plain")
    with pytest.raises(BankError, match="'foreign' failed authentication"):
        local_bank.get_object("foreign")
    with pytest.raises(BankError, match="'foreign' failed authentication"), \
            local_bank.open_read("foreign"):
        pass


BAD_KEYS = [
    ("", "non-empty"),
    ("/abs", "absolute"),
    ("a/../b", "'..' segments"),
    ("..", "'..' segments"),
    ("a/./b", "'.' segments"),
    ("a//b", "empty path segments"),
    ("a/", "empty path segments"),
    ("a\\b", "backslashes"),
    ("a\nb", "control character"),
    ("a\x00b", "control character"),
    ("a\x7fb", "control character"),
    ("a/.pftmp-1", "reserved for temporary"),
]


@pytest.mark.parametrize(("key", "rule"), BAD_KEYS)
def test_key_validation(bank: Bank, key: str, rule: str) -> None:
    for call in (lambda: bank.update_object(key, b"x"), lambda: bank.get_object(key),
                 lambda: bank.delete_object(key), lambda: bank.has_object(key)):
        with pytest.raises(BankError) as info:
            call()
        assert rule in str(info.value) and repr(key) in str(info.value)
    assert bank.list_objects() == []


@pytest.mark.parametrize("prefix", ["/a", "a/../", "a\\", "a//"])
def test_prefix_validation(bank: Bank, prefix: str) -> None:
    with pytest.raises(BankError, match="invalid bank prefix"):
        bank.list_objects(prefix)


def test_non_string_key(bank: Bank) -> None:
    with pytest.raises(BankError, match="non-empty string"):
        bank.update_object(3, b"x")  # type: ignore[arg-type]


# Keys over a small alphabet, so that '-', '.' and '/' collide in ordering.
segments = st.text(alphabet="ab-.~", min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
keys = st.lists(segments, min_size=1, max_size=3).map("/".join)


def _consistent(ks: set[str]) -> list[str]:
    # A file system cannot hold both 'a' and 'a/b': drop the shorter.
    return sorted(k for k in ks if not any(o.startswith(k + "/") for o in ks))


@settings(max_examples=40, deadline=None)
@given(ks=st.sets(keys, min_size=1, max_size=25), kind=st.sampled_from(["local", "memory"]),
       limit=st.integers(1, 7), prefix=st.sampled_from(["", "a", "a/", "b-", "a.", "~"]),
       marker=keys)
def test_listing_order_paging_prefix(ks: set[str], kind: str, limit: int, prefix: str,
                                     marker: str) -> None:
    expected = _consistent(ks)
    with tempfile.TemporaryDirectory() as tmp:
        bank = make_bank(kind, Path(tmp))
        for k in expected:
            bank.update_object(k, k)
        assert bank.list_objects() == expected
        assert bank.list_objects(sort_dir="desc") == expected[::-1]
        assert bank.list_objects(prefix) == [k for k in expected if k.startswith(prefix)]
        assert bank.list_objects(marker=marker) == [k for k in expected if k > marker]
        assert bank.list_objects(marker=marker, sort_dir="desc") == [
            k for k in expected[::-1] if k < marker]
        for sort_dir, want in (("asc", expected), ("desc", expected[::-1])):
            want = [k for k in want if k.startswith(prefix)]
            pages: list[str] = []
            page_marker = None
            while True:
                page = bank.list_objects(prefix, limit=limit, marker=page_marker,
                                         sort_dir=sort_dir)
                assert len(page) <= limit
                if not page:
                    break
                pages += page
                page_marker = page[-1]
            assert pages == want


def test_listing_arguments(bank: Bank) -> None:
    bank.update_object("a", b"")
    assert bank.list_objects(limit=0) == []
    with pytest.raises(BankError, match="limit must be >= 0"):
        bank.list_objects(limit=-1)
    with pytest.raises(BankError, match="unknown sort_dir 'up'"):
        bank.list_objects(sort_dir="up")


def test_temp_files_are_not_listed(bank: Bank) -> None:
    bank.update_object("d/real", b"1")
    backend = bank.backend
    if isinstance(bank.backend.root, str) and bank.url.startswith("memory://"):
        backend.fs.pipe_file(backend.path("d/.pftmp-dead"), b"half")  # type: ignore[union-attr]
    else:
        Path(backend.path("d"), ".pftmp-dead").write_bytes(b"half")
    assert bank.list_objects() == ["d/real"]
    assert bank.list_objects("d/") == ["d/real"]


def test_streaming_round_trip(bank: Bank) -> None:
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with bank.open_write("big/obj") as f:
        for _ in range(5):
            f.write(chunk)
    assert bank.list_objects() == ["big/obj"]
    with bank.open_read("big/obj") as f:
        parts = iter(lambda: f.read(300_000), b"")
        assert b"".join(parts) == chunk * 5
    assert bank.get_object("big/obj") == chunk * 5


def test_failed_stream_keeps_old_object(bank: Bank) -> None:
    bank.update_object("k", b"old")
    with pytest.raises(RuntimeError), bank.open_write("k") as f:
        f.write(b"new new new")
        raise RuntimeError("boom")
    assert bank.get_object("k") == b"old"
    assert bank.list_objects() == ["k"]
    if not bank.url.startswith("memory://"):
        assert sorted(os.listdir(bank.url)) == ["config", "k"]  # no temporary file
    with pytest.raises(BankError, match="no bank object 'nope'"), bank.open_read("nope"):
        pass


def test_pickle_round_trip(bank: Bank) -> None:
    bank.update_object("k", "v")
    _ = bank.backend
    clone = pickle.loads(pickle.dumps(bank))
    assert clone == bank and clone._backend is None
    assert clone.get_object("k") == "v"


def test_pickled_bank_in_another_process(local_bank: Bank) -> None:
    local_bank.update_object("k", {"n": 1})
    code = ("import pickle, sys; b = pickle.loads(sys.stdin.buffer.read()); "
            "print(b.get_object('k')['n']); b.update_object('from-child', 'hi')")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(local_bank),
                         capture_output=True, check=True)
    assert out.stdout.strip() == b"1"
    assert local_bank.get_object("from-child") == "hi"


def test_urls(tmp_path: Path) -> None:
    assert Bank(f"file://{tmp_path}/x").url == str(tmp_path / "x")
    Bank(f"file://{tmp_path}/x").update_object("k", b"1")
    assert Bank(tmp_path / "x").get_object("k") == b"1"


def test_default_bank_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROTECTFLOW_BANK", str(tmp_path / "env-bank"))
    assert default_bank_url() == str(tmp_path / "env-bank")
    assert Bank().url == str(tmp_path / "env-bank")
    monkeypatch.delenv("PROTECTFLOW_BANK")
    import platformdirs

    assert default_bank_url() == os.path.join(platformdirs.user_data_dir("protectflow"), "bank")


@pytest.mark.parametrize("value", [0, -3, 2.5, True, None, [], {}])
def test_json_scalars_round_trip(bank: Bank, value: object) -> None:
    bank.update_object("v", value)
    got = bank.get_object("v")
    assert got == value and type(got) is type(value)
