# Loket signaling server. Media never passes through it, so it needs no codecs at run time
# beyond what the wheels bring; state lives in /data (mount a volume) or in PostgreSQL.
FROM python:3.11-slim

# espeak-ng: the waiting room's spoken calls (Indonesian voice), made offline.
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv \
    && useradd --system --uid 10001 --home-dir /nonexistent loket \
    && mkdir -p /data && chown loket /data

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY signaling ./signaling
COPY server ./server
COPY booth_client ./booth_client
COPY web_cso ./web_cso
COPY web_supervisor ./web_supervisor
COPY web_display ./web_display
COPY web_desk ./web_desk
COPY web_reports ./web_reports
RUN uv sync --frozen --no-dev

USER loket
ENV LOKET_DATA_DIR=/data \
    LOKET_HOST=0.0.0.0 \
    LOKET_PORT=8000 \
    PATH="/app/.venv/bin:$PATH"
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["loket", "serve"]
