"""``[core] hostname_callable`` for the harness's Airflow processes: the host name plus the process's
name (``triggerer-2``), so the ``job`` table says which triggerer process a trigger is assigned to."""

from __future__ import annotations

import os
import socket

NAME_ENV = "EDGEINFER_PROCESS_NAME"


def process_hostname() -> str:
    name = os.environ.get(NAME_ENV)
    return f"{socket.getfqdn()}.{name}" if name else socket.getfqdn()
