"""DAGScheduler bookkeeping without processes: stages, shuffle reuse, fetch failures,
executor loss, aborts and cancellation."""

from __future__ import annotations

from typing import Any

import pytest
from _fakes import Listener, Sink, collect

from scheduler.core.dag import DAGScheduler, Job, TaskSet
from scheduler.core.errors import JobCancelledError, JobFailedError
from scheduler.shuffle.mapoutput import MapOutput

_collect = collect


def _finish(
    dag: DAGScheduler, ts: TaskSet, executor: str = "e1", skip: set[int] = frozenset()
) -> None:  # type: ignore[assignment]
    for index in ts.indices:
        if index in skip:
            continue
        if ts.spec.shuffle_dep is not None:
            out = MapOutput(executor, "h", f"/tmp/{ts.stage_id}-{index}")
            dag.task_succeeded(ts.stage_id, ts.attempt, index, out)
        else:
            dag.task_succeeded(ts.stage_id, ts.attempt, index, [index])


def test_a_narrow_job_is_one_stage(ctx: Any) -> None:
    sink, listener = Sink(), Listener()
    dag = DAGScheduler(sink)
    rdd = ctx.parallelize(list(range(10)), 3).map(lambda x: x + 1).filter(bool)
    dag.submit_job(rdd, _collect, [0, 1, 2], listener)
    assert len(sink.task_sets) == 1
    ts = sink.task_sets[0]
    assert ts.partitions == [0, 1, 2] and ts.spec.shuffle_dep is None
    _finish(dag, ts)
    assert listener.results == {0: [0], 1: [1], 2: [2]}
    assert not dag.jobs


def test_a_shuffle_runs_its_map_stage_first_and_is_reused_by_later_jobs(ctx: Any) -> None:
    sink = Sink()
    dag = DAGScheduler(sink)
    summed = ctx.parallelize(list(range(10)), 2).map(lambda x: (x % 3, x)).reduceByKey(max)
    dag.submit_job(summed, _collect, [0, 1], Listener())
    assert [ts.spec.shuffle_dep is not None for ts in sink.task_sets] == [True]
    _finish(dag, sink.task_sets[0])
    assert len(sink.task_sets) == 2 and sink.task_sets[1].spec.shuffle_dep is None
    shuffle_id = sink.task_sets[0].spec.shuffle_dep.shuffle_id  # type: ignore[union-attr]
    assert all(o is not None for o in sink.task_sets[1].spec.map_outputs[shuffle_id])
    _finish(dag, sink.task_sets[1])
    # A second job on the same shuffle needs no map stage.
    dag.submit_job(summed.mapValues(str), _collect, [0, 1], Listener())
    assert len(sink.task_sets) == 3 and sink.task_sets[2].spec.shuffle_dep is None


def test_a_partitioned_rdd_joined_with_itself_needs_no_second_shuffle(ctx: Any) -> None:
    sink = Sink()
    dag = DAGScheduler(sink)
    pairs = ctx.parallelize([(i % 4, i) for i in range(20)], 2).partitionBy(2)
    joined = pairs.join(pairs)
    dag.submit_job(joined, _collect, [0, 1], Listener())
    _finish(dag, sink.task_sets[0])
    _finish(dag, sink.task_sets[1])
    assert len(sink.task_sets) == 2
    assert len(dag.map_outputs) == 1


def test_a_fetch_failure_recomputes_the_lost_output_then_retries_the_stage(ctx: Any) -> None:
    sink, listener = Sink(), Listener()
    dag = DAGScheduler(sink)
    summed = ctx.parallelize(list(range(10)), 2).map(lambda x: (x, x)).reduceByKey(max, 2)
    dag.submit_job(summed, _collect, [0, 1], listener)
    map_ts = sink.task_sets[0]
    _finish(dag, map_ts, executor="e1")
    result_ts = sink.task_sets[1]
    dag.task_succeeded(result_ts.stage_id, result_ts.attempt, 0, ["ok"])
    shuffle_id = map_ts.spec.shuffle_dep.shuffle_id  # type: ignore[union-attr]
    dag.fetch_failed(result_ts.stage_id, result_ts.attempt, shuffle_id, 1, "e1")
    assert result_ts.stage_id in sink.cancelled
    # Every output on e1 is gone: the map stage runs again, for its missing partitions.
    again = sink.task_sets[2]
    assert again.stage_id == map_ts.stage_id and again.attempt == 1 and again.indices == [0, 1]
    _finish(dag, again, executor="e2")
    retry = sink.task_sets[3]
    assert retry.stage_id == result_ts.stage_id and retry.attempt == 1
    assert retry.indices == [1]  # partition 0's result was already in
    _finish(dag, retry)
    assert listener.error is None and set(listener.results) == {0, 1}


