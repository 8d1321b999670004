"""The driver's sender to one executor: finished task sets' removals ride along (issue 13)."""

from __future__ import annotations

from concurrent.futures import Future

from google.protobuf.message import Message

from rpcenv import RpcAddress, RpcEndpointRef
from scheduler.backend.endpoint import _ExecutorSender
from sparkctl.v1 import scheduler_pb2 as pb


class _Ref(RpcEndpointRef):
    """Records what is sent; `broken` makes sends raise as to a departed executor."""

    address = RpcAddress("127.0.0.1", 1)
    name = "Executor"

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.broken = False

    def send(self, message: Message) -> None:
        if self.broken:
            raise ConnectionError("gone")
        self.sent.append(message)

    def ask(self, message: Message, timeout: float | None = None) -> Future[Message]:
        raise NotImplementedError


def test_task_set_removals_wait_and_ride_inside_the_next_launch() -> None:
    ref = _Ref()
    send = _ExecutorSender(ref)
    send(pb.RemoveBlocks(tasksets=["1.0"]))
    send(pb.RemoveBlocks(tasksets=["2.0"]))
    assert ref.sent == []
    send(pb.LaunchTasks(tasks=[pb.TaskLaunch(task_id=7)]))
    expected = pb.LaunchTasks(tasks=[pb.TaskLaunch(task_id=7)], finished_tasksets=["1.0", "2.0"])
    assert ref.sent == [expected]  # one message, not two
    send(pb.LaunchTasks(tasks=[pb.TaskLaunch(task_id=8)]))
    assert ref.sent[1] == pb.LaunchTasks(tasks=[pb.TaskLaunch(task_id=8)])


def test_before_another_message_the_removals_go_on_their_own() -> None:
    ref = _Ref()
    send = _ExecutorSender(ref)
    send(pb.RemoveBlocks(tasksets=["1.0"]))
    kill = pb.KillTasks(task_ids=[3], reason="x")
    send(kill)
    assert ref.sent == [pb.RemoveBlocks(tasksets=["1.0"]), kill]


def test_other_removals_go_at_once_and_flush_sends_what_waits() -> None:
    ref = _Ref()
    send = _ExecutorSender(ref)
    send(pb.RemoveBlocks(tasksets=["3.0"]))
    send(pb.RemoveBlocks(rdd_ids=[4]))  # files to delete, memory to free: not held
    assert ref.sent == [pb.RemoveBlocks(tasksets=["3.0"]), pb.RemoveBlocks(rdd_ids=[4])]
    send(pb.RemoveBlocks(tasksets=["5.0"]))
    send.flush()
    send.flush()  # nothing left: nothing more sent
    assert ref.sent[2:] == [pb.RemoveBlocks(tasksets=["5.0"])]


def test_a_send_to_a_departed_executor_does_not_raise() -> None:
    ref = _Ref()
    ref.broken = True
    send = _ExecutorSender(ref)
    send(pb.RemoveBlocks(tasksets=["6.0"]))
    send(pb.KillTasks(task_ids=[1], reason="x"))
    send.flush()
