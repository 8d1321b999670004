"""The Master's bookkeeping under random event sequences (hypothesis state machine).

The handlers are called directly, without an RpcEnv: pushes go to recording
refs. After every step, no worker is over-committed and the Master's records
agree with each other (every executor is on exactly its worker, every worker's
executor belongs to an active application, drivers likewise).
"""

from __future__ import annotations

import pathlib
import random
import tempfile

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cluster.master import Master
from cluster.placement import Placement
from cluster.testing import FakeContext, FakeRef
from rpcenv import Conf, RpcAddress
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

ALIVE = pb.WORKER_STATE_ALIVE


class MasterModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.master = Master(
            Conf({"spark.deploy.maxExecutorRetries": "3"}), pathlib.Path(self.tmp.name)
        )
        self.master._self_ref = FakeRef("Master", 7077)  # relaunch timers post here
        self.master.url = "spark://127.0.0.1:7077"
        # Seeded, so that hypothesis can replay a case exactly.
        self.master.placement = Placement(spread_out=True, rng=random.Random(0))
        self.ports = iter(range(20_000, 30_000))

    def teardown(self) -> None:
        self.tmp.cleanup()

    # -- rules -----------------------------------------------------------------

    @rule(
        index=st.integers(0, 4),
        cores=st.integers(0, 8),
        memory=st.sampled_from([0, 512, 1024, 4096]),
        incarnation=st.integers(1, 3),
    )
    def register_worker(self, index: int, cores: int, memory: int, incarnation: int) -> None:
        old = self.master.workers.get(f"w{index}")
        port = old.port if old is not None else next(self.ports)
        ref = FakeRef("Worker", port)
        executors = []
        if old is not None and incarnation == old.incarnation:
            # The same process again (after a disconnect): same capacity, and it
            # reports what it runs (here a subset: some exited meanwhile).
            cores, memory = old.cores, old.memory_mb
            executors = [
                pb.ExecutorDescription(
                    app_id=e.app_id,
                    executor_id=e.executor_id,
                    cores=e.cores,
                    memory_mb=e.memory_mb,
                    state=pb.EXECUTOR_STATE_RUNNING,
                )
                for e in list(old.executors.values())[::2]
            ]
        request = pb.RegisterWorkerRequest(
            worker_id=f"w{index}",
            host="127.0.0.1",
            port=port,
            cores=cores,
            memory_mb=memory,
            incarnation=incarnation,
            executors=executors,
        )
        self.master._on_register_worker(request, FakeContext(ref, ref.address))

    @precondition(lambda self: self.master.workers)
    @rule(data=st.data())
    def worker_dies(self, data: st.DataObject) -> None:
        worker = data.draw(
            st.sampled_from(sorted(self.master.workers.values(), key=lambda w: w.worker_id))
        )
        if worker.alive:
            self.master._remove_worker(worker, "test")

    @rule(
        max_cores=st.integers(0, 8),
        per_executor=st.integers(0, 3),
        memory=st.sampled_from([0, 256, 1024, 2048]),
        limit=st.integers(0, 4),
    )
    def register_app(self, max_cores: int, per_executor: int, memory: int, limit: int) -> None:
        port = next(self.ports)
        desc = pb.ApplicationDescription(
            name="m",
            max_cores=max_cores,
            cores_per_executor=per_executor,
            memory_per_executor_mb=memory,
            initial_executor_limit=limit,
        )
        ctx = FakeContext(FakeRef("AppClient", port), RpcAddress("127.0.0.1", port))
        request = pb.RegisterApplicationRequest(description=desc)
        if 0 < max_cores < per_executor:  # it could never get an executor: refused
            with pytest.raises(ValueError, match="could never get an executor"):
                self.master._on_register_application(request, ctx)
            return
        self.master._on_register_application(request, ctx)
        assert isinstance(ctx.answer, pb.RegisterApplicationResponse)

    @precondition(lambda self: any(a.executors for a in self.master.apps.values()))
    @rule(
        data=st.data(),
        state=st.sampled_from(
            [
                pb.EXECUTOR_STATE_RUNNING,
                pb.EXECUTOR_STATE_FAILED,
                pb.EXECUTOR_STATE_EXITED,
                pb.EXECUTOR_STATE_KILLED,
                pb.EXECUTOR_STATE_LOST,
            ]
        ),
        code=st.sampled_from([0, 1, -9]),
    )
    def executor_changes(self, data: st.DataObject, state: int, code: int) -> None:
        executors = [e for a in self.master.apps.values() for e in a.executors.values()]
        executor = data.draw(st.sampled_from(sorted(executors, key=lambda e: e.key)))
        msg = pb.ExecutorStateChanged(
            app_id=executor.app_id, executor_id=executor.executor_id, state=state, exit_status=code
        )  # type: ignore[arg-type]
        self.master._on_executor_state_changed(msg, None)

    @precondition(lambda self: self.master.apps)
    @rule(data=st.data(), how=st.sampled_from(["unregister", "kill", "disconnect"]))
    def app_ends(self, data: st.DataObject, how: str) -> None:
        app = data.draw(st.sampled_from(sorted(self.master.apps.values(), key=lambda a: a.app_id)))
        if how == "unregister":
            self.master._on_unregister_application(
                pb.UnregisterApplication(app_id=app.app_id), None
            )
        elif how == "kill":
            ctx = FakeContext(None, RpcAddress("127.0.0.1", 1))
            self.master._on_kill_application(api.KillApplicationRequest(app_id=app.app_id), ctx)
        else:
            assert app.driver_address is not None
            self.master.on_disconnected(app.driver_address)

    @precondition(lambda self: self.master.apps)
    @rule(data=st.data(), total=st.integers(0, 6), kill=st.booleans())
    def dynamic_allocation(self, data: st.DataObject, total: int, kill: bool) -> None:
        app = data.draw(st.sampled_from(sorted(self.master.apps.values(), key=lambda a: a.app_id)))
        ctx = FakeContext(None, RpcAddress("127.0.0.1", 1))
        if kill and app.executors:
            victims = sorted(app.executors)[: data.draw(st.integers(1, len(app.executors)))]
            self.master._on_kill_executors(
                pb.KillExecutorsRequest(app_id=app.app_id, executor_ids=victims), ctx
            )
        else:
            self.master._on_request_executors(
                pb.RequestExecutorsRequest(app_id=app.app_id, requested_total=total), ctx
            )

    @rule(cores=st.integers(0, 3), memory=st.sampled_from([0, 512, 2048]), supervise=st.booleans())
    def submit_driver(self, cores: int, memory: int, supervise: bool) -> None:
        ctx = FakeContext(None, RpcAddress("127.0.0.1", 1))
        desc = pb.DriverDescription(
            app_resource="/a.py", cores=cores, memory_mb=memory, supervise=supervise
        )
        self.master._on_submit_driver(api.SubmitDriverRequest(description=desc), ctx)

    @precondition(lambda self: any(d.worker_id for d in self.master.drivers.values()))
    @rule(data=st.data(), state=st.sampled_from([pb.DRIVER_STATE_FINISHED, pb.DRIVER_STATE_FAILED]))
    def driver_ends(self, data: st.DataObject, state: int) -> None:
        placed = [d for d in self.master.drivers.values() if d.worker_id]
        driver = data.draw(st.sampled_from(sorted(placed, key=lambda d: d.driver_id)))
        msg = pb.DriverStateChanged(driver_id=driver.driver_id, state=state)  # type: ignore[arg-type]
        self.master._on_driver_state_changed(msg, None)

    # -- invariants --------------------------------------------------------------

    @invariant()
    def never_overcommitted(self) -> None:
        for worker in self.master.workers.values():
            if worker.state == ALIVE:
                assert worker.cores_used <= worker.cores, worker
                assert worker.memory_used_mb <= worker.memory_mb, worker
            else:
                assert not worker.executors and not worker.drivers

    @invariant()
    def records_agree(self) -> None:
        for app in self.master.apps.values():
            if app.description.max_cores > 0:
                assert app.cores_granted <= app.description.max_cores
            for executor in app.executors.values():
                worker = self.master.workers[executor.worker_id]
                assert worker.executors.get(executor.key) is executor
        for worker in self.master.workers.values():
            for key, executor in worker.executors.items():
                app = self.master.apps.get(key[0])
                assert app is not None and app.executors.get(key[1]) is executor
            for driver_id, driver in worker.drivers.items():
                assert (
                    self.master.drivers.get(driver_id) is driver
                    and driver.worker_id == worker.worker_id
                )
        for driver in self.master.drivers.values():
            if driver.worker_id:
                assert driver.driver_id in self.master.workers[driver.worker_id].drivers


TestMasterModel = MasterModel.TestCase
TestMasterModel.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
