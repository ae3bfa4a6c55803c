"""
Check the nginx sites with `nginx -t`: fill in the worker ports, a throwaway
self-signed certificate, a static root and a log directory, include the
site from a minimal nginx.conf, and ask nginx whether it would load it.

    python -m deploy.nginx_check --workers 2 --port 8067     # exits non-zero on failure

tests/cluster/test_nginx.py runs it (skipped where nginx is not installed;
`apt-get install -y nginx`), and also serves with the site (`serving`) to
see what it sends and what it logs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SITE = Path(__file__).resolve().parent / "nginx" / "care-connect.conf"
ACME_SITE = SITE.with_name("care-connect-acme.conf")

MAIN_CONF = """\
{user}worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    include {mime_types};
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    include {site};
}}
"""


def render_site(
    ports: list[int],
    *,
    cert: Path,
    key: Path,
    static_root: Path,
    log_dir: Path | None = None,
    http_port: int = 18080,
    https_port: int = 18443,
    site: Path = SITE,
) -> str:
    """A site with one upstream server line per port and local paths and ports."""
    text = site.read_text()
    if "upstream care_connect" in text:
        servers = "".join(
            f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n" for port in ports
        )
        text, count = re.subn(r"(    server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, text, count=1)
        if count != 1:
            raise ValueError("no upstream server lines found in the site")
    text = re.sub(r"ssl_certificate +\S+;", f"ssl_certificate {cert};", text)
    text = re.sub(r"ssl_certificate_key +\S+;", f"ssl_certificate_key {key};", text)
    text = text.replace("/srv/care-connect/staticfiles/", f"{static_root}/")
    if log_dir is not None:
        text = text.replace("/var/log/nginx/", f"{log_dir}/")
    # Unprivileged ports, so the check also runs without root.
    text = text.replace("listen 80;", f"listen {http_port};").replace("listen [::]:80;", "")
    text = text.replace("listen 443 ssl;", f"listen {https_port} ssl;")
    return text.replace("listen [::]:443 ssl;", "")


def self_signed(cert: Path, key: Path, name: str = "care.example.org") -> None:
    """A certificate for `name`, valid for a day: what certbot gives, untrusted."""
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


def _prepare(
    tmp: Path,
    ports: list[int],
    *,
    site: Path = SITE,
    static_root: Path | None = None,
    http_port: int = 18080,
    https_port: int = 18443,
) -> Path:
    """Write a certificate, the rendered site and a nginx.conf into tmp; the conf."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    self_signed(cert, key)
    if static_root is None:
        static_root = tmp / "static"
        static_root.mkdir()
    (tmp / "logs").mkdir()
    rendered = tmp / site.name
    rendered.write_text(
        render_site(
            ports,
            cert=cert,
            key=key,
            static_root=static_root,
            log_dir=tmp / "logs",
            http_port=http_port,
            https_port=https_port,
            site=site,
        )
    )
    mime_types = "/etc/nginx/mime.types"
    if not Path(mime_types).exists():
        mime_types = str(tmp / "mime.types")
        Path(mime_types).write_text("types { text/css css; application/javascript js; }\n")
    conf = tmp / "nginx.conf"
    # As root, workers would run as nobody, who cannot read a private temp dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(MAIN_CONF.format(user=user, tmp=tmp, site=rendered, mime_types=mime_types))
    return conf


def check(
    ports: list[int], nginx: str = "nginx", *, site: Path = SITE
) -> subprocess.CompletedProcess:
    """Run `nginx -t` on the rendered site; the completed process."""
    tmp = Path(tempfile.mkdtemp(prefix="cc-nginx-"))
    try:
        conf = _prepare(tmp, ports, site=site)
        return subprocess.run(
            [nginx, "-t", "-p", str(tmp), "-c", str(conf)], capture_output=True, text=True
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def serving(
    ports: list[int], nginx: str, *, static_root: Path, http_port: int, https_port: int
) -> Iterator[Path]:
    """nginx running the site on the given ports; yields its directory (logs/ in it)."""
    tmp = Path(tempfile.mkdtemp(prefix="cc-nginx-"))
    conf = _prepare(tmp, ports, static_root=static_root, http_port=http_port, https_port=https_port)
    started = subprocess.run(
        [nginx, "-p", str(tmp), "-c", str(conf)], capture_output=True, text=True
    )
    if started.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"nginx did not start: {started.stderr}")
    try:
        yield tmp
    finally:
        pid = int((tmp / "nginx.pid").read_text())
        subprocess.run([nginx, "-p", str(tmp), "-c", str(conf), "-s", "quit"], check=False)
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
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
    code = 0
    for site in (ACME_SITE, SITE):
        result = check([args.port + i for i in range(args.workers)], nginx, site=site)
        sys.stdout.write(f"{site.name}:\n{result.stdout}{result.stderr}")
        code = code or result.returncode
    return code


if __name__ == "__main__":
    sys.exit(main())
