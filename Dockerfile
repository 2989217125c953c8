# The wbload loader as a one-shot container (used by docker-compose.yml's `loader` service).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY loader ./loader
COPY recipes ./recipes
RUN pip install --no-cache-dir .
ENTRYPOINT ["wbload"]
CMD ["deploy", "--wait", "60", "recipes/movies.py"]
