# linkhealth: the daemon by default, with the database, archive and report under /data.
#   docker build -t linkhealth .
#   docker run -e LINKHEALTH_DAEMON_TOKEN=$(openssl rand -hex 24) -v "$PWD/notes:/notes:ro" \
#              -v lh-data:/data -p 127.0.0.1:8787:8787 linkhealth
#   docker run -v "$PWD/notes:/notes:ro" -v lh-data:/data linkhealth audit /notes   # a one-off audit
FROM python:3.11-slim

# The daemon listens on every address of the container so that a published port reaches it;
# it then refuses to start without a token: docker run -e LINKHEALTH_DAEMON_TOKEN=... .
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    LINKHEALTH_DATA_DIR=/data LINKHEALTH_DAEMON_LISTEN=0.0.0.0:8787

WORKDIR /app
COPY pyproject.toml README.md ./
COPY checker ./checker
COPY config ./config
# The cluster extra (procrastinate, psycopg) too: the same image runs `linkhealth worker`.
RUN pip install --no-cache-dir ".[cluster]" \
 && useradd --create-home --uid 10001 linkhealth \
 && mkdir -p /data && chown linkhealth:linkhealth /data

USER linkhealth
VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=4).status == 200 else 1)"

ENTRYPOINT ["linkhealth"]
CMD ["daemon", "/notes", "--config", "/app/config/linkhealth.toml"]