def test_repeated_fetch_failures_abort_the_job(ctx: Any) -> None:
    sink, listener = Sink(), Listener()
    dag = DAGScheduler(sink, max_stage_attempts=2)
    summed = ctx.parallelize(list(range(4)), 2).map(lambda x: (x, x)).reduceByKey(max, 2)
    dag.submit_job(summed, _collect, [0, 1], listener)
    for _ in range(2):
        map_ts = [t for t in sink.task_sets if t.spec.shuffle_dep is not None][-1]
        _finish(dag, map_ts)
        result_ts = sink.task_sets[-1]
        sid = map_ts.spec.shuffle_dep.shuffle_id  # type: ignore[union-attr]
        dag.fetch_failed(result_ts.stage_id, result_ts.attempt, sid, 0, "e1")
    assert isinstance(listener.error, JobFailedError)
    assert "fetch failures" in str(listener.error)


def test_executor_loss_during_a_map_stage_reruns_its_outputs(ctx: Any) -> None:
    sink = Sink()
    dag = DAGScheduler(sink)
    summed = ctx.parallelize(list(range(9)), 3).map(lambda x: (x, x)).reduceByKey(max, 2)
    dag.submit_job(summed, _collect, [0, 1], Listener())
    map_ts = sink.task_sets[0]
    dag.task_succeeded(map_ts.stage_id, 0, 0, MapOutput("e1", "h", "/a"))
    dag.task_succeeded(map_ts.stage_id, 0, 1, MapOutput("e2", "h", "/b"))
    dag.executor_lost("e1")
    dag.task_succeeded(map_ts.stage_id, 0, 2, MapOutput("e2", "h", "/c"))
    rerun = sink.task_sets[1]
    assert rerun.stage_id == map_ts.stage_id and rerun.indices == [0]


def test_an_aborted_task_set_fails_the_job_with_the_reason(ctx: Any) -> None:
    sink, listener = Sink(), Listener()
    dag = DAGScheduler(sink)
    dag.submit_job(ctx.parallelize([1, 2], 2), _collect, [0, 1], listener)
    ts = sink.task_sets[0]
    dag.task_set_failed(ts.stage_id, ts.attempt, "Task 1 in stage 0.0 failed 4 times: boom")
    assert isinstance(listener.error, JobFailedError)
    assert "failed 4 times: boom" in str(listener.error)
    assert not dag.jobs


def test_cancelling_a_job_cancels_its_stages(ctx: Any) -> None:
    sink, listener = Sink(), Listener()
    dag = DAGScheduler(sink)
    job_id = dag.submit_job(ctx.parallelize([1, 2], 2), _collect, [0, 1], listener)
    dag.cancel_job(job_id, "part of cancelled job group g")
    assert isinstance(listener.error, JobCancelledError)
    assert "job group g" in str(listener.error)
    assert sink.cancelled == [sink.task_sets[0].stage_id]


def test_a_stage_shared_by_two_jobs_survives_one_cancellation(ctx: Any) -> None:
    sink = Sink()
    dag = DAGScheduler(sink)
    summed = ctx.parallelize(list(range(4)), 2).map(lambda x: (x, x)).reduceByKey(max, 2)
    first, second = Listener(), Listener()
    job1 = dag.submit_job(summed, _collect, [0, 1], first)
    dag.submit_job(summed.keys(), _collect, [0, 1], second)
    map_stage = sink.task_sets[0].stage_id
    dag.cancel_job(job1, "by test")
    assert map_stage not in sink.cancelled
    _finish(dag, sink.task_sets[0])
    result = sink.task_sets[-1]
    _finish(dag, result)
    assert second.error is None and set(second.results) == {0, 1}


@pytest.mark.parametrize("n", [1, 3])
def test_result_tasks_compute_the_requested_partitions(ctx: Any, n: int) -> None:
    sink = Sink()
    dag = DAGScheduler(sink)
    rdd = ctx.parallelize(list(range(10)), 4)
    dag.submit_job(rdd, _collect, list(range(4 - n, 4)), Listener())
    ts = sink.task_sets[0]
    assert ts.partitions == list(range(4 - n, 4)) and ts.indices == list(range(n))


