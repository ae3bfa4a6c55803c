"""
The nginx sites in deploy/: `nginx -t` with the worker ports filled in, and
nginx serving the site: what it caches, and what it writes in its log.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import ssl
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from deploy.cluster import ROOT
from deploy.nginx_check import ACME_SITE, SITE, check, render_site, serving
from tests.conftest import nginx_binary


def test_site_lists_one_upstream_server_per_worker(tmp_path):
    """Worker ports replace the sample upstream lines, in order."""
    text = render_site(
        [9001, 9002, 9003], cert=tmp_path / "c", key=tmp_path / "k", static_root=tmp_path
    )
    assert "server 127.0.0.1:9001 " in text and "server 127.0.0.1:9003 " in text
    assert "8067" not in text and "least_conn;" in text
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_read_timeout 86400s;" in text


@pytest.mark.nginx
def test_nginx_accepts_the_site_for_three_workers():
    """`nginx -t` passes on the site with three worker ports filled in."""
    result = check([8067, 8068, 8069], nginx_binary())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.nginx
def test_the_certbot_site_loads_before_any_certificate_exists():
    """The port-80 site for certbot's first run names no certificate and passes `nginx -t`."""
    text = ACME_SITE.read_text()
    assert "ssl_certificate" not in text and "listen 443" not in text
    result = check([8067], nginx_binary(), site=ACME_SITE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_certbot_answers_from_the_same_directory_before_and_after_the_switch():
    """Renewals use the webroot of the first run: both sites serve the challenge from it."""

    def webroot(text: str) -> str:
        block = re.search(r"location /\.well-known/acme-challenge/ \{\s*root (\S+);", text)
        assert block, "no acme-challenge location"
        return block.group(1)

    assert webroot(ACME_SITE.read_text()) == webroot(SITE.read_text()) == "/var/www/letsencrypt"


def test_access_log_format_leaves_out_query_strings_and_referers():
    """?token= values never reach the access log: its format has no query string."""
    text = SITE.read_text()
    formats = dict(re.findall(r"log_format (\w+)((?:\s*'[^']*')+);", text))
    assert set(formats) == {"care_connect"}
    fields = set(re.findall(r"\$\w+", formats["care_connect"]))
    assert "$uri" in fields
    leaky = {"$request", "$request_uri", "$args", "$query_string", "$is_args", "$http_referer"}
    assert not fields & leaky
    assert not any(f.startswith("$arg_") for f in fields)
    access_logs = re.findall(r"^\s*access_log ([^;]+);", text, re.M)
    assert access_logs, "the site sets no access_log of its own"
    for directive in access_logs:
        assert directive == "off" or directive.split()[-1] == "care_connect", directive


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict[str, list[str]]]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect)
    try:
        with opener.open(url, timeout=5) as response:
            status, headers = response.status, response.headers
    except urllib.error.HTTPError as error:
        status, headers = error.code, error.headers
    found: dict[str, list[str]] = {}
    for name, value in headers.items():
        found.setdefault(name.lower(), []).append(value)
    return status, found


@pytest.mark.nginx
@pytest.mark.server
def test_nginx_caches_for_good_only_the_hashed_static_names(tmp_path):
    """A manifest-hashed name is immutable; the same file under its own name is revalidated."""
    from whitenoise.storage import CompressedManifestStaticFilesStorage

    nginx = nginx_binary()
    storage = CompressedManifestStaticFilesStorage(location=str(ROOT / "static"))
    hashed = storage.hashed_name("console/console.css")
    assert re.fullmatch(r"console/console\.[0-9a-f]{12}\.css", hashed), hashed
    static = tmp_path / "static"
    (static / "console").mkdir(parents=True)
    for name in ("console/console.css", hashed):
        shutil.copy(ROOT / "static" / "console" / "console.css", static / name)

    https_port = _free_port()
    with serving([_free_port()], nginx, static_root=static, http_port=_free_port(),
                 https_port=https_port):  # fmt: skip
        base = f"https://127.0.0.1:{https_port}/static/"
        status, headers = _get(base + hashed)
        assert status == 200
        assert headers["cache-control"] == ["public, max-age=31536000, immutable"]
        status, headers = _get(base + "console/console.css")
        assert status == 200
        assert headers["cache-control"] == ["public, no-cache"]


@pytest.mark.nginx
@pytest.mark.server
def test_nginx_logs_socket_requests_without_their_token(tmp_path):
    """An app's ?token= is in neither the HTTPS nor the port-80 access log."""
    nginx = nginx_binary()
    https_port, http_port = _free_port(), _free_port()
    with serving([_free_port()], nginx, static_root=tmp_path, http_port=http_port,
                 https_port=https_port) as home:  # fmt: skip
        # No worker listens: nginx answers 502 itself, and logs the request.
        status, _ = _get(f"https://127.0.0.1:{https_port}/ws/ride/r1/?token=secret-access-1")
        assert status == 502
        status, _ = _get(f"http://127.0.0.1:{http_port}/ws/ride/r2/?token=secret-access-2")
        assert status == 301
        log = (home / "logs" / "care-connect.access.log").read_text()
    assert '"GET /ws/ride/r1/ HTTP/1.1" 502' in log
    assert '"GET /ws/ride/r2/ HTTP/1.1" 301' in log
    assert "secret-access" not in log and "token" not in log


def test_the_site_limits_requests_and_sockets_per_address():
    """limit_req on the app and socket handshakes, limit_conn on sockets, answered 429."""
    text = SITE.read_text()
    assert re.search(r"limit_req_zone \$binary_remote_addr zone=care_connect_req:", text)
    assert re.search(r"limit_conn_zone \$binary_remote_addr zone=care_connect_conn:", text)
    assert "limit_req_status 429;" in text and "limit_conn_status 429;" in text
    sockets = re.search(r"location /ws/ \{(.*?)\n    \}", text, re.S).group(1)
    assert (
        "limit_conn care_connect_conn " in sockets and "limit_req zone=care_connect_ws" in sockets
    )
    proxied = [
        b for b in re.findall(r"location / \{(.*?)\n    \}", text, re.S) if "proxy_pass" in b
    ]
    assert len(proxied) == 1 and "limit_req zone=care_connect_req" in proxied[0]


def _keepalive_gets(port: int, n: int) -> list[int]:
    """n GETs over one kept-alive HTTPS connection (no handshake each): their statuses."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    statuses = []
    for _ in range(n):
        conn.request("GET", "/api/rides/")
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    conn.close()
    return statuses


@pytest.mark.nginx
@pytest.mark.server
def test_nginx_answers_a_request_flood_with_429(tmp_path):
    """Far past the burst, one address's requests are refused by nginx, not sent to a worker."""
    nginx = nginx_binary()
    https_port = _free_port()
    with serving([_free_port()], nginx, static_root=tmp_path, http_port=_free_port(),
                 https_port=https_port) as home:  # fmt: skip
        # No worker listens: what nginx lets through is its own 502.
        with ThreadPoolExecutor(8) as pool:
            statuses = sum(pool.map(lambda _: _keepalive_gets(https_port, 100), range(8)), [])
        log = (home / "logs" / "care-connect.access.log").read_text()
    assert set(statuses) == {502, 429}
    assert statuses.count(429) >= 100
    assert log.count('" 429 ') == statuses.count(429)
