"""Hash-chained logs (``buttress.dr.chain``): the hash is the documented SHA-256 of seq, prev and
canonical JSON; verification finds an edited body, a removed, reordered or inserted record, and a
forged link, at the first record it breaks."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from buttress.dr.chain import GENESIS, canonical, link, make_record, verify_chain
from buttress.errors import ConfigError


def _chain(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    prev = GENESIS
    for i in range(1, n + 1):
        r = make_record(i, prev, {"claim_id": f"c-{i}", "benefit": "housing", "n": i})
        out.append(r)
        prev = r["hash"]
    return out


def test_the_hash_is_sha256_of_seq_prev_and_canonical_json() -> None:
    body = {"b": 1, "a": "é"}
    assert '{"a":"\\u00e9","b":1}' == canonical(body)
    expected = hashlib.sha256(f'1\n{GENESIS}\n{{"a":"\\u00e9","b":1}}'.encode()).hexdigest()
    assert expected == link(1, GENESIS, body)
    assert "0" * 64 == GENESIS
    with pytest.raises(ConfigError, match="seq"):
        link(0, GENESIS, body)


def test_an_intact_chain_verifies_to_its_head() -> None:
    chain = _chain(5)
    check = verify_chain(chain)
    assert check.intact and 5 == check.records and chain[-1]["hash"] == check.head
    assert {"records": 5, "head": chain[-1]["hash"], "intact": True, "break_at": None,
            "reason": None} == check.to_json()  # fmt: skip
    empty = verify_chain([])
    assert empty.intact and 0 == empty.records and GENESIS == empty.head


@pytest.mark.parametrize(
    ("tamper", "break_at", "reason"),
    [
        (lambda c: c[2]["body"].update(benefit="pension"), 3, "hash does not match"),
        (lambda c: c.pop(2), 3, "has seq 4"),
        (lambda c: c.insert(1, c.pop(3)), 2, "has seq 4"),
        (lambda c: c.pop(0), 1, "has seq 2"),
        (lambda c: c[3].update(prev=c[1]["hash"]), 4, "prev is not record 3's hash"),
        (lambda c: c[1].pop("body"), 2, "no body"),
    ],
    ids=["edited", "removed", "reordered", "first-removed", "forged-link", "no-body"],
)
def test_tampering_breaks_the_chain_where_it_happened(
    tamper: Any, break_at: int, reason: str
) -> None:
    chain = _chain(6)
    tamper(chain)
    check = verify_chain(chain)
    assert not check.intact
    assert break_at == check.break_at
    assert reason in str(check.reason)
    assert break_at - 1 == check.records


def test_a_rewritten_tail_is_consistent_on_its_own() -> None:
    # What the chain alone cannot see: a whole tail recomputed.  Another copy can (the lab
    # compares the heads of every copy).
    chain = _chain(4)
    forged = [*chain[:2], make_record(3, chain[1]["hash"], {"claim_id": "forged"})]
    assert verify_chain(forged).intact
    assert verify_chain(forged).head != verify_chain(chain[:3]).head
