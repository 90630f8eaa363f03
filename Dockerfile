# Airflow with the evidence-verification package, for docker-compose.yaml (every Airflow service
# runs this image, so the scheduler, the DAG processor and the Celery workers import the same code).
FROM apache/airflow:3.3.2-python3.11

USER root
# exiftool and ffmpeg back the conformance checks and video keyframes (scripts/system-deps.sh).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libimage-exiftool-perl ffmpeg \
    && apt-get clean && rm -rf /var/lib/apt/lists/*

USER airflow
WORKDIR /opt/evidence
COPY --chown=airflow:0 requirements.txt constraints.txt pyproject.toml README.md ./
COPY --chown=airflow:0 verification ./verification
# Pinned by the tested constraints; apache-airflow itself stays at the image's version.
RUN pip install --no-cache-dir -c constraints.txt "apache-airflow==3.3.2" -e .
WORKDIR /opt/airflow
