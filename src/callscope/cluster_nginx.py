"""The nginx configuration `callscope cluster` runs: an unprivileged load balancer in front of
the API replicas, with WebSocket upgrade for the live feed and the media streams."""

from collections.abc import Sequence
from pathlib import Path
from typing import Final

STREAM_TIMEOUT: Final = "3600s"  # a live call's socket may carry nothing upstream for long


def nginx_config(
    *, host: str, port: int, upstreams: Sequence[int], folder: Path, error_log: Path
) -> str:
    """An unprivileged nginx in the foreground: its files in `folder`, errors to `error_log`. Live
    sockets (the supervisor feed, media streams) are upgraded and may idle for an hour; a
    replica that refuses or drops a request is skipped (every callscope POST is idempotent:
    a resent packet is a duplicate, a resent `complete` changes nothing), and so is one that
    answers a WebSocket upgrade 503 (it is shutting down). An HTTP 503 (load shed) goes back
    to the client with its Retry-After: nginx counts a retried 503 as the replica failing, and
    with every replica shedding it took them all out and answered 502 "no live upstreams"."""
    servers = "\n".join(
        f"    server 127.0.0.1:{upstream} max_fails=1 fail_timeout=2s;" for upstream in upstreams
    )
    temp = "\n".join(
        f"  {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    proxy = (
        "      proxy_pass http://callscope;\n"
        "      proxy_http_version 1.1;\n"
        "      proxy_set_header Host $http_host;  # with its port: Twilio signs the URL\n"
        "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "      proxy_set_header X-Forwarded-Proto $scheme;\n"
        "      proxy_connect_timeout 2s;\n"
        "      proxy_next_upstream_tries 3;\n"
        "      proxy_buffering off;\n"
    )
    upgraded = (
        f"{proxy}"
        "      proxy_next_upstream error timeout http_503;\n"
        "      proxy_set_header Upgrade $http_upgrade;\n"
        "      proxy_set_header Connection $connection_upgrade;\n"
        f"      proxy_read_timeout {STREAM_TIMEOUT};\n"
        f"      proxy_send_timeout {STREAM_TIMEOUT};\n"
    )
    return f"""daemon off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {error_log} warn;
worker_shutdown_timeout 5s;
events {{
  worker_connections 8192;
}}
http {{
  access_log off;
{temp}
  map $http_upgrade $connection_upgrade {{
    default upgrade;
    '' close;
  }}
  upstream callscope {{
    least_conn;
{servers}
  }}
  server {{
    listen {host}:{port};
    client_max_body_size 1m;
    location /ws/ {{
{upgraded}    }}
    location /v1/media/ {{
{upgraded}    }}
    location ~ ^/v1/calls/[^/]+/media$ {{
{upgraded}    }}
    location / {{
{proxy}      proxy_next_upstream error timeout non_idempotent;
      proxy_read_timeout 60s;
    }}
  }}
}}
"""
