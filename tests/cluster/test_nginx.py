"""The nginx site in deploy/ loads: `nginx -t` with the worker ports filled in."""

from __future__ import annotations

import pytest

from deploy.nginx_check import check, render_site
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
