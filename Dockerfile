# The wbload loader as a one-shot container (docker-compose.yml's `loader` and `demo`).
# Python 3.11 as in CI's .venv; the dependencies at the versions of constraints.txt.
FROM python:3.11.9-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY loader ./loader
COPY recipes ./recipes
COPY docker/demo ./docker/demo
RUN pip install --no-cache-dir --disable-pip-version-check -c constraints.txt .
USER nobody
ENTRYPOINT ["wbload"]
CMD ["deploy", "--wait", "60", "recipes/movies.py"]
