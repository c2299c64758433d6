# Two images from one multi-stage build (`make image` builds both):
#   docker build --target node -t brix-node:0.1.0 .   GPU nodes: `brix device-plugin`, `brix diagnose`,
#                                                    `brix nvml-mock` (the base install, no extras)
#   docker build --target full -t brix:0.1.0 .        everything else (`pip install '.[all]'`)
# The manifests in deploy/ run them as `brix <component> ...` (the entrypoint is `brix`);
# tests/foundation/test_image_manifests.py checks that this file and deploy/ agree.
# The base image is pinned to a patch release and Debian release; pin its digest too where your
# registry policy asks for it (docker buildx imagetools inspect python:3.11.13-slim-bookworm).
ARG BASE=python:3.11.13-slim-bookworm

FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# the packages listed in pyproject.toml; .dockerignore keeps out tests, deploy, hack and .venv
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM build AS build-node
RUN python -m venv /opt/brix && /opt/brix/bin/pip install /wheels/*.whl

FROM build AS build-full
RUN python -m venv /opt/brix && /opt/brix/bin/pip install "$(ls /wheels/*.whl)[all]"

# The device plugin runs as root: the kubelet's device-plugins folder and kubelet.sock belong to
# root. Its DaemonSets drop every capability, forbid privilege escalation and mount the root
# filesystem read-only (as NVIDIA's plugin does).
FROM ${BASE} AS node
COPY --from=build-node /opt/brix /opt/brix
ENV PATH=/opt/brix/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 0:0
ENTRYPOINT ["brix"]
CMD ["--help"]

# Everything else runs as a numeric non-root user (Pod Security "restricted": runAsNonRoot).
FROM ${BASE} AS full
COPY --from=build-full /opt/brix /opt/brix
ENV PATH=/opt/brix/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["brix"]
CMD ["--help"]
