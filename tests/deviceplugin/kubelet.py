"""A test kubelet: the real peer of `brix device-plugin` in tests and benchmarks.

It serves `v1beta1.Registration` on <dir>/kubelet.sock from the same api.proto as the plugin,
records every RegisterRequest, dials the plugin's endpoint like kubelet's device manager, and
can restart itself the way a real kubelet does (delete the sockets in the folder, then create
kubelet.sock again).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import grpc

from deviceplugin.api import VERSION, api_pb2, api_pb2_grpc


class _Registration(api_pb2_grpc.RegistrationServicer):
    def __init__(self, kubelet: TestKubelet) -> None:
        self.kubelet = kubelet

    async def Register(self, request: api_pb2.RegisterRequest, context: Any) -> api_pb2.Empty:
        if request.version != VERSION:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"unsupported device plugin API version {request.version!r}")
        if self.kubelet.reject_with:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, self.kubelet.reject_with)
        self.kubelet.registrations.append((time.monotonic(), request))
        self.kubelet._registered.set()
        return api_pb2.Empty()


class TestKubelet:
    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.socket = directory / "kubelet.sock"
        self.registrations: list[tuple[float, api_pb2.RegisterRequest]] = []
        self.reject_with = ""
        self._registered = asyncio.Event()
        self._server: Any = None

    async def start(self) -> None:
        server = grpc.aio.server()
        api_pb2_grpc.add_RegistrationServicer_to_server(_Registration(self), server)
        server.add_insecure_port(f"unix:{self.socket}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()

    async def restart(self, down_for: float = 0.0) -> float:
        """Stop, wipe every socket in the folder (as kubelet does), start again; returns start time."""
        await self.stop()
        for sock in self.dir.glob("*.sock"):
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
        if down_for:
            await asyncio.sleep(down_for)
        started = time.monotonic()
        await self.start()
        return started

    async def wait_registrations(self, count: int, timeout: float = 10.0) -> api_pb2.RegisterRequest:
        deadline = time.monotonic() + timeout
        while len(self.registrations) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.registrations)} registrations after {timeout}s, wanted {count}")
            self._registered.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._registered.wait(), remaining)
        return self.registrations[count - 1][1]

    def dial(self, endpoint: str) -> PluginClient:
        return PluginClient(self.dir / endpoint)


class PluginClient:
    """kubelet's side of the DevicePlugin service, on the plugin's unix socket."""

    def __init__(self, path: Path) -> None:
        self.channel = grpc.aio.insecure_channel(f"unix:{path}")
        self.stub = api_pb2_grpc.DevicePluginStub(self.channel)
        self._watch: Watch | None = None

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        await self.channel.close()

    async def options(self) -> api_pb2.DevicePluginOptions:
        return await self.stub.GetDevicePluginOptions(api_pb2.Empty(), timeout=5)

    def watch(self) -> Watch:
        self._watch = Watch(self.stub.ListAndWatch(api_pb2.Empty()))
        return self._watch

    async def allocate(self, *containers: list[str]) -> api_pb2.AllocateResponse:
        request = api_pb2.AllocateRequest(
            container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=ids) for ids in containers])
        return await self.stub.Allocate(request, timeout=5)

    async def preferred(self, available: list[str], must: list[str], size: int) -> list[str]:
        request = api_pb2.PreferredAllocationRequest(container_requests=[
            api_pb2.ContainerPreferredAllocationRequest(
                available_deviceIDs=available, must_include_deviceIDs=must, allocation_size=size)])
        response = await self.stub.GetPreferredAllocation(request, timeout=5)
        return list(response.container_responses[0].deviceIDs)

    async def pre_start(self, ids: list[str]) -> api_pb2.PreStartContainerResponse:
        return await self.stub.PreStartContainer(api_pb2.PreStartContainerRequest(devices_ids=ids), timeout=5)


class Watch:
    """A ListAndWatch stream read by a background task into a queue, so a read can time out
    without cancelling the stream (as kubelet keeps one stream open per plugin)."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.updates: asyncio.Queue[api_pb2.ListAndWatchResponse | BaseException] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for update in self.call:
                self.updates.put_nowait(update)
        except BaseException as exc:  # noqa: B036 - handed to the reader
            self.updates.put_nowait(exc)

    async def next(self, timeout: float = 10.0) -> api_pb2.ListAndWatchResponse:
        item = await asyncio.wait_for(self.updates.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self) -> None:
        self.call.cancel()
        self._task.cancel()


def health_of(response: api_pb2.ListAndWatchResponse) -> dict[str, str]:
    return {d.ID: d.health for d in response.devices}


async def next_update(watch: Watch, timeout: float = 10.0) -> api_pb2.ListAndWatchResponse:
    return await watch.next(timeout)


async def wait_health(stream: Watch, device_id: str, health: str, timeout: float = 10.0
                      ) -> api_pb2.ListAndWatchResponse:
    """Read stream updates until `device_id` has `health`; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{device_id} did not become {health} within {timeout}s")
        update = await next_update(stream, remaining)
        if health_of(update).get(device_id) == health:
            return update
