# hoststate: the operator, the Nova facade and the host agent in one image.
# Build: docker build -t hoststate:dev .   (docs/deployment.md)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: a virtualenv with hoststate and its runtime dependencies only (no extras) ------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/hoststate
COPY pyproject.toml README.md ./
COPY operator/ operator/
# What ships is what runs: the development tools (the local control plane, the demo; the
# devtools extra) stay out. pip compiles the .pyc files here: the runtime's root filesystem is read-only.
RUN rm -r operator/hoststate/devcluster operator/hoststate/demo.py \
 && /opt/hoststate/bin/pip install --no-cache-dir . \
 && /opt/hoststate/bin/pip uninstall --yes pip

# -- runtime: the slim base, the virtualenv, a non-root user --------------------------------
FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin hoststate
COPY --from=build /opt/hoststate /opt/hoststate
ENV PATH=/opt/hoststate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# 8774: the Nova facade; 8080: the operator's /metrics and /healthz; 8081: the facade's.
EXPOSE 8774 8080 8081
ENTRYPOINT ["hoststate"]
CMD ["--help"]
