# One image for every Brix component: `docker build -t brix:0.1.0 .`
# The manifests in deploy/ run it as `brix <component> ...` (the entrypoint is `brix`).
FROM python:3.11-slim
WORKDIR /opt/brix
COPY pyproject.toml README.md ./
COPY brix ./brix
COPY scheduler_ext ./scheduler_ext
COPY deviceplugin ./deviceplugin
COPY nvml_mock ./nvml_mock
COPY engine_mock ./engine_mock
COPY gateway ./gateway
RUN pip install --no-cache-dir . && useradd --uid 65532 --no-create-home brix
# The device plugin needs root for the kubelet socket folder; its DaemonSet sets runAsUser 0.
USER 65532
ENTRYPOINT ["brix"]
CMD ["--help"]
