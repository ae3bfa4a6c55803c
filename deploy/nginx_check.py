"""
Check the nginx site with `nginx -t`: fill in the worker ports, a throwaway
self-signed certificate and a static root, include it from a minimal
nginx.conf, and ask nginx whether it would load it.

    python -m deploy.nginx_check --workers 2 --port 8067     # exits non-zero on failure

tests/cluster/test_nginx.py runs it (skipped where nginx is not installed;
`apt-get install -y nginx`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SITE = Path(__file__).resolve().parent / "nginx" / "care-connect.conf"

MAIN_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    include {site};
}}
"""


def render_site(ports: list[int], *, cert: Path, key: Path, static_root: Path) -> str:
    """The site with one upstream server line per port and local paths."""
    text = SITE.read_text()
    servers = "".join(
        f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n" for port in ports
    )
    text, count = re.subn(r"(    server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, text, count=1)
    if count != 1:
        raise ValueError("no upstream server lines found in the site")
    text = re.sub(r"ssl_certificate +\S+;", f"ssl_certificate {cert};", text)
    text = re.sub(r"ssl_certificate_key +\S+;", f"ssl_certificate_key {key};", text)
    text = text.replace("/srv/care-connect/staticfiles/", f"{static_root}/")
    # Unprivileged ports, so the check also runs without root.
    text = text.replace("listen 80;", "listen 18080;").replace("listen [::]:80;", "")
    text = text.replace("listen 443 ssl;", "listen 18443 ssl;").replace("listen [::]:443 ssl;", "")
    return text


def check(ports: list[int], nginx: str = "nginx") -> subprocess.CompletedProcess:
    """Run `nginx -t` on the rendered site; the completed process."""
    tmp = Path(tempfile.mkdtemp(prefix="cc-nginx-"))
    try:
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=care.example.org", "-keyout", str(key), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        (tmp / "static").mkdir()
        site = tmp / "care-connect.conf"
        site.write_text(render_site(ports, cert=cert, key=key, static_root=tmp / "static"))
        conf = tmp / "nginx.conf"
        conf.write_text(MAIN_CONF.format(tmp=tmp, site=site))
        return subprocess.run(
            [nginx, "-t", "-p", str(tmp), "-c", str(conf)], capture_output=True, text=True
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.nginx_check")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8067)
    args = parser.parse_args(argv)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        print("nginx is not installed (apt-get install -y nginx)", file=sys.stderr)
        return 2
    result = check([args.port + i for i in range(args.workers)], nginx)
    sys.stdout.write(result.stdout + result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
