# The pokervod-db command in a container: used by the one-shot `migrate` service of
# docker-compose.yml, the example `app` service and `serve` (installed with the `serve` extra).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
RUN pip install ".[serve]" && useradd --system --no-create-home pokervod \
    && mkdir -p /backups && chown pokervod /backups && chmod 0700 /backups

# Backups go to a volume the runtime user owns (a new named volume takes this ownership).
ENV BACKUP_DIR=/backups
VOLUME /backups
USER pokervod
CMD ["pokervod-db", "upgrade", "head"]
