# tongdai node image. Build from the repository's root:
#   docker build -f deploy/docker/tongdai.Dockerfile -t tongdai .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[fast]" && rm -rf /build

# A system user of its own; the data directory (recordings, prompts, the store key)
# is its only writable place, and a volume.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/tongdai \
        --shell /usr/sbin/nologin tongdai \
    && mkdir -p /var/lib/tongdai \
    && chown tongdai:tongdai /var/lib/tongdai
USER tongdai
WORKDIR /var/lib/tongdai
ENV TONGDAI_DATA_DIR=/var/lib/tongdai
VOLUME ["/var/lib/tongdai"]

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TONGDAI_HTTP_PORT', '8080'), timeout=2)"

ENTRYPOINT ["tongdai"]
CMD ["serve"]
