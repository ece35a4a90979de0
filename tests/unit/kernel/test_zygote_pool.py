"""Which zygote serves an evaluation: an idle one whatever the environment, a new one when all are busy.
(No process is started: a zygote starts at its first job.)"""

from __future__ import annotations

from turngym.envs.kernel.zygote import ZygotePool


def test_an_idle_zygote_is_reused_and_a_busy_one_is_not() -> None:
    pool = ZygotePool()
    first = pool.acquire({"A": "1"})
    busy = pool.acquire({"A": "1"})
    assert busy is not first and first.pid is None
    first.lock.release()
    busy.lock.release()
    again = pool.acquire({"A": "2", "MAX_JOBS": "4"})  # an environment changed since: still reused
    assert again is first and pool.zygotes() == [first, busy]
    again.lock.release()
