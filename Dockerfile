# Airflow image for the Celery stack in docker-compose.yaml: the official image plus the pinned
# dependency set and the project (`include` package, `privacy-ops` command, DAGs, plugins).
FROM apache/airflow:3.3.2-python3.11

# The official image installs Python packages as the `airflow` user (PIP_USER=true); as root they
# would land where Airflow does not look.
USER airflow

# Dependencies first, so that editing project code does not reinstall them. The lock pins
# apache-airflow==3.3.2 itself, which keeps pip from moving Airflow away from the base image's version.
COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock
RUN pip install --no-cache-dir -r /opt/airflow/requirements.lock

# Editable install rooted at /opt/airflow: compose bind-mounts ./include over /opt/airflow/include,
# and the installed `include` package and `privacy-ops` command then follow the working tree.
# Without the mounts the image still works from these copies (.dockerignore keeps the context small).
COPY --chown=airflow:0 . /opt/airflow/
RUN pip install --no-cache-dir --no-deps -e /opt/airflow

# The editable install works through a .pth file in the airflow user's site-packages. Containers run
# as root (airflow-init) only get that folder on PYTHONPATH from the entrypoint, and .pth files there
# are not processed, so `include` would not import: put the project root on the path explicitly.
ENV PYTHONPATH=/opt/airflow
