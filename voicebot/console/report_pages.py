"""Analytics in the console: the same figures and charts as `voicebot report`, for a chosen period, and the
CSV tables as one ZIP download."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from voicebot.analytics import Analytics
from voicebot.cli_report import directory_timezone, load_analytics
from voicebot.console.call_history import calls_db_path
from voicebot.console.context import Console
from voicebot.console.security import STAFF, guarded
from voicebot.console.users import ConsoleUser
from voicebot.ports import ConfigError
from voicebot.report_charts import charts
from voicebot.report_csv import write_csv_tables
from voicebot.report_html import CHART_ORDER, table_html
from voicebot.report_period import parse_period
from voicebot.report_tables import tables

DEFAULT_SINCE = "30d"


def routes(console: Console) -> list[BaseRoute]:
    async def report(request: Request, user: ConsoleUser) -> Response:
        since, until = _period_args(request)
        try:
            analytics = await console.db(_analytics, console, since, until)
        except ConfigError as exc:
            return console.render(request, user, "reports.html", "Reports", 400, since=since, until=until,
                                  analytics=None, errors=[str(exc)])  # fmt: skip
        svgs = charts(analytics)
        return console.render(
            request, user, "reports.html", "Reports", since=since, until=until, analytics=analytics,
            charts=[svgs[name] for name in CHART_ORDER], tables=[table_html(t) for t in tables(analytics)],
        )  # fmt: skip

    async def report_csv(request: Request, user: ConsoleUser) -> Response:
        since, until = _period_args(request)
        try:
            analytics = await console.db(_analytics, console, since, until)
        except ConfigError as exc:
            return Response(f"{exc}\n", status_code=400, media_type="text/plain")
        archive = await console.db(_csv_zip, analytics)
        headers = {"content-disposition": 'attachment; filename="voicebot-report.zip"'}
        return Response(archive, media_type="application/zip", headers=headers)

    return [
        guarded("/reports", report, STAFF, console.users, console.denied),
        guarded("/reports/csv", report_csv, STAFF, console.users, console.denied),
    ]


def _period_args(request: Request) -> tuple[str, str]:
    return request.query_params.get("since", DEFAULT_SINCE)[:40], request.query_params.get("until", "")[:40]


def _analytics(console: Console, since: str, until: str) -> Analytics:
    period = parse_period(since, until or None, directory_timezone(console.app_settings.agents_file))
    return load_analytics(calls_db_path(console.db_path), period, migrate=False)  # the workers migrate it


def _csv_zip(analytics: Analytics) -> bytes:
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in write_csv_tables(analytics, Path(folder)):
            archive.write(path, path.name)
    return buffer.getvalue()
