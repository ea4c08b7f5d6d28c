"""The WAL's record codec (reference/wal_records.py): records and their fold into durable state."""

from __future__ import annotations

import orjson
import pytest

from reference.messages import NOOP, Command, Entry
from reference.wal_records import (
    WalRecordError,
    applied_record,
    ballot_record,
    durable_from_wal,
    granted_record,
    log_record,
)


def test_durable_state_folds_wal_records_latest_wins() -> None:
    recs = [orjson.dumps(x) for x in (["b", 2], ["l", 1, 2, None], ["g", 2], ["b", 5],
                                      ["l", 1, 5, ["w", "{}"]], ["a", 1])]
    ballot, log, granted, applied = durable_from_wal(recs)
    assert (ballot, granted, applied) == (5, 2, 1)
    assert log == {1: Entry(5, Command("w", b"{}"))}
    assert durable_from_wal([orjson.dumps(["l", 2, 1, None])])[1] == {2: Entry(1, NOOP)}


@pytest.mark.parametrize("bad", [b"not json", b'["x", 1]', b'["b"]', b'["l", 1, 2, [1]]'])
def test_undecodable_wal_record_is_named(bad: bytes) -> None:
    with pytest.raises(WalRecordError, match="WAL record 2"):
        durable_from_wal([orjson.dumps(["b", 1]), bad])


def test_record_builders_write_what_recovery_reads() -> None:
    w = Command("w", b'{"put":{}}')
    recs = [ballot_record(2), log_record(1, 2, NOOP), granted_record(2), ballot_record(5),
            log_record(1, 5, w), log_record(2, 5, NOOP), applied_record(1)]
    assert orjson.loads(ballot_record(7)) == ["b", 7]
    assert orjson.loads(granted_record(3)) == ["g", 3]
    assert orjson.loads(applied_record(4)) == ["a", 4]
    assert orjson.loads(log_record(2, 1, NOOP)) == ["l", 2, 1, None]
    assert durable_from_wal(recs) == (5, {1: Entry(5, w), 2: Entry(5, NOOP)}, 2, 1)
    assert durable_from_wal([]) == (0, {}, 0, 0)
