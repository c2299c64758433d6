"""The kubelet-facing gRPC servicer (grpc.aio): translates proto <-> model, nothing more.

Validation lives in devices.py, response building in responses.py, allocation choice in
allocate.py; the servicer only wires them to the five v1beta1 DevicePlugin calls.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from brix.logs import kv
from deviceplugin import allocate, responses
from deviceplugin.api import api_pb2, api_pb2_grpc
from deviceplugin.devices import Device, InvalidRequest, validate_request
from deviceplugin.metrics import PluginMetrics
from deviceplugin.state import PluginState

log = logging.getLogger(__name__)


def device_proto(device: Device) -> api_pb2.Device:
    msg = api_pb2.Device(ID=device.id, health=device.health)
    if device.numa_node is not None:
        msg.topology.nodes.append(api_pb2.NUMANode(ID=device.numa_node))
    return msg


def container_response_proto(resp: responses.ContainerResponse) -> api_pb2.ContainerAllocateResponse:
    return api_pb2.ContainerAllocateResponse(
        envs=resp.envs,
        mounts=[api_pb2.Mount(container_path=m.container_path, host_path=m.host_path, read_only=m.read_only)
                for m in resp.mounts],
        devices=[api_pb2.DeviceSpec(container_path=d.container_path, host_path=d.host_path,
                                    permissions=d.permissions) for d in resp.devices],
        annotations=resp.annotations,
        cdi_devices=[api_pb2.CDIDevice(name=n) for n in resp.cdi_devices],
    )


class DevicePluginServicer(api_pb2_grpc.DevicePluginServicer):
    def __init__(self, state: PluginState, resource: str, options: responses.AllocateOptions,
                 metrics: PluginMetrics, policy: str = "topology") -> None:
        self.state = state
        self.resource = resource
        self.options = options
        self.metrics = metrics
        self.policy = policy

    async def GetDevicePluginOptions(self, request: api_pb2.Empty, context: Any) -> api_pb2.DevicePluginOptions:
        return api_pb2.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=True)

    async def ListAndWatch(self, request: api_pb2.Empty, context: Any) -> AsyncIterator[api_pb2.ListAndWatchResponse]:
        version = self.state.version
        kv(log, "ListAndWatch stream opened", resource=self.resource, devices=len(self.state.devices))
        while True:
            devices = list(self.state.devices)
            yield api_pb2.ListAndWatchResponse(devices=[device_proto(d) for d in devices])
            self.metrics.list_and_watch_sends.inc()
            version = await self.state.wait_change(version)

    async def GetPreferredAllocation(self, request: api_pb2.PreferredAllocationRequest, context: Any
                                     ) -> api_pb2.PreferredAllocationResponse:
        out = api_pb2.PreferredAllocationResponse()
        for creq in request.container_requests:
            ids = allocate.preferred(list(creq.available_deviceIDs), list(creq.must_include_deviceIDs),
                                     creq.allocation_size, self.state.topology, self.policy)
            out.container_responses.append(api_pb2.ContainerPreferredAllocationResponse(deviceIDs=ids))
        return out

    async def Allocate(self, request: api_pb2.AllocateRequest, context: Any) -> api_pb2.AllocateResponse:
        devices = self.state.devices
        try:
            for creq in request.container_requests:
                validate_request(devices, creq.devices_ids, self.resource)
        except InvalidRequest as exc:
            self.metrics.allocate_errors.inc()
            kv(log, "Allocate refused", logging.WARNING, error=str(exc))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        out = api_pb2.AllocateResponse()
        for creq in request.container_requests:
            chosen = devices.subset(creq.devices_ids)
            out.container_responses.append(container_response_proto(responses.build(chosen, self.options)))
            for d in chosen:
                self.metrics.allocations.labels(device=d.id).inc()
        return out

    async def PreStartContainer(self, request: api_pb2.PreStartContainerRequest, context: Any
                                ) -> api_pb2.PreStartContainerResponse:
        return api_pb2.PreStartContainerResponse()
