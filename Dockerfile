# kraken-capacity-exporter. Runs the demo by default; `serve` and `scrape` take their settings from the environment
# (see docs/configuration.md). Inside the container it listens on all interfaces; docker-compose.yml
# publishes the port on the host's 127.0.0.1 only.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install --no-cache-dir . && rm -rf /root/.cache
USER nobody
ENV EXPORTER_HOST=0.0.0.0 \
    EXPORTER_PORT=9477 \
    PYTHONUNBUFFERED=1
EXPOSE 9477
# /healthz answers 503 while a pair is blind (no usable data), so "healthy" means the stop signal is there.
# With basic auth in --web-config-file, probe /healthz with credentials or drop this check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9477/healthz', timeout=2)"]
ENTRYPOINT ["kraken-capacity-exporter"]
CMD ["demo"]