def test_a_map_stage_job_finishes_with_its_samples_and_ships_no_sample_on(ctx: Any) -> None:
    """submit_map_stage (sortByKey's first job): samples go to the listener only."""
    sink, listener = Sink(), Listener()
    dag = DAGScheduler(sink)
    shuffled = ctx.parallelize(list(range(9)), 3).map(lambda x: (x, x)).partitionBy(2)
    dep = shuffled.dependencies[0]
    dag.submit_map_stage(dep, listener)
    (map_ts,) = sink.task_sets
    assert map_ts.spec.shuffle_dep is dep and map_ts.indices == [0, 1, 2]
    for i in range(3):
        sample = (3, [(0.5, i)], True)
        out = MapOutput("e1", "h", f"/m{i}", sample=sample)
        dag.task_succeeded(map_ts.stage_id, 0, i, out)
        if i == 1:
            dag.executor_lost("e1")  # outputs 0 and 1 are lost: they run again
            assert listener.results == {}
    assert listener.results == {}
    rerun = sink.task_sets[-1]
    assert rerun.indices == [0, 1]
    for i in rerun.indices:
        out = MapOutput("e2", "h", f"/r{i}", sample=(3, [(0.5, i)], True))
        dag.task_succeeded(rerun.stage_id, rerun.attempt, i, out)
    assert listener.results == {0: {i: (3, [(0.5, i)], True) for i in range(3)}}
    assert not dag.jobs
    outputs = dag.map_outputs[dep.shuffle_id]
    assert all(o is not None and o.sample is None for o in outputs)
    # The shuffle is reused: a second map-stage job finishes at once, a reduce job
    # needs no map stage.
    again = Listener()
    dag.submit_map_stage(dep, again)
    assert again.results == {0: {}} and len(sink.task_sets) == 2
    dag.submit_job(shuffled, _collect, [0, 1], Listener())
    assert sink.task_sets[-1].spec.shuffle_dep is None


def test_a_cancelled_map_stage_job_cancels_its_stage(ctx: Any) -> None:
    sink, listener = Sink(), Listener()
    dag = DAGScheduler(sink)
    dep = ctx.parallelize([(1, 1)], 1).partitionBy(2).dependencies[0]
    job_id = dag.submit_map_stage(dep, listener)
    dag.cancel_job(job_id, "by KeyboardInterrupt")
    assert isinstance(listener.error, JobCancelledError)
    assert sink.cancelled == [sink.task_sets[0].stage_id]
    assert not dag.jobs


def test_a_job_is_announced_before_any_of_its_stages_is_submitted(ctx: Any) -> None:
    """Listeners see JobStart before StageSubmitted (Spark's order), with every stage known."""
    announced: list[tuple[int, int, list[int]]] = []

    class Recording(Sink):
        def job_started(self, job: Job) -> None:
            super().job_started(job)
            announced.append((job.id, len(self.task_sets), dag.job_stage_ids(job.id)))

    sink = Recording()
    dag = DAGScheduler(sink)
    rdd = ctx.parallelize(list(range(10)), 2).map(lambda x: (x % 3, x)).groupByKey()
    job_id = dag.submit_job(rdd, _collect, [0, 1], Listener())
    assert announced == [(job_id, 0, [0, 1])]
    assert len(sink.task_sets) == 1  # the map stage, submitted after the announcement


def test_a_job_whose_stage_cannot_be_submitted_fails_instead_of_staying_active(ctx: Any) -> None:
    """Its JobStart was posted: it must end (as failed), not linger in dag.jobs."""

    class Refusing(Sink):
        def submit_task_set(self, task_set: TaskSet) -> None:
            raise TypeError("cannot pickle the stage's code")

    sink, listener = Refusing(), Listener()
    dag = DAGScheduler(sink)
    job_id = dag.submit_job(ctx.parallelize([1, 2], 2), _collect, [0, 1], listener)
    assert sink.started == [job_id]
    assert isinstance(listener.error, TypeError) and "cannot pickle" in str(listener.error)
    assert not dag.jobs and not dag.running


def test_a_forgotten_shuffle_runs_its_map_stage_again(ctx: Any) -> None:
    sink = Sink()
    dag = DAGScheduler(sink)
    summed = ctx.parallelize(list(range(10)), 2).map(lambda x: (x % 3, x)).reduceByKey(max)
    dag.submit_job(summed, _collect, [0, 1], Listener())
    _finish(dag, sink.task_sets[0])
    _finish(dag, sink.task_sets[1])
    shuffle_id = sink.task_sets[0].spec.shuffle_dep.shuffle_id  # type: ignore[union-attr]
    dag.forget_shuffle(shuffle_id)
    dag.forget_shuffle(shuffle_id + 100)  # an unknown id is no error
    assert dag.map_outputs[shuffle_id] == [None, None]
    dag.submit_job(summed, _collect, [0, 1], Listener())
    assert len(sink.task_sets) == 3 and sink.task_sets[2].spec.shuffle_dep is not None


def test_shuffles_to_clean_stop_at_a_persisted_rdd(ctx: Any) -> None:
    from scheduler.rdd.deps import shuffles_to_clean

    first = ctx.parallelize(list(range(10)), 2).map(lambda x: (x % 3, x)).reduceByKey(max)
    second = first.map(lambda kv: (kv[1], kv[0])).groupByKey()
    top = second.union(first).mapValues(len)
    (own,) = shuffles_to_clean(first)
    every = shuffles_to_clean(top)
    assert len(every) == 2 and own in every
    second.persist()
    assert shuffles_to_clean(top) == [own]  # `second` ends the walk; `first` is reached
    assert sorted(shuffles_to_clean(second)) == sorted(every)  # its own walk goes past it
    assert shuffles_to_clean(ctx.parallelize([1], 1)) == []
