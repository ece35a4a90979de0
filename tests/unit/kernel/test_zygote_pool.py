"""Which zygote serves an evaluation: an idle one that agrees on the import-time variables, a new
one when all such are busy. (No process is started: a zygote starts at its first job.)"""

from __future__ import annotations

from turngym.envs.kernel.zygote import ZygotePool


def test_an_idle_zygote_is_reused_and_a_busy_one_is_not() -> None:
    pool = ZygotePool()
    first = pool.acquire({"A": "1"})
    busy = pool.acquire({"A": "1"})
    assert busy is not first and first.pid is None
    first.lock.release()
    busy.lock.release()
    again = pool.acquire({"A": "2", "MAX_JOBS": "4"})  # load_inline sets MAX_JOBS: still reused
    assert again is first and pool.zygotes() == [first, busy]
    again.lock.release()


def test_jobs_that_differ_in_import_time_variables_get_their_own_zygote() -> None:
    pool = ZygotePool()
    cpp = pool.acquire({"OMP_NUM_THREADS": "1"})
    cpp.lock.release()
    interpreted = pool.acquire({"OMP_NUM_THREADS": "1", "TRITON_INTERPRET": "1"})
    interpreted.lock.release()
    two_threads = pool.acquire({"OMP_NUM_THREADS": "2"})
    assert len({id(cpp), id(interpreted), id(two_threads)}) == 3
    assert pool.acquire({"OMP_NUM_THREADS": "1", "PATH": "/bin"}) is cpp
