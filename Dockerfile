# Images for the Celery stack in docker-compose.yaml.
#
#   target `airflow` (the default): the official Airflow image plus the pinned dependency set and the
#   product only — `include` (the package every DAG imports), `dags/`, `plugins/`, `pools.json` and the
#   `privacy-ops` command. The development kit is not in it.
#   target `devkit`: the same plus `devkit/` (demo data, the SendGrid stand-in, the GCS emulator), for
#   the one-shot `ops-init` service and the local stand-ins of the Compose file.
FROM apache/airflow:3.3.2-python3.11 AS airflow

# The official image installs Python packages as the `airflow` user (PIP_USER=true); as root they
# would land where Airflow does not look.
USER airflow

# Dependencies first, so that editing project code does not reinstall them. The lock pins
# apache-airflow==3.3.2 itself, which keeps pip from moving Airflow away from the base image's version.
COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock
RUN pip install --no-cache-dir -r /opt/airflow/requirements.lock

# Editable install rooted at /opt/airflow: compose bind-mounts ./include over /opt/airflow/include,
# and the installed `include` package and `privacy-ops` command then follow the working tree.
COPY --chown=airflow:0 pyproject.toml pools.json /opt/airflow/
COPY --chown=airflow:0 include /opt/airflow/include
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
RUN pip install --no-cache-dir --no-deps -e /opt/airflow

# The editable install works through a .pth file in the airflow user's site-packages. Containers run
# as root (airflow-init) only get that folder on PYTHONPATH from the entrypoint, and .pth files there
# are not processed, so `include` would not import: put the project root on the path explicitly.
ENV PYTHONPATH=/opt/airflow

FROM airflow AS devkit
COPY --chown=airflow:0 devkit /opt/airflow/devkit
