FROM python:3.11-slim
WORKDIR /srv/rankery
# The web image needs only the parquet extra; the worker image adds the trainer
# (docker compose builds it with EXTRAS=parquet,train; pip's torch wheel for Linux is the CUDA build).
ARG EXTRAS=parquet
COPY pyproject.toml README.md alembic.ini ./
COPY app app
COPY trainer trainer
COPY migrations migrations
COPY templates templates
COPY static static
RUN pip install --no-cache-dir ".[${EXTRAS}]"
EXPOSE 8000
CMD ["rankery", "serve", "--host", "0.0.0.0", "--port", "8000"]
