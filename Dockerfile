# One image for the API and the workers; docker-compose.yml runs it with different commands.
# On a GPU host pip takes PyPI's CUDA build of torch==2.13.0 (pyproject.toml pins it).
FROM python:3.11-slim
WORKDIR /srv/hybridgan
COPY pyproject.toml README.md ./
COPY model model
COPY app app
COPY worker worker
COPY hybridgan hybridgan
COPY templates templates
COPY shipped shipped
RUN pip install --no-cache-dir -e . && useradd -m hybridgan && mkdir -p /data && chown hybridgan /data
USER hybridgan
ENV HYBRIDGAN_HOME=/data PYTHONUNBUFFERED=1
