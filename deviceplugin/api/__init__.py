"""Generated Python stubs of the kubelet device plugin API v1beta1 (api.proto).

Do not edit api_pb2*.py by hand: run `make proto` (hack/gen_proto.py). A test regenerates
them into a temporary folder and fails when the committed files differ.
"""

from . import api_pb2, api_pb2_grpc

VERSION = "v1beta1"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
KUBELET_SOCKET_NAME = "kubelet.sock"
DEVICE_PLUGIN_PATH = "/var/lib/kubelet/device-plugins/"

__all__ = ["api_pb2", "api_pb2_grpc", "VERSION", "HEALTHY", "UNHEALTHY", "KUBELET_SOCKET_NAME",
           "DEVICE_PLUGIN_PATH"]
