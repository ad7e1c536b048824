#!/bin/sh
# The streaming deployment's entry point (template.yaml: Handler run.sh). The Lambda Web Adapter's /opt/bootstrap
# (AWS_LAMBDA_EXEC_WRAPPER) runs this script in place of the Python runtime's loop, waits until uvicorn answers on
# AWS_LWA_PORT, then forwards each invocation to it and streams the answer back. The path is a handler's: this
# function's code, the layers (/opt/python), and the runtime's own boto3 (LAMBDA_RUNTIME_DIR).
export PYTHONPATH="${LAMBDA_TASK_ROOT}:/opt/python:${LAMBDA_RUNTIME_DIR}"
exec python -m uvicorn rerank_handler:app --host 127.0.0.1 --port "${AWS_LWA_PORT:-8080}" \
    --no-access-log --lifespan off --log-level warning
