"""
The reports page and its CSV (dispatch.reports decides the measures):
on-time performance, no-shows and late cancels, trips per vehicle-hour,
ride times against the maximum, per day and per driver.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from console.views import HtmxHttpRequest, _common, dispatcher_view
from dispatch import reports

# The longest range one page or file covers.
MAX_DAYS = 366
# What makes a spreadsheet read a cell as a formula (a driver's name is
# theirs to choose; one with no name is "+27 ...").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _as_text(cell: str) -> str:
    """A text cell a spreadsheet shows as written, never runs."""
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def _range(request: HtmxHttpRequest) -> tuple[date, date, str]:
    """The days asked for (the last seven by default), and what was wrong with the ask."""
    today = timezone.localdate()
    error = ""
    try:
        end = date.fromisoformat(request.GET.get("to") or today.isoformat())
        start = date.fromisoformat(request.GET.get("from") or (end - timedelta(days=6)).isoformat())
    except (ValueError, OverflowError):  # OverflowError: a week before 0001-01-03
        start, end, error = today - timedelta(days=6), today, "Dates are YYYY-MM-DD."
    if start > end:
        start, end = end, start
    if (end - start).days >= MAX_DAYS:
        start, error = end - timedelta(days=MAX_DAYS - 1), f"At most {MAX_DAYS} days at once."
    return start, end, error


@require_GET
@dispatcher_view
def reports_view(request: HtmxHttpRequest) -> HttpResponse:
    start, end, error = _range(request)
    ctx = {
        **_common(request),
        "report": reports.report(start, end),
        "error": error,
    }
    return render(request, "console/reports.html", ctx)


@require_GET
@dispatcher_view
def reports_csv(request: HtmxHttpRequest) -> HttpResponse:
    start, end, _ = _range(request)
    report = reports.report(start, end)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="care-connect-{start}-{end}.csv"'
    # The byte order mark: without it a spreadsheet reads the names as its
    # local code page ("AnÃ©l").
    response.write("\ufeff")
    writer = csv.writer(response)
    writer.writerow(["scope", "name", *reports.COLUMNS])
    rows = [("total", report.total)]
    rows += [("day", m) for m in report.days] + [("driver", m) for m in report.drivers]
    for scope, measures in rows:
        values = measures.row()
        writer.writerow(
            [
                scope,
                _as_text(measures.label),
                *("" if values[c] is None else values[c] for c in reports.COLUMNS),
            ]
        )
    return response
