# The segstream worker image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
# One line per package that pyproject.toml installs (tests/unit/test_image.py checks the list).
COPY config ./config
COPY streams ./streams
COPY engine ./engine
COPY agents ./agents
COPY segstream ./segstream
COPY serving ./serving
RUN pip install --no-cache-dir . && useradd --uid 10001 --create-home segstream \
    && mkdir -p /var/lib/segstream && chown segstream /var/lib/segstream
USER segstream
ENTRYPOINT ["segstream"]
CMD ["worker"]
