# Care Connect's app in a container; compose.yaml adds PostgreSQL and Redis.
# docs/deploy.md, "Containers". The same production install as on a server:
# the pinned dependencies without dev extras, static files collected under
# hashed names, no demo data.
FROM python:3.13-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --user-group --home-dir /srv/care-connect --shell /usr/sbin/nologin care-connect
WORKDIR /srv/care-connect

# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml requirements.lock ./
RUN python -m venv .venv && .venv/bin/pip install -c requirements.lock .

COPY . .
# DEBUG off: the manifest storage. The key, random and thrown away, exists
# for this step only (settings refuse a short or placeholder key with DEBUG off).
RUN DEBUG=0 SECRET_KEY="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    .venv/bin/python manage.py collectstatic --noinput --verbosity 0

# The app writes nothing to its own files; it runs unprivileged.
USER care-connect
EXPOSE 8067 8068
STOPSIGNAL SIGTERM
ENTRYPOINT ["/srv/care-connect/deploy/docker-entrypoint.sh"]
